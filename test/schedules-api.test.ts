/**
 * /api/v1/schedules over real HTTP: a `serve` process, the typed client and the CLI. What the
 * scheduler does at each tick is tested on one injected clock in test/schedules.test.ts; here, the
 * resource itself: checked before anything is written, copy-on-write with if-match, `next_run`, the
 * ticks listing, the OpenAPI descriptions, and `cairn schedule`; and once, on the real clock, that
 * the worker processes run schedulers (the wiring) and that one tick makes one graph among them.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CairnError, type CairnClient, createClient } from "../src/client/index.js"
import { createTestDatabase } from "./support/db.js"
import { type Proc, type Server, startServer, startWorker, until } from "./support/processes.js"

let server: Server
let cairn: CairnClient
let dbUrl: string

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  server = await startServer(dbUrl)
  cairn = createClient({ url: server.url })
})
afterAll(async () => {
  await server?.stop()
})

const graph = { nodes: { s: { task: "debug.sleep", params: { ms: 1 } } } }

const rejection = async (p: Promise<unknown>): Promise<CairnError> => {
  const e = await p.then(() => undefined, (err: unknown) => err)
  expect(e).toBeInstanceOf(CairnError)
  return e as CairnError
}

const root = fileURLToPath(new URL("..", import.meta.url))
const cli = (args: ReadonlyArray<string>, stdin = "") =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, CAIRN_URL: server.url, NO_COLOR: "1" }
    delete env.CAIRN_TOKEN
    const child = spawn(process.execPath, [path.join(root, "bin", "cairn.js"), ...args], { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.stdin.end(stdin)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("/api/v1/schedules", () => {
  it("refuses a bad cron expression, time zone or graph with 400 naming each, and writes nothing", async () => {
    const bad = await rejection(cairn.schedules.create({
      name: "bad",
      cron: "61 * * * *",
      timezone: "Mars/Olympus",
      graph: { nodes: { x: { task: "no.such.kind", params: {} } } }
    }))
    expect(bad.code).toBe("bad_request")
    const details = bad.details as { fields: Record<string, string>; nodes: Record<string, unknown> }
    expect(Object.keys(details.fields).sort()).toEqual(["cron", "graph", "timezone"])
    expect(details.fields.timezone).toContain("Mars/Olympus")
    expect(Object.keys(details.nodes)).toEqual(["x"])
    expect((await rejection(cairn.schedules.create({ name: "never", cron: "0 0 31 2 *", graph }))).message).toContain("never fires")
    expect(await cairn.schedules.list()).toEqual([])
    expect((await rejection(cairn.schedules.get("bad"))).code).toBe("not_found")
  })

  it("create, get with next_run, update with if-match (412 once moved on), disable, revisions, delete", async () => {
    // 29 February only, so that the server's scheduler (on the real clock) has no tick to claim meanwhile.
    const first = await cairn.schedules.create({ name: "nightly", cron: "0 3 29 2 *", timezone: "Europe/Berlin", graph })
    expect(first).toMatchObject({ name: "nightly", cron: "0 3 29 2 *", timezone: "Europe/Berlin", enabled: true, last_tick: null, last_graph: null })
    // 03:00 in Berlin is 02:00 UTC in February, and after now.
    expect(first.next_run).toMatch(/^\d{4}-02-29T02:00:00Z$/)
    expect(Date.parse(first.next_run!)).toBeGreaterThan(Date.now())
    const off = await cairn.schedules.update("nightly", { enabled: false }, first.revision)
    expect(off).toMatchObject({ enabled: false, next_run: null, cron: "0 3 29 2 *", timezone: "Europe/Berlin" })
    expect((await rejection(cairn.schedules.update("nightly", { enabled: true }, first.revision))).code).toBe("precondition_failed")
    expect((await rejection(cairn.schedules.update("nightly", { cron: "nope" }, off.revision))).code).toBe("bad_request")
    expect((await cairn.schedules.get("nightly")).revision).toBe(off.revision)
    expect((await cairn.schedules.revisions("nightly")).map((r) => [r.revision, r.enabled])).toEqual([
      [off.revision, false],
      [first.revision, true]
    ])
    expect((await rejection(cairn.schedules.create({ name: "nightly", cron: "* * * * *", graph }))).code).toBe("conflict")
    expect((await cairn.schedules.list()).map((s) => s.name)).toEqual(["nightly"])
    expect(await cairn.schedules.graphs("nightly")).toEqual([])
    await cairn.schedules.delete("nightly")
    expect((await rejection(cairn.schedules.get("nightly"))).code).toBe("not_found")
    expect((await rejection(cairn.schedules.graphs("nightly"))).code).toBe("not_found")
  })

  it("the OpenAPI document describes every schedule field and the ticks listing", async () => {
    const doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json() as {
      paths: Record<string, Record<string, { description?: string }>>
      components: { schemas: Record<string, { properties: Record<string, { description?: string }> }> }
    }
    const undescribed = (schema: string, fields: ReadonlyArray<string>) =>
      fields.filter((f) => !doc.components.schemas[schema]?.properties[f]?.description)
    expect(undescribed("Schedule", ["cron", "timezone", "graph", "enabled", "next_run", "last_tick", "last_graph", "last_error"])).toEqual([])
    expect(undescribed("schedulesCreate", ["cron", "timezone", "graph", "enabled"])).toEqual([])
    expect(undescribed("ScheduleTick", ["tick", "graph", "error"])).toEqual([])
    expect(doc.paths["/api/v1/schedules/{name}/graphs"]?.get?.description).toContain("newest first")
  })
})

describe("cairn schedule", () => {
  // The server's scheduler runs on the real clock: the schedule is created disabled, so that no tick
  // can come while the steps run.
  it("create --disabled from stdin, show, graphs, update --enabled, delete; a bad cron is one sentence", { timeout: 300_000 }, async () => {
    const help = await cli(["schedule", "--help"])
    expect(help.code).toBe(0)
    for (const sub of ["create", "show", "list", "update", "delete", "revisions", "graphs"]) expect(help.stdout).toContain(sub)
    const created = await cli(["schedule", "create", "hourly", "-", "--cron", "0 * * * *", "--disabled"], JSON.stringify(graph))
    expect(created.stderr).toBe("")
    expect(created.stdout).toMatch(/^created schedule hourly \(revision [0-9A-Z]{26}\); next run none \(disabled\)\n$/)
    const shown = await cli(["schedule", "show", "hourly", "--json"])
    expect(JSON.parse(shown.stdout)).toMatchObject({ name: "hourly", cron: "0 * * * *", timezone: "UTC", enabled: false, next_run: null })
    expect((await cli(["schedule", "graphs", "hourly"])).stdout).toBe("schedule hourly has claimed no tick yet\n")
    const on = await cli(["schedule", "update", "hourly", "--enabled"])
    expect(on.stdout).toMatch(/^schedule hourly is at revision [0-9A-Z]{26}; next run \d{4}-\d\d-\d\dT\d\d:00:00Z\n$/)
    const bad = await cli(["schedule", "update", "hourly", "--cron", "0 25 * * *"])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr.trim().split("\n")).toHaveLength(1)
    expect(bad.stderr).toContain("0 25 * * *")
    expect((await cli(["schedule", "delete", "hourly"])).stdout).toBe("deleted schedule hourly\n")
  })
})

describe("worker processes on the real clock", () => {
  it("three processes with schedulers: the next minute's tick submits one graph, which runs", { timeout: 300_000 }, async () => {
    const workers: Array<Proc> = [startWorker(dbUrl), startWorker(dbUrl)]
    try {
      await until("the two worker processes to register", async () => (await cairn.workers()).length >= 3, 100_000)
      const created = await cairn.schedules.create({ name: "every-minute", cron: "* * * * *", graph })
      // Waiting for the event (the first tick claimed), which comes at the next whole minute.
      const [tick] = await until("the first tick", async () => {
        const ticks = await cairn.schedules.graphs("every-minute")
        return ticks.length > 0 && ticks
      }, 130_000, 500)
      expect(tick!.tick).toBe(created.next_run)
      expect(tick!.graph).toMatch(/^[0-9A-Z]{26}$/)
      expect((await cairn.awaitGraph(tick!.graph!, { timeout: 60_000 })).state).toBe("succeeded")
      const label = `every-minute ${tick!.tick}`
      expect((await cairn.graphs({ limit: 1000 })).items.filter((g) => g.label === label).map((g) => g.id)).toEqual([tick!.graph])
      // The submitter logs the tick after its commit, and its output reaches this process through a
      // pipe: the graph can be seen (and even run) before the line has arrived.
      const submitted = () => [server, ...workers].filter((p) => p.output().includes(`schedule every-minute: tick ${tick!.tick} submitted`))
      await until("the submitting process's log line", () => submitted().length > 0, 60_000)
      expect(submitted()).toHaveLength(1)
      await cairn.schedules.delete("every-minute")
    } finally {
      await Promise.all(workers.map((w) => w.stop()))
    }
  })
})
