/**
 * Repository versions.
 *
 * Membership is shared between versions: `repository_content` has one row per (repository, unit,
 * version that added it), closed by `removed_in` when a later version removes the unit. Version N
 * holds the rows with `added_in <= N AND (removed_in IS NULL OR removed_in > N)`. So:
 *
 * - cutting a version writes one row per added unit and closes one row per removed unit: adding
 *   10 units to a 100,000-unit base writes 10 rows, not 100,000;
 * - the latest version's content is the partial index `WHERE removed_in IS NULL`: listing it is an
 *   index scan, paginated by content id;
 * - an older version is read from the rows added up to it, including rows closed later: its cost
 *   grows with the repository's history of changes, not only with its size. That is the trade-off
 *   for cheap writes; versions are linear per repository (numbers are assigned at resolution, under
 *   the repository's row lock), a modification on an older base is expressed as a diff to the latest.
 *
 * The latest version is the repository's head (`repository_heads`); every version it cuts is kept
 * by the repository and retention applied (lifecycle/retention.ts); a version is listed only while
 * something holds it (lifecycle/holders.ts).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { monotonicFactory } from "ulid"
import { Db, type Tx, txRows } from "../db/client.js"
import { NotFound } from "../engine/errors.js"
import { heldVersions } from "./lifecycle/holders.js"
import { holdForConsumers, keepNewVersion } from "./lifecycle/retention.js"
import type { StoredUnit } from "./plugin.js"

const newId = monotonicFactory()

export interface VersionRef {
  readonly repository: string
  readonly version: string
  readonly number: number
}

/** The value a `repository_version` future resolves to. */
export const versionValue = (v: VersionRef) => ({ repository: v.repository, version: v.version, number: v.number })

export interface CutVersion {
  readonly repositoryId: string
  /** The version the change applies to (default: the latest). */
  readonly baseNumber?: number | undefined
  readonly add: ReadonlyArray<string>
  readonly remove: ReadonlyArray<string> | "*"
  /** Remove everything of the base that is not in `add` (mirror sync). */
  readonly exact?: boolean
  /** The future this version resolves (its payload row records it). */
  readonly futureId: string | null
}

/** A unit's repository key in SQL (null in the column: its relative path). */
export const REPO_KEY = (alias: string) => sql.raw(`coalesce(${alias}.repo_key, ${alias}.relative_path)`)

/** Content ids of version `n` of a repository, as a SQL set. */
const contentOf = (repositoryId: string, n: number) =>
  sql`SELECT content_id FROM repository_content
      WHERE repository_id = ${repositoryId} AND added_in <= ${n} AND (removed_in IS NULL OR removed_in > ${n})`

/**
 * Cut the next version (inside the settle transaction of the task that produces it). A change that
 * changes nothing resolves to the existing latest version instead of cutting an empty one. Either
 * way the tasks consuming `futureId` hold the version from now on.
 */
