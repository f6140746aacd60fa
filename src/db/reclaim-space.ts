/**
 * Give back the space of what a bulk delete removed: VACUUM, then rebuild the indexes it left sparse.
 *
 * PostgreSQL reuses a dead row's space only once a VACUUM has passed over its page; autovacuum gets
 * there eventually (its default threshold is a fifth of the table, looked at once a minute), but a
 * store whose deleters and inserters alternate faster than that grows on disk while its row counts
 * stay flat (bench:churn measured +125% in 100 cycles of a mirror). A deleter that just emptied a
 * batch of rows vacuums when it is done, once per run: every table of cairn's schema, because rows
 * die beyond the ones it deleted (cascades into a plugin's tables, the ownership rows that settling
 * tasks delete between runs, the tasks' own updates). A table without dead rows costs next to
 * nothing: VACUUM skips the pages the visibility map says are all-visible. VACUUM leaves half-empty
 * index pages as they are, and indexes on time-ordered ids are never refilled: those that grew
 * sparse are rebuilt afterwards (src/db/index-compaction.ts).
 *
 * - `SKIP_LOCKED`: a table someone holds a conflicting lock on (another VACUUM, an ALTER, an index
 *   rebuild) is left to them; VACUUM's own lock (SHARE UPDATE EXCLUSIVE) never blocks reads and
 *   writes.
 * - Its own connection, outside any transaction (VACUUM and REINDEX CONCURRENTLY refuse to run in
 *   one) and without the pool's statement timeout: a large table takes as long as it takes, and no
 *   pooled connection is held meanwhile.
 * - Tables this role does not own (or is not a member of the owner of) are skipped: vacuuming
 *   and rebuilding them is their owner's business.
 * - Best effort: the deletes have committed; a VACUUM or rebuild that fails (a lost connection, a
 *   rebuild that waited too long) is logged, never the run's failure.
 */
import { Duration, Effect, Redacted } from "effect"
import pg from "pg"
import { Db } from "./client.js"
import { compactIndexes } from "./index-compaction.js"

/** How long opening the VACUUM's connection may take (the pool's checkout bound). */
const CONNECT_TIMEOUT_MS = 10_000

/** The tables of cairn's schema that this role may vacuum (it owns them, or is a member of their owner). */
const TABLES = `
  SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS t
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm') AND pg_has_role(c.relowner, 'USAGE')
  ORDER BY 1`

/**
 * `VACUUM (SKIP_LOCKED)` every table of cairn's schema, then rebuild its sparse indexes; logs what
 * it did and how long it took.
 */
export const reclaimSpace = Effect.flatMap(Db, (db) =>
    Effect.acquireUseRelease(
      Effect.tryPromise(async () => {
        const client = new pg.Client({ connectionString: Redacted.value(db.url), connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
        client.on("error", () => undefined)
        await client.connect()
        return client
      }),
      (client) => Effect.tryPromise(async () => {
        const tables = (await client.query<{ t: string }>(TABLES)).rows.map((r) => r.t)
        if (tables.length > 0) await client.query(`VACUUM (SKIP_LOCKED) ${tables.join(", ")}`)
        return await compactIndexes(client)
      }),
      (client) => Effect.promise(() => client.end().catch(() => undefined))
    ).pipe(
      Effect.timed,
      Effect.flatMap(([d, compaction]) =>
        Effect.gen(function*() {
          const ms = Math.round(Duration.toMillis(d))
          for (const f of compaction.failed) yield* Effect.logWarning(`rebuilding or dropping the index ${f.index} gave up (the next run tries again): ${f.reason}`)
          yield* compaction.rebuilt.length + compaction.dropped.length > 0
            ? Effect.logInfo(`vacuumed cairn's tables and rebuilt sparse indexes in ${ms} ms`).pipe(
              Effect.annotateLogs({ rebuilt: compaction.rebuilt.join(" "), dropped_leftovers: compaction.dropped.join(" ") })
            )
            : Effect.logDebug(`vacuumed cairn's tables in ${ms} ms`)
        })),
      Effect.catchAll((e) => Effect.logWarning(`reclaiming the space of deleted rows failed (it waits for autovacuum, or the next run): ${e.error instanceof Error ? e.error.message : String(e.error)}`))
    ))
