/**
 * Content units: `(type, relative_path, sha256, size)`, deduplicated across repositories, with the
 * repository key their type's plugin gives them (src/content/plugin.ts), the artifact holding their
 * bytes (`content_artifacts`, absent while an on-demand unit was never fetched), where a remote
 * serves them (`content_sources`), and whatever the plugin keeps of them in its own tables.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { monotonicFactory } from "ulid"
import { DbError, type Tx, txRows } from "../db/client.js"
import type { UnitSpec, UnitType } from "./plugin.js"

const newId = monotonicFactory()

export type { UnitSpec }

/** A unit's natural key within its type, as the key of the map `ensureUnits` answers. */
export const unitKey = (u: UnitSpec) => `${u.sha256}:${u.size}:${u.relative_path}`

const BATCH = 5000

/**
 * In `tx`: the id of every unit, inserting the missing ones. The rows are locked FOR KEY SHARE
 * until commit, so a concurrent orphan cleanup can no longer delete a unit this transaction is
 * about to put into a version; if the cleanup deleted one between our insert and our lock, the
 * next round inserts it again. Then the plugin writes its detail rows (`unit.record`) for the units
 * given a `detail`.
 */
export const ensureUnits = <D>(
  tx: Tx,
  plugin: UnitType<D>,
  units: ReadonlyArray<UnitSpec & { readonly detail?: D }>
) =>
  Effect.gen(function*() {
    const ids = new Map<string, string>()
    const type = plugin.type
    for (let at = 0; at < units.length; at += BATCH) {
      let todo = units.slice(at, at + BATCH)
      for (let round = 0; todo.length > 0; round++) {
        if (round === 5) return yield* new DbError({ message: "content units kept disappearing while being recorded" })
        const rows = JSON.stringify(todo.map((u) => {
          const key = plugin.unit.repoKey(u)
          return { id: newId(), p: u.relative_path, s: u.sha256, n: u.size, k: key === u.relative_path ? null : key }
        }))
        yield* txRows(tx, sql`
          INSERT INTO content_units (id, type, relative_path, sha256, size, repo_key)
          SELECT id, ${type}, p, s, n, k FROM jsonb_to_recordset(${rows}::jsonb) AS r(id text, p text, s text, n bigint, k text)
          ORDER BY p, s, n
          ON CONFLICT (type, relative_path, sha256, size) DO NOTHING`)
        const found = yield* txRows<{ id: string; relative_path: string; sha256: string; size: string | number }>(tx, sql`
          SELECT c.id, c.relative_path, c.sha256, c.size
          FROM content_units c
          JOIN jsonb_to_recordset(${rows}::jsonb) AS r(id text, p text, s text, n bigint)
            ON c.type = ${type} AND c.relative_path = r.p AND c.sha256 = r.s AND c.size = r.n
          FOR KEY SHARE OF c`)
        for (const f of found) ids.set(unitKey({ ...f, size: Number(f.size) }), f.id)
        todo = todo.filter((u) => !ids.has(unitKey(u)))
      }
    }
    const record = plugin.unit.record
    if (record !== undefined) {
      yield* record(tx, units.flatMap((u) => (u.detail === undefined ? [] : [{ id: ids.get(unitKey(u))!, detail: u.detail }])))
    }
    return ids
  })

/** In `tx`: record which artifact holds each unit's bytes (first writer wins; rows never change). */
export const linkArtifacts = (tx: Tx, links: ReadonlyArray<{ readonly content: string; readonly artifact: string }>) =>
  links.length === 0 ? Effect.void : Effect.asVoid(txRows(tx, sql`
    INSERT INTO content_artifacts (content_id, artifact_id)
    SELECT c, a FROM jsonb_to_recordset(${JSON.stringify(links.map((l) => ({ c: l.content, a: l.artifact })))}::jsonb) AS r(c text, a text)
    ON CONFLICT (content_id) DO NOTHING`))

/** In `tx`: record where a remote (revision) serves each unit, for on-demand fetching. */
export const recordSources = (
  tx: Tx,
  remoteRevision: string,
  sources: ReadonlyArray<{ readonly content: string; readonly url: string }>
) =>
  sources.length === 0 ? Effect.void : Effect.asVoid(txRows(tx, sql`
    INSERT INTO content_sources (content_id, remote_revision_id, url)
    SELECT c, ${remoteRevision}, u FROM jsonb_to_recordset(${JSON.stringify(sources.map((s) => ({ c: s.content, u: s.url })))}::jsonb) AS r(c text, u text)
    ON CONFLICT (content_id, remote_revision_id) DO NOTHING`))
