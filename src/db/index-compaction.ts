/**
 * Rebuild the B-tree indexes of cairn's schema that deletes have left sparse.
 *
 * VACUUM gives a deleted row's space back to its table, and an index page back to the index once
 * the page is empty. It never merges half-empty index pages. cairn's ids are ULIDs, ordered by
 * time: a new row's key goes into the right-hand pages, and no later insert refills the old pages
 * that deletes thin out. A mirror that replaces a tenth of its content per cycle keeps its row
 * counts flat while such an index grows until its oldest pages finally empty. bench:churn measured
 * 4-5 times the size a fresh build of the same index takes. Once an index has grown this way,
 * only a rebuild shrinks it.
 *
 * - **Which indexes.** An index is rebuilt once its size is more than twice the size a fresh build
 *   would take, and it wastes at least `MIN_WASTE_PAGES`. The fresh size is estimated from the
 *   catalog: live tuples (the table's `reltuples`, fresh after the VACUUM that runs just before,
 *   or the index's own for a partial index), the key columns' average widths and distinct values
 *   (`pg_stats`: a non-unique index keeps a duplicated key once per page, with its row pointers),
 *   the B-tree's tuple and page overheads and its leaf fill factor. An index of random keys (a
 *   digest) settles between 1.3 and 1.6 times a fresh build under inserts and deletes, so it stays
 *   under the factor of 2 and is not rebuilt over and over. A table whose key columns have no
 *   statistics yet is analyzed first; an index on an expression is left alone; the estimate errs
 *   on the large side (a column's distinct values are taken as all different unless the
 *   statistics say they are a fixed few), which only delays a rebuild.
 * - **How.** `REINDEX INDEX CONCURRENTLY` builds a new copy beside the old one and swaps them. It
 *   never blocks reads or writes of the table: its lock (SHARE UPDATE EXCLUSIVE) conflicts only
 *   with VACUUM, ANALYZE and DDL. It runs on the caller's connection outside any transaction (it
 *   refuses to run in one), with no statement timeout. It does wait, several times, for
 *   transactions older than its current phase; each wait is bounded by `lock_timeout`. A rebuild
 *   that gives up ends the run, since what held it up (a long transaction, a `pg_dump`) holds up
 *   every other rebuild too: its copy is dropped if it can be, and the next run tries again.
 * - **Not beside a migration.** DDL queued behind a rebuild's lock would make every read and write
 *   of its table queue behind the DDL. So the compactor holds the migration lock (src/db/locks.ts)
 *   shared, tried: while a migration runs it does nothing, and a migration waits for the rebuild
 *   under way to finish before it takes any table lock.
 * - **One at a time across the cluster.** Two rebuilds of one index would wait for each other. A
 *   compactor holds a session advisory lock (class `indexCompaction`, src/db/locks.ts) that it
 *   only tries to take: a run that finds it taken leaves the work to the holder.
 * - **Leftovers.** A rebuild cut short (a timeout, a kill -9 of the process, a lost connection)
 *   leaves an invalid index named `<index>_ccnew` (or `_ccold`), which writers keep updating.
 *   Under the lock no compactor's rebuild is under way, so the compactor first drops every invalid
 *   index of the tables it owns with such a name, with `DROP INDEX CONCURRENTLY` (one that an
 *   operator's own REINDEX is building makes the drop wait, up to the lock timeout).
 * - **Tables this role does not own** are not its to vacuum or rebuild: they are skipped.
 */
import type pg from "pg"
import { LockClass, MIGRATION_LOCK } from "./locks.js"

/** An index is rebuilt when its size is more than this many times a fresh build's estimate. */
export const SPARSE_FACTOR = 2

/** ...and it wastes at least this many pages (64 KiB at 8 KiB pages): a small index is cheap to keep. */
export const MIN_WASTE_PAGES = 8

/** How long a rebuild may wait for a lock or for older transactions before it gives up, by default. */
const LOCK_TIMEOUT_MS = 10_000

/** One index's size against its estimated size after a fresh build, in pages. */
export interface IndexDensity {
  readonly index: string
  readonly pages: number
  readonly estimatedPages: number
  /** Live tuples (estimated, as the planner does). */
  readonly tuples: number
}

/**
 * Every B-tree index of the schema that has statistics, its size and its estimated fresh size.
 *
 * Sizes: an index tuple is an 8-byte header plus the key, padded to 8 bytes, plus a 4-byte line
 * pointer. A page has 8,152 usable bytes (8 KiB pages; `block_size` scales it), which a build fills
 * to the fill factor (90 by default) on leaves and to 70% on inner pages, and a B-tree has one
 * metapage. A non-unique index without INCLUDE columns keeps a duplicated key once per posting
 * list, with a 6-byte row pointer per tuple. Nulls make a real index smaller than the estimate,
 * which only makes a rebuild less likely.
 */
