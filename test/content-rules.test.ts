/**
 * The content store's rules that live in the database (drizzle/0004_content_rules.sql, on the
 * tables of drizzle/0003_content.sql): payload rows and holds are immutable, and a membership row
 * is closed at most once, by a later version. (What may be deleted, and what the database refuses to
 * delete while it is held, is test/lifecycle-guards.test.ts.) Rows are made the ordinary way (a real
 * `serve` process: remote, repository, distribution, sync -> publish -> distribute, a modify that
 * removes a file, an upload); then every refused UPDATE and DELETE is tried directly in SQL, each in
 * a transaction that is rolled back, and must fail with the error the trigger raises (SQLSTATE
 * CA001). The tables are read from the catalog too, so a trigger that goes missing, or a new table
 * with one, cannot slip past the list below.
 */
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer } from "./support/processes.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

/** BEFORE UPDATE ... EXECUTE FUNCTION cairn_refuse_update() (drizzle/0004_content_rules.sql). */
const IMMUTABLE = [
  "artifacts",
  "content_artifacts",
  "content_sources",
  "content_units",
  "distribution_revisions",
  "publication_files",
  "publications",
  "remote_revisions",
  "repository_revisions",
  "repository_versions",
  "resources",
  "task_holds",
  "uploads",
  "version_keeps"
]

let server: Server
let upstream: Upstream
let db: pg.Client

beforeAll(async () => {
  const url = await createTestDatabase()
  server = await startServer(url)
  upstream = await startUpstream({ "keep.txt": "kept\n", "drop.txt": "dropped\n" })
  db = new pg.Client({ connectionString: url })
  await db.connect()
})
afterAll(async () => {
  await db?.end()
  await server?.stop()
  await upstream?.close()
})

/** Run `statement` in a transaction that is always rolled back; the error it raised, if any. */
const attempt = async (statement: string, params: Array<unknown> = []): Promise<{ code?: string; message: string } | undefined> => {
  await db.query("BEGIN")
  try {
    await db.query(statement, params)
    return undefined
  } catch (e) {
    const err = e as { code?: string; message: string }
    return { code: err.code, message: err.message }
  } finally {
    await db.query("ROLLBACK")
  }
}

/** The tables whose rows a trigger running `fn` guards against `event` (UPDATE or DELETE). */
const guardedBy = async (fn: string, event: "UPDATE" | "DELETE") =>
  (await db.query<{ t: string }>(
    `SELECT DISTINCT event_object_table AS t FROM information_schema.triggers
     WHERE trigger_schema = 'public' AND event_manipulation = $1 AND action_timing = 'BEFORE'
       AND action_statement = $2 ORDER BY 1`,
    [event, `EXECUTE FUNCTION ${fn}()`]
  )).rows.map((r) => r.t)

const firstColumn = async (table: string) =>
  (await db.query<{ c: string }>(
    `SELECT column_name AS c FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position LIMIT 1`,
    [table]
  )).rows[0]!.c

const rowCount = async (table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0]!.n

