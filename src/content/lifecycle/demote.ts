/**
 * Demotion (Pulp's reclaim_space): `orphans.cleanup { "reclaim": [repository names] }` drops the
 * stored bytes of content units in those repositories that a remote can serve again (a
 * `content_sources` row), keeping the units: their `content_artifacts` links are deleted, the
 * artifacts nothing else owns then go in the same run's artifact step (rows and bytes), and the
 * content app fetches such a file again on its next request, as for an on-demand remote
 * (src/content/app/serve.ts). A unit that is also in a repository not listed keeps its bytes: that
 * repository did not ask. Batches of links, locked FOR UPDATE SKIP LOCKED, one short transaction each.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../../db/client.js"
import { pages } from "../../db/referenced.js"

/** Demote the units of `repositories` (resource ids); the number of units demoted. */
export const demote = (repositories: ReadonlyArray<string>, limit: number) =>
  Effect.gen(function*() {
    const db = yield* Db
    const listed = sql`${sql.param([...repositories])}::text[]`
    let demoted = 0
    if (repositories.length === 0) return demoted
    yield* pages(limit, (after) =>
      Effect.map(
        db.rows<{ content_id: string }>(sql`
          WITH doomed AS (
            SELECT ca.content_id FROM content_artifacts ca
            WHERE ca.content_id > ${after}
              AND EXISTS (SELECT 1 FROM content_sources s WHERE s.content_id = ca.content_id)
              AND EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = ca.content_id AND rc.repository_id = ANY(${listed}))
              AND NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = ca.content_id AND rc.repository_id <> ALL(${listed}))
            ORDER BY ca.content_id LIMIT ${limit}
            FOR UPDATE OF ca SKIP LOCKED
          ), gone AS (
            DELETE FROM content_artifacts WHERE content_id IN (SELECT content_id FROM doomed) RETURNING content_id
          )
          SELECT content_id FROM doomed ORDER BY content_id`),
        (rows) => ({ seen: rows.length, last: rows.at(-1)?.content_id ?? after, deleted: rows.length })
      ), (p) => Effect.sync(() => void (demoted += p.deleted)))
    return demoted
  })