export const cutVersion = (tx: Tx, c: CutVersion) =>
  Effect.gen(function*() {
    // Serializes version numbering per repository (FCFS on repository:<id> already orders the tasks).
    yield* txRows(tx, sql`SELECT id FROM resources WHERE id = ${c.repositoryId} FOR UPDATE`)
    const [latest] = yield* txRows<{ id: string; number: number }>(
      tx,
      sql`SELECT v.id, v.number FROM repository_heads h JOIN repository_versions v ON v.id = h.version_id
          WHERE h.repository_id = ${c.repositoryId}`
    )
    // The task cutting it holds the repository's head: only a bug gets here.
    if (!latest) return yield* new NotFound({ message: `repository ${c.repositoryId} was deleted and reclaimed` })
    const base = c.baseNumber ?? latest.number
    const add = sql.param([...new Set(c.add)])
    // The target set, then its difference to the latest version.
    // A version holds one unit per repository key (Pulp's repo_key_fields; the type's plugin
    // computed it when the unit was recorded: src/content/plugin.ts): an added unit replaces the
    // base's unit with its key.
    const target = c.exact || c.remove === "*"
      ? sql`SELECT unnest(${add}::text[]) AS content_id`
      : sql`SELECT m.content_id FROM (${contentOf(c.repositoryId, base)}) m JOIN content_units u ON u.id = m.content_id
            WHERE m.content_id <> ALL(${sql.param([...c.remove])}::text[])
              AND ${REPO_KEY("u")} NOT IN (SELECT ${REPO_KEY("a")} FROM content_units a WHERE a.id = ANY(${add}::text[]))
            UNION SELECT unnest(${add}::text[])`
    const [diff] = yield* txRows<{ adds: Array<string>; removes: Array<string> }>(
      tx,
      sql`WITH target AS (${target}), cur AS (${contentOf(c.repositoryId, latest.number)})
          SELECT coalesce((SELECT array_agg(content_id) FROM (SELECT content_id FROM target EXCEPT SELECT content_id FROM cur) a), '{}') AS adds,
                 coalesce((SELECT array_agg(content_id) FROM (SELECT content_id FROM cur EXCEPT SELECT content_id FROM target) r), '{}') AS removes`
    )
    if (diff!.adds.length === 0 && diff!.removes.length === 0) {
      if (c.futureId) yield* holdForConsumers(tx, c.futureId, { version: latest.id })
      return { repository: c.repositoryId, version: latest.id, number: latest.number, created: false }
    }
    const number = latest.number + 1
    const id = newId()
    if (diff!.removes.length > 0) {
      yield* txRows(tx, sql`UPDATE repository_content SET removed_in = ${number}
                            WHERE repository_id = ${c.repositoryId} AND removed_in IS NULL
                              AND content_id = ANY(${sql.param(diff!.removes)}::text[])`)
    }
    if (diff!.adds.length > 0) {
      yield* txRows(tx, sql`INSERT INTO repository_content (repository_id, content_id, added_in)
                            SELECT ${c.repositoryId}, unnest(${sql.param(diff!.adds)}::text[]), ${number}`)
    }
    const [count] = yield* txRows<{ n: number }>(
      tx,
      sql`SELECT count(*)::int AS n FROM repository_content WHERE repository_id = ${c.repositoryId} AND removed_in IS NULL`
    )
    yield* txRows(tx, sql`INSERT INTO repository_versions (id, repository_id, number, base_version_id, future_id, content_count)
                          VALUES (${id}, ${c.repositoryId}, ${number},
                                  (SELECT id FROM repository_versions WHERE repository_id = ${c.repositoryId} AND number = ${base}),
                                  ${c.futureId}, ${count!.n})`)
    // Live pointer, not payload: the head moves to the version just cut.
    yield* txRows(tx, sql`UPDATE repository_heads SET version_id = ${id} WHERE repository_id = ${c.repositoryId}`)
    yield* keepNewVersion(tx, c.repositoryId, id)
    if (c.futureId) yield* holdForConsumers(tx, c.futureId, { version: id })
    return { repository: c.repositoryId, version: id, number, created: true }
  })

/** A unit of a version as the core records it (src/content/plugin.ts `StoredUnit`), with its type. */
export interface ContentEntry extends StoredUnit {
  readonly type: string
}

/**
 * A version's content in content id order, paginated by id (`after`): the membership primary key
 * (repository_id, content_id, added_in) serves that order, so a page costs its size plus the
 * membership rows skipped for not being in this version, never a sort of the whole version.
 */
export const versionContent = (versionId: string, opts: { after?: string | undefined; limit?: number | undefined } = {}) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [v] = yield* db.rows<{ repository_id: string; number: number }>(
      sql`SELECT repository_id, number FROM repository_versions WHERE id = ${versionId}`
    )
    if (!v) return yield* new NotFound({ message: `repository version ${versionId} does not exist` })
    return yield* db.rows<ContentEntry>(sql`
      SELECT c.id, c.type, c.relative_path, c.sha256, c.size::float8 AS size, ca.artifact_id AS artifact
      FROM repository_content m
      JOIN content_units c ON c.id = m.content_id
      LEFT JOIN content_artifacts ca ON ca.content_id = c.id
      WHERE m.repository_id = ${v.repository_id} AND m.added_in <= ${v.number} AND (m.removed_in IS NULL OR m.removed_in > ${v.number})
        ${opts.after ? sql`AND m.content_id > ${opts.after}` : sql``}
      ORDER BY m.content_id
      ${opts.limit ? sql`LIMIT ${opts.limit}` : sql``}`)
  })

export interface VersionView {
  readonly id: string
  readonly number: number
  readonly content_count: number
  readonly future: string | null
  readonly created_at: string
  /** What holds it (lifecycle/holders.ts); never empty: a version nothing holds is not shown. */
  readonly held_by: ReadonlyArray<string>
}

const repositoryId = (name: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [r] = yield* db.rows<{ resource_id: string }>(sql`SELECT resource_id FROM names WHERE kind = 'repository' AND name = ${name}`)
    if (!r) return yield* new NotFound({ message: `no repository named ${name}` })
    return r.resource_id
  })

const versionViews = (repository: string, number?: number) =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = yield* db.rows<Omit<VersionView, "created_at"> & { created_at: string }>(heldVersions(repository, number))
    return rows.map((v): VersionView => ({ ...v, created_at: new Date(v.created_at).toISOString() }))
  })

/** The versions of a repository that something holds (released ones are gone from here at once), newest first. */
export const listVersions = (repositoryName: string) => Effect.flatMap(repositoryId(repositoryName), (r) => versionViews(r))

/** Version `number` of the repository named `name`, unless it was released. */
export const getVersion = (name: string, number: number) =>
  Effect.gen(function*() {
    const [v] = yield* versionViews(yield* repositoryId(name), number)
    if (!v) return yield* new NotFound({ message: `repository ${name} has no version ${number}` })
    return v
  })

