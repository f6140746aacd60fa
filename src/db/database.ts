/**
 * `DatabaseLive`: decides where the database is (DATABASE_URL, or the embedded server of
 * CAIRN_DATA_DIR, started or joined), applies migrations, and provides `Db`.
 * Finalizers run in reverse: the pool closes before an embedded server we own is stopped.
 */
import { Duration, Effect, Layer, Option, Redacted, Runtime } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db, DbError, makeDb } from "./client.js"
import { startEmbedded } from "./embedded.js"
import { runMigrations } from "./migrate.js"
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
    return yield* makeDb(url, config.poolSize, { queryTimeoutMs: Duration.toMillis(config.dbQueryTimeout) })
  })
)
