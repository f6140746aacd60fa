/**
 * A process never runs against a schema newer than its code (README "Upgrading a running cluster").
 *
 * drizzle records each applied migration in `drizzle.__drizzle_migrations` with its journal time
 * (`created_at` = the `when` of `drizzle/meta/_journal.json`). The newest one applied to the
 * database and the newest one this build ships are compared:
 *
 * - at start, after our own migrations ran: a database migrated beyond what we know (a newer
 *   release ran there) stops the start with a message saying so;
 * - while running, every few heartbeats: when a newer release's migrations land, this process
 *   shuts down as on SIGTERM (workers drain: running tasks finish within the grace period or are
 *   handed back), and says why. The newer release's processes take over.
 */
import { Duration, Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type pg from "pg"
import { DbError } from "./client.js"
import { migrationsFolder } from "./migrate.js"

export interface SchemaVersion {
  /** The journal time of the newest migration (ms since the epoch), 0 for none. */
  readonly when: number
  readonly tag?: string
}

/** The newest migration this build ships. */
export const knownSchema = (folder = migrationsFolder): SchemaVersion => {
  const journal = JSON.parse(fs.readFileSync(path.join(folder, "meta", "_journal.json"), "utf8")) as {
    entries: Array<{ when: number; tag: string }>
  }
  const last = journal.entries.reduce<{ when: number; tag: string } | undefined>((a, e) => (a === undefined || e.when > a.when ? e : a), undefined)
  return last ? { when: last.when, tag: last.tag } : { when: 0 }
}

/** The newest migration applied to the database (0 before any). */
export const appliedSchema = async (q: Pick<pg.Pool, "query">): Promise<SchemaVersion> => {
  const r = await q.query<{ when: string | null }>(
    `SELECT max(created_at)::text AS when FROM drizzle.__drizzle_migrations`
  ).catch((e: { code?: string }) => {
    if (e.code === "42P01" || e.code === "3F000") return { rows: [{ when: null }] } // no migrations table yet
    throw e
  })
  return { when: Number(r.rows[0]?.when ?? 0) }
}

export const newerSchemaMessage = (applied: SchemaVersion, known: SchemaVersion) =>
  `the database was migrated by a newer cairn release (its newest migration is from ` +
  `${new Date(applied.when).toISOString()}, this release's is ${known.tag ?? "none"} from ${new Date(known.when).toISOString()}): ` +
  `run the newer release here`

/** Fails when the database is ahead of this build. */
export const checkSchema = (q: Pick<pg.Pool, "query">) =>
  Effect.tryPromise({
    try: () => appliedSchema(q),
    catch: (cause) => new DbError({ message: `could not read the schema version: ${(cause as Error).message}`, cause })
  }).pipe(
    Effect.flatMap((applied) => {
      const known = knownSchema()
      return applied.when > known.when
        ? Effect.fail(new DbError({ message: newerSchemaMessage(applied, known), code: "cairn_schema_newer" }))
        : Effect.void
    })
  )

/**
 * Checks every `every`; when the database has moved past this build, logs why and shuts the
 * process down the way SIGTERM does. Database errors are left to the rest of the process.
 */
export const watchSchema = (q: Pick<pg.Pool, "query">, every: Duration.Duration) =>
  Effect.gen(function*() {
    for (;;) {
      yield* Effect.sleep(every)
      const r = yield* Effect.either(checkSchema(q))
      if (r._tag === "Left" && r.left.code === "cairn_schema_newer") {
        yield* Effect.logError(`stopping: ${r.left.message}`)
        process.kill(process.pid, "SIGTERM")
        return
      }
    }
  })
