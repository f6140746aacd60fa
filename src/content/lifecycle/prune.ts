/**
 * `repository.prune` in its commit: release listed versions and/or all but the newest `keep` the
 * repository keeps, by deleting their keeps (./retention.ts), under the repository's row lock (so
 * it is ordered with version cuts and retention, as FCFS on `repository:<id>` orders the tasks).
 *
 * A listed version that a live distribution serves is refused (`in_use`, naming the distribution),
 * and nothing is released. The latest version is not released while it is the latest: the
 * repository cuts its next version from it (reported held by "repository (latest version)"); it is
 * released when a newer one is cut. A version whose keep went but
 * that something else holds (a distribution, an unsettled task) is reported under `held` with what
 * holds it; it is released when that lets go, with nothing more to do.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { versionHolders } from "./holders.js"
import { rankedKept } from "./retention.js"

export interface PruneReport {
  readonly released: ReadonlyArray<number>
  readonly held: ReadonlyArray<{ readonly number: number; readonly by: string }>
}

export interface Prune {
  readonly repositoryId: string
  readonly versions: ReadonlyArray<number>
  readonly keep?: number | undefined
}

export const pruneVersions = (tx: Tx, p: Prune) =>
  Effect.gen(function*() {
    yield* txRows(tx, sql`SELECT id FROM resources WHERE id = ${p.repositoryId} FOR UPDATE`)
    const listed = sql`${sql.param([...p.versions])}::int[]`
    const served = yield* txRows<{ number: number; distribution: string }>(tx, sql`
      SELECT DISTINCT v.number, n.name AS distribution
      FROM repository_versions v
      JOIN publications pb ON pb.version_id = v.id
      JOIN distribution_paths dp ON dp.publication_id = pb.id
      JOIN names n ON n.kind = 'distribution' AND n.resource_id = dp.distribution_id
      WHERE v.repository_id = ${p.repositoryId} AND v.number = ANY(${listed})
      ORDER BY 1, 2`)
    if (served.length > 0) {
      return yield* new TaskFailure({
        code: "in_use",
        message: served.map((s) => `version ${s.number} is served by distribution ${s.distribution}`).join("; ") + "; nothing was released"
      })
    }
    // The keeps to delete: the listed versions', and those beyond the newest `keep` kept. The
    // latest version stays held by the repository's head all the same, until a newer one is cut.
    const gone = yield* txRows<{ number: number }>(tx, sql`
      WITH ranked AS (${rankedKept(p.repositoryId)}), doomed AS (
        SELECT version_id, number FROM ranked
        WHERE kept AND (number = ANY(${listed}) OR rank > ${p.keep ?? 2_147_483_647})
      ), del AS (
        DELETE FROM version_keeps WHERE version_id IN (SELECT version_id FROM doomed)
      )
      SELECT number FROM doomed`)
    // What became of each version the prune named or unkept: held by something still, or released.
    const affected = [...new Set([...p.versions, ...gone.map((g) => g.number)])]
    const holders = yield* txRows<{ number: number; by: string }>(tx, sql`
      SELECT v.number, string_agg(DISTINCT h.by, ', ' ORDER BY h.by) AS by
      FROM repository_versions v JOIN (${versionHolders(p.repositoryId)}) h ON h.version_id = v.id
      WHERE v.repository_id = ${p.repositoryId} AND v.number = ANY(${sql`${sql.param(affected)}::int[]`})
      GROUP BY v.number ORDER BY v.number`)
    const held = new Map(holders.map((h) => [h.number, h.by]))
    return {
      released: affected.filter((n) => !held.has(n)).sort((a, b) => a - b),
      held: [...held].map(([number, by]) => ({ number, by }))
    } satisfies PruneReport
  })