const DENSITY = `
  WITH ix AS (
    SELECT c.oid AS index_oid, i.indrelid AS table_oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index,
           t.relname AS table_name, i.indkey::int2[] AS keys, i.indnatts AS natts, i.indnkeyatts AS key_natts,
           i.indisunique AS is_unique,
           pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
           CASE WHEN i.indpred IS NULL THEN greatest(t.reltuples, c.reltuples) ELSE c.reltuples END AS tuples,
           current_setting('block_size')::int - 40 AS usable,
           coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), 90) AS fillfactor
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = c.relam
    WHERE n.nspname = current_schema() AND am.amname = 'btree' AND i.indisvalid AND i.indisready
      AND pg_has_role(t.relowner, 'USAGE')
  ), widths AS (
    -- Distinct keys: at most the product of each key column's distinct values; a column whose
    -- distinct values grow with the table (n_distinct < 0) counts as all different ("many").
    SELECT ix.index_oid, sum(s.avg_width) AS width, count(s.avg_width) AS known,
           exp(sum(ln(CASE WHEN k.n <= ix.key_natts AND s.n_distinct > 0 THEN s.n_distinct ELSE NULL END))) AS few,
           bool_or(k.n <= ix.key_natts AND (s.n_distinct IS NULL OR s.n_distinct <= 0)) AS many
    FROM ix
    CROSS JOIN LATERAL unnest(ix.keys) WITH ORDINALITY AS k(attnum, n)
    JOIN pg_attribute a ON a.attrelid = ix.table_oid AND a.attnum = k.attnum
    LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = ix.table_name AND s.attname = a.attname AND NOT s.inherited
    GROUP BY ix.index_oid
  ), sized AS (
    -- Keys stored: a unique index, or one with INCLUDE columns (never deduplicated), stores every
    -- tuple's key; another stores a duplicated key once and a 6-byte row pointer per tuple.
    SELECT ix.index, ix.pages, ix.tuples, ix.usable, ix.fillfactor,
           ((8 + coalesce(w.width, 0) + 7) / 8) * 8 + 4 AS tuple_bytes,
           CASE WHEN ix.is_unique OR ix.key_natts < ix.natts OR w.many OR w.few IS NULL THEN ix.tuples
                -- A posting list holds a few hundred row pointers at most: one key per ~400 tuples.
                ELSE greatest(least(ix.tuples, w.few), ix.tuples / 400.0) END AS keys_stored
    FROM ix JOIN widths w ON w.index_oid = ix.index_oid
    WHERE (w.known = ix.natts OR ix.tuples = 0) AND ix.tuples >= 0
  ), leaves AS (
    SELECT index, pages, tuples, tuple_bytes, usable,
           ceil((keys_stored * tuple_bytes + (tuples - keys_stored) * 6) / (usable * fillfactor / 100.0)) AS leaf_pages
    FROM sized
  )
  SELECT index, pages::int AS pages, tuples::float8 AS tuples,
         (leaf_pages + ceil(leaf_pages / greatest(2, floor(usable * 0.7 / tuple_bytes))) + 1)::int AS "estimatedPages"
  FROM leaves
  ORDER BY pages - leaf_pages DESC, index`

/** The schema's B-tree indexes with their sizes and estimated fresh sizes (the compactor's view). */
export const indexDensities = async (client: pg.ClientBase): Promise<ReadonlyArray<IndexDensity>> =>
  (await client.query<IndexDensity>(DENSITY)).rows

/**
 * Whether an index is sparse enough to rebuild. Its waste is what it has beyond a fresh build, but
 * at most a page per live tuple: a page without a live key is deleted by VACUUM and taken again by
 * the index's next inserts, so only pages that still hold a key can stay sparse. (The index of a
 * table that empties between bursts, such as the keys of running tasks, is left alone.)
 */
export const isSparse = (d: IndexDensity): boolean =>
  d.pages > SPARSE_FACTOR * d.estimatedPages && Math.min(d.pages - d.estimatedPages, d.tuples) >= MIN_WASTE_PAGES

/**
 * Tables with an index big enough to be worth rebuilding but a key column without statistics
 * (never analyzed: autovacuum may not have come by yet). ANALYZE reads a bounded sample.
 */
const UNANALYZED = `
  SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(t.relname) AS t
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = c.relam
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
  WHERE n.nspname = current_schema() AND am.amname = 'btree' AND t.reltuples > 0
    AND pg_relation_size(c.oid) / current_setting('block_size')::int >= ${MIN_WASTE_PAGES}
    AND pg_has_role(t.relowner, 'USAGE')
    AND NOT EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname)
  ORDER BY 1`