describe("content rules in the database", () => {
  it("makes a row in every guarded table the ordinary way", async () => {
    const c = api(server.url)
    const created = async (path: string, body: unknown) => {
      const r = await c.post(path, body)
      expect(r.status, JSON.stringify(r.body)).toBe(201)
      return r.body
    }
    await created("/api/v1/remotes", { name: "rules", url: upstream.url })
    await created("/api/v1/repositories", { name: "rules" })
    await created("/api/v1/distributions", { name: "rules", base_path: "rules" })
    const g = await c.post("/api/v1/graphs", {
      nodes: {
        sync: { task: "file.sync", params: { repository: "rules", remote: "rules" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        distribute: { task: "distribution.set", params: { distribution: "rules", publication: { $ref: "publish.publication" } } },
        // Unsettled while the test runs: it holds the version (task_holds).
        hold: { task: "debug.sleep", params: { ms: 3_600_000, inputs: [{ $ref: "sync.version" }] } }
      }
    })
    expect(g.status, JSON.stringify(g.body)).toBe(201)
    expect((await c.settled(g.body.nodes.distribute.outputs.distribution)).state).toBe("resolved")
    // Version 2 removes drop.txt: its membership row is closed.
    const drop = (await db.query<{ id: string }>("SELECT id FROM content_units WHERE relative_path = 'drop.txt'")).rows[0]!.id
    const m = await c.post("/api/v1/graphs", { nodes: { m: { task: "repository.modify", params: { repository: "rules", remove: [drop] } } } })
    expect((await c.settled(m.body.nodes.m.outputs.version)).state).toBe("resolved")
    const up = await fetch(`${server.url}/api/v1/uploads`, { method: "POST", body: "uploaded\n", headers: { "content-type": "application/octet-stream" } })
    expect(up.status).toBe(201)

    for (const t of new Set([...IMMUTABLE, "repository_content"])) expect(await rowCount(t), t).toBeGreaterThan(0)
  })

  it("every table the migrations guard is guarded, and no other", async () => {
    expect(await guardedBy("cairn_refuse_update", "UPDATE")).toEqual(IMMUTABLE)
    expect(await guardedBy("cairn_membership_guard", "UPDATE")).toEqual(["repository_content"])
    // Deletes are guarded where a foreign key cannot say what holds a row (test/lifecycle-guards.test.ts).
    expect(await guardedBy("cairn_membership_guard", "DELETE")).toEqual(["repository_content"])
    expect(await guardedBy("cairn_revision_guard", "DELETE")).toEqual(["distribution_revisions", "remote_revisions", "repository_revisions"])
    expect(await guardedBy("cairn_publication_guard", "DELETE")).toEqual(["publications"])
    expect(await guardedBy("cairn_head_guard", "DELETE")).toEqual(["repository_heads"])
  })

  it.each(IMMUTABLE)("refuses any UPDATE of %s, even one that changes nothing", async (table) => {
    const col = await firstColumn(table)
    const err = await attempt(`UPDATE "${table}" SET "${col}" = "${col}" WHERE ctid = (SELECT ctid FROM "${table}" LIMIT 1)`)
    expect(err).toEqual({ code: "CA001", message: `${table} rows are immutable` })
  })

  it("repository_content: a membership row is closed once, by a later version, and never otherwise changed", async () => {
    const refused = { code: "CA001", message: "repository_content: a membership row may only be closed once, by a later version" }
    const closed = "(SELECT ctid FROM repository_content WHERE removed_in IS NOT NULL LIMIT 1)"
    const open = "(SELECT ctid FROM repository_content WHERE removed_in IS NULL LIMIT 1)"
    const other = "(SELECT id FROM content_units WHERE relative_path = 'drop.txt')"
    // Reopened, closed again, closed by the version that added it, moved to other content.
    expect(await attempt(`UPDATE repository_content SET removed_in = NULL WHERE ctid = ${closed}`)).toEqual(refused)
    expect(await attempt(`UPDATE repository_content SET removed_in = removed_in + 1 WHERE ctid = ${closed}`)).toEqual(refused)
    expect(await attempt(`UPDATE repository_content SET removed_in = added_in WHERE ctid = ${open}`)).toEqual(refused)
    expect(await attempt(`UPDATE repository_content SET removed_in = added_in + 5, content_id = ${other} WHERE ctid = ${open}`)).toEqual(refused)
    expect(await attempt(`UPDATE repository_content SET removed_in = added_in + 5, added_in = added_in + 1 WHERE ctid = ${open}`)).toEqual(refused)
    // The one change allowed: closing an open row by a later version (what a new version does).
    expect(await attempt(`UPDATE repository_content SET removed_in = added_in + 5 WHERE ctid = ${open}`)).toBeUndefined()
  })
})
