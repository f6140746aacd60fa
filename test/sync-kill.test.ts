/**
 * A worker process killed (kill -9) in the middle of a sync, between batches: every artifact row
 * committed by then has its complete bytes in the store, whatever the kill interrupted (a download
 * being written, a batch being adopted); the task fails as worker_lost, and a new
 * sync on another worker completes with every file stored and verified.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, dataDirOf, type Proc, type Server, startServer, startWorker, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const FILES = 120
const files = makeFiles(FILES, { seed: 23, minSize: 1, maxSize: 48_000 })
let server: Server
let dbUrl: string
let db: pg.Client
let upstream: Upstream
let c: ReturnType<typeof api>
const workers: Array<Proc> = []

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  server = await startServer(dbUrl, { CAIRN_WORKERS: "0" })
  c = api(server.url)
  db = new pg.Client({ connectionString: dbUrl })
  await db.connect()
  upstream = await startUpstream(files)
  // Slow enough that the sync is still downloading when its first batches are adopted, and for
  // seconds after (120 files, 4 at a time, 100 ms each): the kill lands mid-sync even on a
  // loaded machine.
  for (const p of Object.keys(files)) upstream.faults.delay(p, 100)
})
afterAll(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop(5000)))
  await server?.stop()
  await db?.end()
  await upstream?.close()
})

/** Every artifact row, checked against its bytes: present, its size, its digest. */
const rowsWithoutTheirBytes = async () => {
  const rows = (await db.query<{ sha256: string; size: string }>("SELECT sha256, size FROM artifacts")).rows
  const bad: Array<string> = []
  for (const r of rows) {
    const file = path.join(dataDirOf(dbUrl), "artifacts", r.sha256.slice(0, 2), r.sha256.slice(2, 4), r.sha256)
    const bytes = fs.existsSync(file) ? fs.readFileSync(file) : undefined
    if (bytes === undefined) bad.push(`${r.sha256}: missing`)
    else if (bytes.length !== Number(r.size)) bad.push(`${r.sha256}: ${bytes.length} bytes, row says ${r.size}`)
    else if (createHash("sha256").update(bytes).digest("hex") !== r.sha256) bad.push(`${r.sha256}: wrong bytes`)
  }
  return { rows: rows.length, bad }
}

describe("a worker killed mid-sync", () => {
  it("leaves no row without its complete bytes; the next sync completes", async () => {
    workers.push(startWorker(dbUrl))
    expect((await c.post("/api/v1/remotes", { name: "up", url: upstream.url, policy: "immediate", download_concurrency: 4 })).status).toBe(201)
    expect((await c.post("/api/v1/repositories", { name: "repo" })).status).toBe(201)
    const sync = { task: "file.sync", params: { repository: "repo", remote: "up" } }
    const first = (await c.post("/api/v1/graphs", { nodes: { sync } })).body
    // Killed once some batches are adopted and others are not.
    const adopted = await until("some artifacts adopted", async () => {
      const [r] = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM artifacts")).rows
      return r!.n > 0 ? r!.n : undefined
    }, 60_000, 5)
    await workers[0]!.kill9()
    expect(adopted).toBeLessThan(FILES)
    // The next worker notices the dead one (its session lock is gone) and fails its task.
    workers.push(startWorker(dbUrl))
    const lost = await c.settled(first.nodes.sync.outputs.version, 60_000)
    expect(lost.state).toBe("failed")
    expect(lost.error.code).toBe("worker_lost")
    const afterKill = await rowsWithoutTheirBytes()
    expect(afterKill.bad).toEqual([])
    expect(afterKill.rows).toBeGreaterThan(0)

    upstream.faults.clear()
    const second = (await c.post("/api/v1/graphs", { nodes: { sync } })).body
    const done = await c.settled(second.nodes.sync.outputs.version, 60_000)
    expect(done.state).toBe("resolved")
    const end = await rowsWithoutTheirBytes()
    expect(end.bad).toEqual([])
    expect(end.rows).toBe(new Set(Object.values(files).map((b) => createHash("sha256").update(b).digest("hex"))).size)
  })
})