/**
 * Invalid indexes of the schema's tables this role owns left by rebuilds that were cut short (all
 * of them, or the copies of one index: `$1`, its name without schema).
 */
const LEFTOVERS = `
  SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS index
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = current_schema() AND NOT i.indisvalid AND pg_has_role(t.relowner, 'USAGE')
    AND c.relname ~ '_cc(new|old)[0-9]*$' AND ($1::text IS NULL OR c.relname ~ ('^' || $1 || '_cc(new|old)[0-9]*$'))
  ORDER BY 1`

export interface CompactionReport {
  /** false: another compactor held the lock, or a migration was running, and this run did nothing. */
  readonly ran: boolean
  readonly rebuilt: ReadonlyArray<string>
  readonly dropped: ReadonlyArray<string>
  /** The steps that gave up (a wait past the lock timeout, an error), with the reason; a rebuild that gives up ends the run. */
  readonly failed: ReadonlyArray<{ readonly index: string; readonly reason: string }>
}

const message = (e: unknown) => e instanceof Error ? e.message : String(e)

/** An index's name without its schema, as the catalog has it (for matching its leftover copies). */
const bareName = (qualified: string) => qualified.slice(qualified.indexOf(".") + 1).replace(/^"(.*)"$/, "$1").replace(/""/g, "\"")

/**
 * Drop leftovers of cut-short rebuilds, then rebuild every sparse index, one after the other, on
 * `client`: a connection of its own, not in a transaction. Errors of single steps are reported,
 * not thrown.
 */
export const compactIndexes = async (
  client: pg.ClientBase,
  options: { readonly lockTimeoutMs?: number } = {}
): Promise<CompactionReport> => {
  const tried = async (sql: string) => (await client.query<{ ok: boolean }>(sql)).rows[0]!.ok
  if (!await tried(`SELECT pg_try_advisory_lock(${LockClass.indexCompaction}, 0) AS ok`)) {
    return { ran: false, rebuilt: [], dropped: [], failed: [] }
  }
  let migrationLock = false
  try {
    migrationLock = await tried(`SELECT pg_try_advisory_lock_shared(${MIGRATION_LOCK}) AS ok`)
    if (!migrationLock) return { ran: false, rebuilt: [], dropped: [], failed: [] }
    await client.query(`SET lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs ?? LOCK_TIMEOUT_MS))}`)
    // A rebuild takes as long as the index's size makes it (a role's or database's default
    // statement_timeout would cut every large one short, run after run).
    await client.query("SET statement_timeout = 0")
    // If the process goes away mid-rebuild (its task canceled, a kill -9), the server stops the
    // rebuild within seconds instead of finishing it for nobody (PostgreSQL 14 and later).
    await client.query("SET client_connection_check_interval = '5s'").catch(() => undefined)
    const rebuilt: Array<string> = []
    const dropped: Array<string> = []
    const failed: Array<{ index: string; reason: string }> = []
    const dropLeftovers = async (of: string | null) => {
      for (const { index } of (await client.query<{ index: string }>(LEFTOVERS, [of])).rows) {
        try {
          await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`)
          dropped.push(index)
        } catch (e) {
          failed.push({ index, reason: message(e) })
        }
      }
    }
    await dropLeftovers(null)
    const unanalyzed = (await client.query<{ t: string }>(UNANALYZED)).rows.map((r) => r.t)
    if (unanalyzed.length > 0) {
      await client.query(`ANALYZE (SKIP_LOCKED) ${unanalyzed.join(", ")}`).catch((e) => {
        failed.push({ index: unanalyzed.join(", "), reason: `ANALYZE: ${message(e)}` })
      })
    }
    for (const d of (await indexDensities(client)).filter(isSparse)) {
      try {
        await client.query(`REINDEX INDEX CONCURRENTLY ${d.index}`)
        rebuilt.push(d.index)
      } catch (e) {
        failed.push({ index: d.index, reason: message(e) })
        // Its copy, if one was made (what held the rebuild up may hold up the drop as well: then
        // the next run drops it). Whatever held it up would hold up the next rebuild too: stop.
        await dropLeftovers(bareName(d.index))
        break
      }
    }
    return { ran: true, rebuilt, dropped, failed }
  } finally {
    await client.query("RESET lock_timeout").catch(() => undefined)
    await client.query("RESET statement_timeout").catch(() => undefined)
    if (migrationLock) await client.query(`SELECT pg_advisory_unlock_shared(${MIGRATION_LOCK})`).catch(() => undefined)
    await client.query(`SELECT pg_advisory_unlock(${LockClass.indexCompaction}, 0)`).catch(() => undefined)
  }
}
