/**
 * A python unit: a wheel or an sdist. The core records it as `(type "python", relative_path = the
 * file name, sha256, size)`; its repository key is the file name (a version holds one file of each
 * name: the same file name with other bytes replaces it), and this plugin keeps the rest in
 * `python_packages` (schema.ts): the project's name and normalised name, the version, the package
 * type and Requires-Python.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db, type DbError, type Tx, txRows } from "../../db/client.js"
import type { StoredUnit, UnitSpec, UnitType } from "../../content/plugin.js"
import { pythonDeclaration } from "./declaration.js"
import type { DistributionFilename } from "./lib/names.js"

export interface PythonDetail {
  readonly name: string
  readonly project: string
  readonly version: string
  readonly filename: string
  readonly packagetype: "bdist_wheel" | "sdist"
  readonly requires_python: string | null
}

/** A unit's detail: from its parsed file name, with the project's name as spelled elsewhere (metadata, the index's list). */
export const detailOf = (d: DistributionFilename, name: string, requiresPython: string | undefined): PythonDetail => ({
  name,
  project: d.project,
  version: d.parsedVersion.normalized,
  filename: d.filename,
  packagetype: d.packagetype,
  requires_python: requiresPython ?? null
})


/** In `tx`: the detail rows of units just recorded (a unit recorded before keeps its row). */
export const recordDetails = (tx: Tx, units: ReadonlyArray<{ readonly id: string; readonly detail: PythonDetail }>) =>
  units.length === 0 ? Effect.void : Effect.asVoid(txRows(tx, sql`
    INSERT INTO python_packages (content_id, name, project, version, filename, packagetype, requires_python)
    SELECT id, name, project, version, filename, packagetype, requires_python
    FROM jsonb_to_recordset(${JSON.stringify(units.map((u) => ({ id: u.id, ...u.detail })))}::jsonb)
      AS r(id text, name text, project text, version text, filename text, packagetype text, requires_python text)
    ORDER BY id
    ON CONFLICT (content_id) DO NOTHING`))

/** The detail rows of `units` (one query), by content id. */
export const detailsOf = (units: ReadonlyArray<StoredUnit>): Effect.Effect<ReadonlyMap<string, PythonDetail>, DbError, Db> =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = yield* db.rows<PythonDetail & { content_id: string }>(sql`
      SELECT content_id, name, project, version, filename, packagetype, requires_python
      FROM python_packages WHERE content_id = ANY(${sql.param(units.map((u) => u.id))}::text[])`)
    return new Map(rows.map(({ content_id, ...d }) => [content_id, d]))
  })

/** The python type's unit, for recording units (src/content/content-units.ts `ensureUnits`). */
export const pythonUnit = {
  type: pythonDeclaration.type,
  // One file of a name per version: the same name with other bytes replaces it.
  unit: { repoKey: (u: UnitSpec) => u.relative_path, repoKeyName: "file name", record: recordDetails }
} as const satisfies UnitType<PythonDetail>
