/**
 * The SQL files under src/**\/sql/ and the migrations agree (src/db/sql-files.ts): on a freshly
 * migrated database, applying any file changes nothing in the catalog, every function and trigger
 * of `public` (not an extension's) is written by exactly one file, and every file's objects exist.
 * When this fails after editing a file, run `npm run db:functions` to write the migration.
 *
 * The other tests feed the same check files that disagree with the database, to show that it can
 * fail in each way, and that it leaves nothing behind.
 */
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkSqlFiles, findSqlFiles, problems, type SqlFile } from "../src/db/sql-files.js"
import { createTestDatabase } from "./support/db.js"

let client: pg.Client
let files: ReadonlyArray<SqlFile>

beforeAll(async () => {
  client = new pg.Client({ connectionString: await createTestDatabase() })
  await client.connect()
  files = await findSqlFiles()
})
afterAll(async () => {
  await client?.end()
})

const check = async (fs: ReadonlyArray<SqlFile>) => problems(await checkSqlFiles(client, fs))

/** `files` with one file's text changed by `edit`. */
const editing = (path: string, edit: (text: string) => string) =>
  files.map((f) => (f.path === path ? { path, text: edit(f.text) } : f))

describe("the SQL files", () => {
  it("are what the migrations produce: one file per function and trigger, each applying unchanged", async () => {
    const result = await checkSqlFiles(client, files)
    expect(problems(result)).toEqual([])
    expect(result.applied.map((r) => r.file.path).sort()).toEqual(files.map((f) => f.path))
    // The check sees the objects at all: the claim and a content trigger, each in its own file.
    const owner = (object: string) => result.applied.filter((r) => r.objects.includes(object)).map((r) => r.file.path)
    expect(owner("function cairn_claim(text,integer)")).toEqual(["src/engine/sql/cairn_claim.sql"])
    expect(owner("trigger futures_kept on futures")).toEqual(["src/engine/sql/cairn_future_guard.sql"])
    expect(owner("trigger publications_immutable on publications")).toEqual(["src/content/sql/cairn_refuse_update.sql"])
  })

  it("are found under every module's sql/ folder", () => {
    expect(files.some((f) => f.path.startsWith("src/engine/sql/"))).toBe(true)
    expect(files.some((f) => f.path.startsWith("src/content/sql/"))).toBe(true)
    for (const f of files) expect(f.path).toMatch(/^src\/(.+\/)?sql\/[a-z0-9_]+\.sql$/)
  })
})

describe("the check fails", () => {
  it("when a file was edited and no migration written", async () => {
    const edited = editing("src/engine/sql/cairn_make_ready.sql", (t) => t.replace("RETURN v;", "RETURN v + 0;"))
    expect(await check(edited)).toEqual([
      "src/engine/sql/cairn_make_ready.sql defines function cairn_make_ready(text[]) differently from the migrations"
    ])
    const moreTriggers = editing("src/engine/sql/cairn_task_guard.sql", (t) =>
      `${t}\nCREATE OR REPLACE TRIGGER graphs_kept BEFORE DELETE ON graphs FOR EACH ROW EXECUTE FUNCTION cairn_task_guard();\n`)
    expect(await check(moreTriggers)).toEqual([
      "src/engine/sql/cairn_task_guard.sql defines trigger graphs_kept on graphs, which the migrations do not"
    ])
  })

  it("when a migration defines a function or trigger that no file has", async () => {
    await client.query(`CREATE FUNCTION cairn_stray() RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$`)
    await client.query(`CREATE TRIGGER graphs_stray BEFORE DELETE ON graphs FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update()`)
    try {
      expect(await check(files)).toEqual([
        "function cairn_stray() is defined by the migrations but by no file under src/**/sql/",
        "trigger graphs_stray on graphs is defined by the migrations but by no file under src/**/sql/"
      ])
    } finally {
      await client.query(`DROP TRIGGER graphs_stray ON graphs; DROP FUNCTION cairn_stray()`)
    }
  })

  it("when two files define one object, or a file does not apply or defines nothing", async () => {
    const claim = files.find((f) => f.path === "src/engine/sql/cairn_claim.sql")!
    expect(await check([...files, { path: "src/plugins/x/sql/cairn_claim.sql", text: claim.text }])).toEqual([
      "function cairn_claim(text,integer) is defined by more than one file: src/engine/sql/cairn_claim.sql, src/plugins/x/sql/cairn_claim.sql"
    ])
    const plain = editing("src/engine/sql/cairn_make_ready.sql", (t) => t.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION"))
    const [notApplied, ...rest] = await check(plain)
    expect(notApplied).toMatch(/^src\/engine\/sql\/cairn_make_ready\.sql does not apply: function "cairn_make_ready" already exists/)
    expect(rest).toEqual(["function cairn_make_ready(text[]) is defined by the migrations but by no file under src/**/sql/"])
    expect(await check([...files, { path: "src/plugins/x/sql/nothing.sql", text: "SELECT 1;" }])).toEqual([
      "src/plugins/x/sql/nothing.sql defines no function, trigger or settle hook"
    ])
  })

  it("and leaves nothing behind", async () => {
    await check(editing("src/engine/sql/cairn_make_ready.sql", (t) => t.replace("RETURN v;", "RETURN v + 0;")))
    expect(await check(files)).toEqual([])
  })
})
