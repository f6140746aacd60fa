/**
 * Reclaiming what was released: the rows nothing holds any more (./holders.ts, DESIGN.md §19),
 * deleted by orphans.cleanup before its units and artifacts (../cleanup.ts), in this order, each
 * step freeing what the next one looks for:
 *
 *   1. heads of repositories whose name is gone and that no unsettled task holds;
 *   2. publications no live distribution serves, no unsettled task holds, and whose version the
 *      repository does not keep (their generated files become orphan artifacts);
 *   3. versions nothing holds (no keep, head, publication or task);
 *   4. membership rows no remaining version lies in (and, if still open, of a repository without a
 *      head): what only released versions held.
 *
 * Then the cleanup's units and artifacts steps take what only those rows held, bytes included.
 *
 * Each step is pages of a batch, one short transaction each, candidates locked FOR UPDATE SKIP
 * LOCKED (two cleanups never take the same rows, and a row someone is holding right now, whose
 * foreign-key check holds a lock on it, is skipped). The candidate queries leave out what they see
 * held; the database refuses to delete the rest of what is held (foreign keys from every holder,
 * and guard triggers for the holds a key cannot express, all SQLSTATE 23503), and the batch is
 * redone by halves keeping exactly those (src/db/referenced.ts). No protection window: a row is
 * held from the transaction that writes it, so "unheld" is never a moment in its creation.
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db, type Tx, txRows } from "../../db/client.js"
import { deleteUnlessReferenced, pages } from "../../db/referenced.js"

export interface ReclaimReport {
  readonly publications: number
  readonly repository_versions: number
  readonly membership_rows: number
}

const ids = (xs: ReadonlyArray<string>) => sql`${sql.param([...xs])}::text[]`

/**
 * One keyset-paged step over a table with a text primary key `key`: candidates after `after` that
 * `unheld` (a condition on alias `x`) says nothing holds, then their delete unless referenced.
 */
const step = (table: string, key: string, unheld: SQL, limit: number, onDeleted: (n: number) => Effect.Effect<void>) =>
  Effect.flatMap(Db, (db) =>
    pages(limit, (after) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const candidates = (yield* txRows<{ k: string }>(tx, sql`
            SELECT x.${sql.identifier(key)} AS k FROM ${sql.identifier(table)} x
            WHERE x.${sql.identifier(key)} > ${after} AND ${unheld}
            ORDER BY 1 LIMIT ${limit}
            FOR UPDATE OF x SKIP LOCKED`)).map((c) => c.k)
          const deleted = yield* deleteUnlessReferenced(tx, candidates, (batch) =>
            txRows(tx, sql`DELETE FROM ${sql.identifier(table)} WHERE ${sql.identifier(key)} = ANY(${ids(batch)}) RETURNING 1`))
          return { seen: candidates.length, last: candidates.at(-1) ?? after, deleted: deleted.length }
        })
      ), (p) => onDeleted(p.deleted)))

const headUnheld = sql`
  NOT EXISTS (SELECT 1 FROM names n WHERE n.kind = 'repository' AND n.resource_id = x.repository_id)
  AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.repository_id = x.repository_id)`

const publicationUnheld = sql`
  NOT EXISTS (SELECT 1 FROM distribution_paths dp WHERE dp.publication_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.publication_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM version_keeps k WHERE k.version_id = x.version_id)`

const versionUnheld = sql`
  NOT EXISTS (SELECT 1 FROM version_keeps k WHERE k.version_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM repository_heads h WHERE h.version_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.version_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.version_id = x.id)`

/** Membership rows (keyset on the primary key) that no version holds (cairn_membership_guard's rule). */
const membershipBatch = (tx: Tx, after: { r: string; c: string; a: number } | undefined, limit: number) =>
  Effect.gen(function*() {
    const candidates = yield* txRows<{ r: string; c: string; a: number }>(tx, sql`
      SELECT rc.repository_id AS r, rc.content_id AS c, rc.added_in AS a FROM repository_content rc
      WHERE ${after === undefined ? sql`true` : sql`(rc.repository_id, rc.content_id, rc.added_in) > (${after.r}, ${after.c}, ${after.a})`}
        AND NOT EXISTS (SELECT 1 FROM repository_versions v
                        WHERE v.repository_id = rc.repository_id AND v.number >= rc.added_in
                          AND (rc.removed_in IS NULL OR v.number < rc.removed_in))
        AND (rc.removed_in IS NOT NULL OR NOT EXISTS (SELECT 1 FROM repository_heads h WHERE h.repository_id = rc.repository_id))
      ORDER BY rc.repository_id, rc.content_id, rc.added_in LIMIT ${limit}
      FOR UPDATE OF rc SKIP LOCKED`)
    const deleted = yield* deleteUnlessReferenced(tx, candidates, (batch) =>
      txRows(tx, sql`
        DELETE FROM repository_content rc
        USING jsonb_to_recordset(${JSON.stringify(batch)}::jsonb) AS d(r text, c text, a int)
        WHERE rc.repository_id = d.r AND rc.content_id = d.c AND rc.added_in = d.a RETURNING 1`))
    return { candidates, deleted: deleted.length }
  })

/** Steps 1-4 (see the module comment); `progress` gets the rows deleted so far. */
export const reclaimReleased = (opts: { readonly limit: number; readonly progress?: ((deleted: number) => Effect.Effect<void>) | undefined }) =>
  Effect.gen(function*() {
    const db = yield* Db
    const report = { publications: 0, repository_versions: 0, membership_rows: 0 }
    let heads = 0
    const progress = () => opts.progress?.(heads + report.publications + report.repository_versions + report.membership_rows) ?? Effect.void
    yield* step("repository_heads", "repository_id", headUnheld, opts.limit, (n) => {
      heads += n
      return progress()
    })
    yield* step("publications", "id", publicationUnheld, opts.limit, (n) => {
      report.publications += n
      return progress()
    })
    yield* step("repository_versions", "id", versionUnheld, opts.limit, (n) => {
      report.repository_versions += n
      return progress()
    })
    let after: { r: string; c: string; a: number } | undefined
    for (;;) {
      const page = yield* db.transaction((tx) => membershipBatch(tx, after, opts.limit))
      report.membership_rows += page.deleted
      yield* progress()
      if (page.candidates.length < opts.limit) break
      after = page.candidates.at(-1)
    }
    return report satisfies ReclaimReport
  })
