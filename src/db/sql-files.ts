/**
 * The SQL functions and triggers, as files: one file per function, with the CREATE TRIGGER
 * statements that run it, holding its current definition, beside the module that owns it
 * (`src/engine/sql/`, `src/content/sql/`, later `src/plugins/<name>/sql/`: every `src/**\/sql/*.sql`).
 * Every statement is re-appliable (`CREATE OR REPLACE FUNCTION`, `CREATE OR REPLACE TRIGGER`).
 * Migrations in `drizzle/` stay the append-only history that installs them; `npm run db:functions`
 * (scripts/db-functions.ts) writes the next migration from the files that differ from what the
 * migrations produce, and test/sql-definitions.test.ts fails on any drift. DESIGN.md §16.
 *
 * How "differs" is decided, on a migrated database, in one transaction that is always rolled back:
 * each file is applied in turn and the catalog is read before and after it. The catalog here is
 * every function of schema `public` not owned by an extension or a type (`pg_get_functiondef`),
 * every trigger on a table of `public` that is not internal (`pg_get_triggerdef`, and whether it is
 * enabled), and every registered settle and submit hook (`settle_hooks`, `submit_hooks`: registries
 * files add themselves to).
 * A file differs when the catalog changed. A file's objects are the catalog rows its statements
 * wrote: CREATE OR REPLACE writes a new row version (a new ctid) even when nothing changes, so an
 * object defined in two files, or by no file, is found without parsing any SQL.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type pg from "pg"

/** The repository's root (this file is src/db/sql-files.ts). */
export const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

export interface SqlFile {
  /** Relative to the repository root, '/'-separated: `src/engine/sql/cairn_claim.sql`. */
  readonly path: string
  readonly text: string
}

/** Every `src/**\/sql/*.sql`, in path order. */
export const findSqlFiles = async (root: string = projectRoot): Promise<ReadonlyArray<SqlFile>> => {
  const found: Array<string> = []
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`
      if (e.isDirectory()) await walk(rel)
      else if (e.isFile() && e.name.endsWith(".sql") && path.posix.basename(dir) === "sql") found.push(rel)
    }
  }
  await walk("src")
  found.sort()
  return Promise.all(found.map(async (p) => ({ path: p, text: await fs.readFile(path.join(root, p), "utf8") })))
}

/** One object of the catalog: its definition, and the version of its catalog row. */
interface Entry {
  readonly definition: string
  readonly version: string
}
type Catalog = ReadonlyMap<string, Entry>

const CATALOG = `
  SELECT 'function ' || p.oid::regprocedure::text AS key, pg_get_functiondef(p.oid) AS definition, p.ctid::text AS version
  FROM pg_proc p
  WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
    -- extensions' functions, and those a type owns (a range type's constructors)
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
  UNION ALL
  SELECT 'trigger ' || t.tgname || ' on ' || c.relname,
         pg_get_triggerdef(t.oid) || CASE t.tgenabled WHEN 'O' THEN '' ELSE ' (enabled: ' || t.tgenabled::text || ')' END,
         t.ctid::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

/**
 * The engine's registries of hooks, once they exist: settle hooks (src/engine/sql/cairn_on_settled.sql)
 * and submit hooks (src/engine/sql/cairn_on_submitted.sql).
 */
const HOOKS = [["settle hook", "settle_hooks"], ["submit hook", "submit_hooks"]] as const
const hooksOf = (what: string, table: string) =>
  `SELECT '${what} ' || name AS key, fn::text AS definition, ctid::text AS version FROM ${table}`

const readCatalog = async (client: pg.Client): Promise<Catalog> => {
  const present = (await client.query<{ t: string }>(
    `SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass('public.' || t) IS NOT NULL`,
    [HOOKS.map(([, t]) => t)]
  )).rows.map((r) => r.t)
  const query = [CATALOG, ...HOOKS.filter(([, t]) => present.includes(t)).map(([what, t]) => hooksOf(what, t))].join(" UNION ALL ")
  const rows = (await client.query<{ key: string; definition: string; version: string }>(query)).rows
  return new Map(rows.map((r) => [r.key, { definition: r.definition, version: r.version }]))
}

export interface Change {
  readonly object: string
  /** Undefined: the file creates it. */
  readonly before: string | undefined
  /** Undefined: the file drops it. */
  readonly after: string | undefined
}

export interface FileResult {
  readonly file: SqlFile
  /** The catalog objects the file's statements wrote. */
  readonly objects: ReadonlyArray<string>
  /** What applying it changed; empty when the database already has its definitions. */
  readonly changes: ReadonlyArray<Change>
}

