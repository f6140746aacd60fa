/**
 * `history.purge` in full: old revisions of named resources, then the engine's graphs, tasks and
 * futures (src/engine/purge.ts), then the resource rows of deleted names that nothing references
 * any more. Revisions go first because a distribution revision holds the `distribution` future of
 * the task that wrote it, and with it that task's graph; resources go last because their revisions
 * (and, for repositories, their versions and membership, reclaimed by orphans.cleanup) reference
 * them. DESIGN.md §19 "Reclaiming, and history".
 *
 * A revision is history once it is not the current revision of its name (which holds it:
 * cairn_revision_guard) and was superseded before the cutoff (a later revision of the same
 * resource was created before it), or, for a resource whose name is gone, was created before the
 * cutoff. A remote revision is also held by the sources of content synced through it and by the
 * syncs queued with it (foreign keys). Like every deleter: pages, SKIP LOCKED, the database's
 * refusal as the safety net (src/db/referenced.ts). At the end it vacuums cairn's tables
 * and rebuilds the indexes left sparse (src/db/reclaim-space.ts), so the space of what it deleted
 * is reused at once.
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db, txRows } from "../../db/client.js"
import { deleteUnlessReferenced, pages } from "../../db/referenced.js"
import { reclaimSpace } from "../../db/reclaim-space.js"
import { DEFAULT_PURGE_BATCH, purgeGraphs, type PurgeOptions, type PurgeReport } from "../../engine/purge.js"
import { cutoffOf } from "../../engine/queries/purge.js"

export interface HistoryReport extends PurgeReport {
  /** Revisions of repositories, remotes and distributions. */
  readonly revisions: number
  /** Repositories, remotes and distributions deleted whose last trace went. */
  readonly resources: number
}

/** The engine's purge options; `batchSize` bounds revisions and resources per transaction too. */
export type HistoryOptions = PurgeOptions

const REVISIONS = [
  { table: "repository_revisions", resource: "repository_id", unheld: sql`true` },
  {
    table: "remote_revisions",
    resource: "remote_id",
    unheld: sql`NOT EXISTS (SELECT 1 FROM content_sources s WHERE s.remote_revision_id = r.id)
              AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.remote_revision_id = r.id)`
  },
  { table: "distribution_revisions", resource: "distribution_id", unheld: sql`true` }
] as const

/** One table's old revisions, keyset-paged. */
const purgeRevisions = (table: string, resource: string, unheld: SQL, cutoff: string, limit: number, onDeleted: (n: number) => Effect.Effect<void>) =>
  Effect.flatMap(Db, (db) =>
    pages(limit, (after) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const t = sql.identifier(table)
          const res = sql.identifier(resource)
          const candidates = (yield* txRows<{ id: string }>(tx, sql`
            SELECT r.id FROM ${t} r
            WHERE r.id > ${after}
              AND NOT EXISTS (SELECT 1 FROM names n WHERE n.revision_id = r.id)
              AND (EXISTS (SELECT 1 FROM ${t} later WHERE later.${res} = r.${res} AND later.id > r.id AND later.created_at < ${cutoff}::timestamptz)
                   OR (r.created_at < ${cutoff}::timestamptz AND NOT EXISTS (SELECT 1 FROM names n WHERE n.resource_id = r.${res})))
              AND ${unheld}
            ORDER BY r.id LIMIT ${limit}
            FOR UPDATE OF r SKIP LOCKED`)).map((c) => c.id)
          const deleted = yield* deleteUnlessReferenced(tx, candidates, (batch) =>
            txRows(tx, sql`DELETE FROM ${t} WHERE id = ANY(${sql.param([...batch])}::text[]) RETURNING 1`))
          return { seen: candidates.length, last: candidates.at(-1) ?? after, deleted: deleted.length }
        })
      ), (p) => onDeleted(p.deleted)))

/** Resources whose name is gone and that nothing references any more (the foreign keys say the rest). */
const resourceUnreferenced = sql`
  NOT EXISTS (SELECT 1 FROM names n WHERE n.resource_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM repository_revisions r WHERE r.repository_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM remote_revisions r WHERE r.remote_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM distribution_revisions r WHERE r.distribution_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM repository_versions v WHERE v.repository_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.repository_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM repository_heads h WHERE h.repository_id = x.id)
  AND NOT EXISTS (SELECT 1 FROM distribution_paths d WHERE d.distribution_id = x.id)`

const purgeResources = (cutoff: string, limit: number, onDeleted: (n: number) => Effect.Effect<void>) =>
  Effect.flatMap(Db, (db) =>
    pages(limit, (after) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const candidates = (yield* txRows<{ id: string }>(tx, sql`
            SELECT x.id FROM resources x
            WHERE x.id > ${after} AND x.created_at < ${cutoff}::timestamptz AND ${resourceUnreferenced}
            ORDER BY x.id LIMIT ${limit}
            FOR UPDATE OF x SKIP LOCKED`)).map((c) => c.id)
          const deleted = yield* deleteUnlessReferenced(tx, candidates, (batch) =>
            txRows(tx, sql`DELETE FROM resources WHERE id = ANY(${sql.param([...batch])}::text[]) RETURNING 1`))
          return { seen: candidates.length, last: candidates.at(-1) ?? after, deleted: deleted.length }
        })
      ), (p) => onDeleted(p.deleted)))

export const purgeHistory = (opts: HistoryOptions) =>
  Effect.gen(function*() {
    const db = yield* Db
    const limit = opts.batchSize ?? DEFAULT_PURGE_BATCH
    const { cutoff } = yield* cutoffOf(db.db, opts.olderThanSeconds)
    let revisions = 0
    let resources = 0
    let graphs = 0
    const progress = () => opts.progress?.(revisions + graphs + resources) ?? Effect.void
    for (const r of REVISIONS) {
      yield* purgeRevisions(r.table, r.resource, r.unheld, cutoff, limit, (n) => {
        revisions += n
        return progress()
      })
    }
    const engine = yield* purgeGraphs({
      olderThanSeconds: opts.olderThanSeconds,
      batchSize: limit,
      progress: (n) => {
        graphs = n
        return progress()
      }
    })
    yield* purgeResources(cutoff, limit, (n) => {
      resources += n
      return progress()
    })
    yield* reclaimSpace
    return { ...engine, revisions, resources } satisfies HistoryReport
  })
