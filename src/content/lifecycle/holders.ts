/**
 * Who holds a repository version (DESIGN.md §19, "The ownership graph"). A version is listed, and
 * can be read or published, exactly while something holds it; once nothing does it is *released*:
 * gone from the API at once, its rows (and what only they held) reclaimed by the next
 * orphans.cleanup. The holders, each a row the database checks before it lets the version go:
 *
 *   repository (retained)       a `version_keeps` row: the repository keeps it (retain_versions)
 *   repository (latest version) the repository's head: new versions are cut from it
 *   distribution <name>         a live distribution serves one of its publications
 *   task <id>                   an unsettled task uses it, or one of its publications
 */
import { sql } from "drizzle-orm"

export const RETAINED = "repository (retained)"
export const LATEST = "repository (latest version)"

/** `(version_id, by)` for every holder of every version of repository `repositoryId`. */
export const versionHolders = (repositoryId: string) => sql`
  SELECT k.version_id, ${RETAINED}::text AS by FROM version_keeps k WHERE k.repository_id = ${repositoryId}
  UNION ALL
  SELECT h.version_id, ${LATEST}::text FROM repository_heads h WHERE h.repository_id = ${repositoryId}
  UNION ALL
  SELECT p.version_id, 'distribution ' || n.name
  FROM repository_versions v
  JOIN publications p ON p.version_id = v.id
  JOIN distribution_paths dp ON dp.publication_id = p.id
  JOIN names n ON n.kind = 'distribution' AND n.resource_id = dp.distribution_id
  WHERE v.repository_id = ${repositoryId}
  UNION ALL
  SELECT th.version_id, 'task ' || th.task_id
  FROM task_holds th JOIN repository_versions v ON v.id = th.version_id
  WHERE th.version_id IS NOT NULL AND v.repository_id = ${repositoryId}
  UNION ALL
  SELECT p.version_id, 'task ' || th.task_id
  FROM task_holds th JOIN publications p ON p.id = th.publication_id JOIN repository_versions v ON v.id = p.version_id
  WHERE th.publication_id IS NOT NULL AND v.repository_id = ${repositoryId}`

/**
 * Versions of the repository with their holders (`held_by`, sorted, distinct), newest first; only
 * those held by something: what the API shows.
 */
export const heldVersions = (repositoryId: string, number?: number) => sql`
  SELECT v.id, v.number, v.content_count, v.future_id AS future, v.created_at,
         array_agg(DISTINCT h.by ORDER BY h.by) AS held_by
  FROM repository_versions v JOIN (${versionHolders(repositoryId)}) h ON h.version_id = v.id
  WHERE v.repository_id = ${repositoryId} ${number === undefined ? sql`` : sql`AND v.number = ${number}`}
  GROUP BY v.id ORDER BY v.number DESC`