export interface Check {
  /** The files that applied, in the order they were applied (a file waits for what it uses). */
  readonly applied: ReadonlyArray<FileResult>
  /** Files that could not be applied, with the database's error. */
  readonly failed: ReadonlyArray<{ readonly file: SqlFile; readonly error: string }>
  /** Catalog objects no file writes: defined by a migration only. */
  readonly unowned: ReadonlyArray<string>
  /** Catalog objects more than one file writes. */
  readonly shared: ReadonlyArray<{ readonly object: string; readonly files: ReadonlyArray<string> }>
}

const diff = (before: Catalog, after: Catalog): ReadonlyArray<Change> => {
  const changes: Array<Change> = []
  for (const [object, b] of before) {
    const a = after.get(object)
    if (a?.definition !== b.definition) changes.push({ object, before: b.definition, after: a?.definition })
  }
  for (const [object, a] of after) if (!before.has(object)) changes.push({ object, before: undefined, after: a.definition })
  return changes
}

const written = (before: Catalog, after: Catalog) =>
  [...after].filter(([object, a]) => before.get(object)?.version !== a.version).map(([object]) => object)

/**
 * Applies every file to the database `client` is connected to, in a transaction that is rolled
 * back, and reports what each one would change. Nothing is left behind.
 */
export const checkSqlFiles = async (client: pg.Client, files: ReadonlyArray<SqlFile>): Promise<Check> => {
  const applied: Array<FileResult> = []
  let pending: Array<{ file: SqlFile; error: string }> = files.map((file) => ({ file, error: "" }))
  await client.query("BEGIN")
  try {
    // A file that fails may use what a later file defines (a trigger running another file's new
    // function): it is tried again after every pass that applied something.
    for (let progress = true; progress && pending.length > 0;) {
      progress = false
      const next: typeof pending = []
      for (const { file } of pending) {
        const before = await readCatalog(client)
        await client.query("SAVEPOINT sql_file")
        try {
          await client.query(file.text)
        } catch (e) {
          await client.query("ROLLBACK TO SAVEPOINT sql_file")
          next.push({ file, error: (e as Error).message })
          continue
        }
        const after = await readCatalog(client)
        applied.push({ file, objects: written(before, after), changes: diff(before, after) })
        progress = true
      }
      pending = next
    }
    const owners = new Map<string, Array<string>>()
    for (const r of applied) for (const o of r.objects) owners.set(o, [...(owners.get(o) ?? []), r.file.path])
    const catalog = await readCatalog(client)
    return {
      applied,
      failed: pending,
      unowned: [...catalog.keys()].filter((o) => !owners.has(o)).sort(),
      shared: [...owners].filter(([, f]) => f.length > 1).map(([object, f]) => ({ object, files: f }))
    }
  } finally {
    await client.query("ROLLBACK")
  }
}

/** The files whose definitions the database does not have yet, in an order that applies. */
export const changedFiles = (check: Check): ReadonlyArray<SqlFile> =>
  check.applied.filter((r) => r.changes.length > 0).map((r) => r.file)

const notApplied = (check: Check) => check.failed.map(({ file, error }) => `${file.path} does not apply: ${error}`)
const unowned = (check: Check) => check.unowned.map((o) => `${o} is defined by the migrations but by no file under src/**/sql/`)
const shared = (check: Check) => check.shared.map((s) => `${s.object} is defined by more than one file: ${s.files.join(", ")}`)
const empty = (r: FileResult) => (r.objects.length === 0 ? [`${r.file.path} defines no function, trigger or settle hook`] : [])

/** Every way the files and the database disagree, one sentence each; empty when they agree. */
export const problems = (check: Check): ReadonlyArray<string> => [
  ...notApplied(check),
  ...check.applied.flatMap((r) => [
    ...empty(r),
    ...r.changes.map((c) =>
      c.before === undefined
        ? `${r.file.path} defines ${c.object}, which the migrations do not`
        : c.after === undefined
        ? `${r.file.path} drops ${c.object}`
        : `${r.file.path} defines ${c.object} differently from the migrations`
    )
  ]),
  ...unowned(check),
  ...shared(check)
]

/** The problems a migration made of the changed files would not solve: they need a decision. */
export const blockingProblems = (check: Check): ReadonlyArray<string> => [
  ...notApplied(check),
  ...check.applied.flatMap(empty),
  ...unowned(check),
  ...shared(check)
]
