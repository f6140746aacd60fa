/**
 * `DatabaseLive`: decides where the database is (DATABASE_URL, or the embedded server of
 * CAIRN_DATA_DIR, started or joined), applies migrations, refuses a schema newer than this build
 * (and stops the process when one lands later: schema-version.ts), and provides `Db`.
 * Finalizers run in reverse: the pool closes before an embedded server we own is stopped.
 */
import { Duration, Effect, Layer, Option, Redacted, Runtime } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db, DbError, makeDb } from "./client.js"
import { startEmbedded } from "./embedded.js"
import { runMigrations } from "./migrate.js"
import { checkSchema, watchSchema } from "./schema-version.js"
import { withLibpqSslModes } from "./url.js"

export const resolveDatabaseUrl = Effect.gen(function*() {
  const config = yield* CairnConfig
  if (Option.isSome(config.databaseUrl)) return Redacted.make(withLibpqSslModes(Redacted.value(config.databaseUrl.value)))
  // The embedded server's progress lines go through our logger, like everything else.
  const runtime = yield* Effect.runtime<never>()
  const log = (line: string) => Runtime.runSync(runtime)(Effect.logInfo(line))
  const server = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startEmbedded(config.dataDir, { log }),
      catch: (cause) => new DbError({ message: `could not start the embedded PostgreSQL: ${(cause as Error).message}`, cause })
    }),
    (s) => Effect.promise(() => s.stop())
  )
  yield* Effect.logInfo(server.owned ? "started the embedded PostgreSQL" : "joined the embedded PostgreSQL").pipe(
    Effect.annotateLogs({ dataDir: server.dataDir })
  )
  return Redacted.make(server.url)
})

export const DatabaseLive = Layer.scoped(
  Db,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const url = yield* resolveDatabaseUrl
    yield* runMigrations(Redacted.value(url))
    const db = yield* makeDb(url, config.poolSize, { queryTimeoutMs: Duration.toMillis(config.dbQueryTimeout) })
    // Never run against a schema newer than this code: refuse to start, or stop when it moves on.
    yield* checkSchema(db.pool)
    yield* Effect.forkScoped(watchSchema(db.pool, Duration.times(config.heartbeatInterval, 5)))
    return db
  })
)
