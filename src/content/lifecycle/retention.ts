/**
 * Retention: a repository keeps its versions (one `version_keeps` row each), all of them or the
 * newest `retain_versions`. A version is kept from the transaction that cuts it (if the repository
 * still has its name: a version cut by a sync queued before the repository was deleted is held only
 * by its consumers), and a keep is only ever deleted afterwards: by retention when a newer version
 * is cut or retain_versions is lowered, by repository.prune, or when the repository is deleted.
 * Deleting a keep releases the version unless something else holds it (./holders.ts); it is then
 * released when its last holder lets go, with nothing more to do: "released" is "held by nothing".
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../../db/client.js"

/**
 * The versions the repository keeps, and its latest (kept or not: a prune may have released it,
 * to go when a newer one is cut), newest first: `version_id, number, kept, rank` (1 = the latest).
 * Retention and `repository.prune { keep }` count from here.
 */
export const rankedKept = (repositoryId: string) => sql`
  SELECT v.id AS version_id, v.number, k.version_id IS NOT NULL AS kept, row_number() OVER (ORDER BY v.number DESC) AS rank
  FROM repository_versions v LEFT JOIN version_keeps k ON k.version_id = v.id
  WHERE v.repository_id = ${repositoryId}
    AND (k.version_id IS NOT NULL OR v.id IN (SELECT version_id FROM repository_heads WHERE repository_id = ${repositoryId}))`

/**
 * Delete the keeps beyond the newest `retain_versions` of the repository's current revision (none
 * when it is null or the name is gone). Never the newest: retain_versions is at least 1.
 *
 * Two of these at once (a PATCH and a version being cut) each delete only what is beyond the limit
 * in their own snapshot; a version the other one adds only pushes older ones further back, so
 * together they never delete a keep that either alone would not have.
 */
export const applyRetention = (tx: Tx, repositoryId: string) =>
  Effect.asVoid(txRows(tx, sql`
    WITH limit_ AS (
      SELECT r.retain_versions AS n FROM names nm JOIN repository_revisions r ON r.id = nm.revision_id
      WHERE nm.kind = 'repository' AND nm.resource_id = ${repositoryId} AND r.retain_versions IS NOT NULL
    ), ranked AS (${rankedKept(repositoryId)})
    DELETE FROM version_keeps WHERE version_id IN (SELECT ranked.version_id FROM ranked, limit_ WHERE ranked.kept AND ranked.rank > limit_.n)`))

/** In the transaction that cuts version `versionId`: keep it (if the repository has its name), then retention. */
export const keepNewVersion = (tx: Tx, repositoryId: string, versionId: string) =>
  Effect.zipRight(
    txRows(tx, sql`
      INSERT INTO version_keeps (version_id, repository_id)
      SELECT ${versionId}, ${repositoryId}
      WHERE EXISTS (SELECT 1 FROM names WHERE kind = 'repository' AND resource_id = ${repositoryId})`),
    applyRetention(tx, repositoryId)
  )

/** In the transaction that creates a repository: its head and the keep of version 0. */
export const startRepository = (tx: Tx, repositoryId: string, version0: string) =>
  Effect.asVoid(txRows(tx, sql`
    WITH head AS (INSERT INTO repository_heads (repository_id, version_id) VALUES (${repositoryId}, ${version0}))
    INSERT INTO version_keeps (version_id, repository_id) VALUES (${version0}, ${repositoryId})`))

/** In the transaction that deletes a repository's name: it keeps nothing any more. */
export const releaseRepository = (tx: Tx, repositoryId: string) =>
  Effect.asVoid(txRows(tx, sql`DELETE FROM version_keeps WHERE repository_id = ${repositoryId}`))

/**
 * In the commit that resolves `futureId` to a version or a publication: every unsettled task
 * consuming that future holds what it resolved to (src/content/sql/cairn_hold_consumers.sql).
 */
export const holdForConsumers = (tx: Tx, futureId: string, target: { readonly version: string } | { readonly publication: string }) =>
  Effect.asVoid(txRows(tx, sql`SELECT cairn_hold_consumers(${futureId}, ${"version" in target ? target.version : null}::text,
                                                           ${"publication" in target ? target.publication : null}::text)`))
