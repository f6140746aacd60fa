/**
 * Upgrading a running cluster: a newer release's migrations land while this release's processes
 * run. The newer release is simulated by this build's migrations plus one more (a copy of
 * `drizzle/` with a synthetic migration), applied the way a newer process applies them at start.
 * This build's processes must stop cleanly (drain) and refuse to start again on that database.
 */
import { drizzle } from "drizzle-orm/node-postgres"
import { migrate } from "drizzle-orm/node-postgres/migrator"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { migrationsFolder } from "../src/db/migrate.js"
import { knownSchema } from "../src/db/schema-version.js"
import { createTestDatabase } from "./support/db.js"
import { api, startServer, startWorker, until } from "./support/processes.js"

let url: string
let newer: string
let db: pg.Client

beforeAll(async () => {
  url = await createTestDatabase()
  db = new pg.Client({ connectionString: url })
  await db.connect()
  // "The next release": every migration of this build, and one that adds a column.
  newer = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-newer-release-"))
  await fs.cp(migrationsFolder, newer, { recursive: true })
  const tag = "9999_next_release"
  await fs.writeFile(path.join(newer, `${tag}.sql`), "ALTER TABLE workers ADD COLUMN release text;\n")
  const journalFile = path.join(newer, "meta", "_journal.json")
  const journal = JSON.parse(await fs.readFile(journalFile, "utf8")) as { entries: Array<Record<string, unknown>> }
  journal.entries.push({ idx: journal.entries.length, version: "7", when: knownSchema().when + 60_000, tag, breakpoints: true })
  await fs.writeFile(journalFile, JSON.stringify(journal, null, 2))
})

afterAll(async () => {
  await db?.end()
  if (newer) await fs.rm(newer, { recursive: true, force: true })
})

describe("a newer release's migrations while this release runs", () => {
  it("stop this release's processes cleanly, and it refuses to start on that database", async () => {
    const server = await startServer(url, { CAIRN_WORKERS: "1" })
    const worker = startWorker(url)
    await until("the worker's registration", () => /worker \S+ registered/.test(worker.output()), 60_000)
    // Work in flight when the migration lands: it is finished or handed back, never left running.
    const g = await api(server.url).post("/api/v1/graphs", {
      nodes: { a: { task: "debug.sleep", params: { ms: 1500 } }, b: { task: "debug.sleep", params: { ms: 1500 } } }
    })
    expect(g.status).toBe(201)
    await until("a task to run", async () =>
      (await db.query(`SELECT 1 FROM tasks WHERE graph_id = $1 AND state = 'running'`, [g.body.id])).rowCount! > 0, 30_000)

    await migrate(drizzle(db), { migrationsFolder: newer })

    // Both stop by themselves, cleanly, saying why.
    expect(await server.exited).toBe(0)
    expect(await worker.exited).toBe(0)
    for (const p of [server, worker]) expect(p.output()).toMatch(/stopping: the database was migrated by a newer cairn release/)
    const left = await db.query(`SELECT state FROM tasks WHERE graph_id = $1 AND state = 'running'`, [g.body.id])
    expect(left.rows).toEqual([])
    expect((await db.query(`SELECT count(*)::int AS n FROM workers`)).rows[0].n).toBe(0)

    // And this release does not start again there.
    const again = startWorker(url)
    expect(await again.exited).not.toBe(0)
    expect(again.output()).toMatch(/the database was migrated by a newer cairn release .*run the newer release here/)
  })
})
