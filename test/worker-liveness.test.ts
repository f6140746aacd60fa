/**
 * Several real worker processes against one database: kill -9 during a task, graceful shutdown.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Proc, type Server, startServer, startWorker, until } from "./support/processes.js"

let server: Server
let dbUrl: string
let c: ReturnType<typeof api>
const workers: Array<Proc> = []

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  // The API only: the work is done by the worker processes each test starts.
  server = await startServer(dbUrl, { CAIRN_WORKERS: "0" })
  c = api(server.url)
})
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop(5000)))
})
afterAll(async () => {
  await server?.stop()
})

const spawnWorkers = async (n: number, env: Record<string, string> = {}) => {
  const before = (await c.get("/api/v1/workers")).body.length as number
  for (let i = 0; i < n; i++) workers.push(startWorker(dbUrl, env))
  await until(`${n} workers to register`, async () => (await c.get("/api/v1/workers")).body.length >= before + n, 60_000)
}

/** The worker process running a task (worker names carry the pid). */
const runningOn = async (taskId: string) =>
  until(`task ${taskId} to run`, async () => {
    const t = (await c.get(`/api/v1/tasks/${taskId}`)).body
    if (t.state !== "running" || !t.worker) return undefined
    return workers.find((w) => t.worker.includes(`-${w.child.pid}-`))
  })

describe("worker liveness", () => {
  it("a killed worker's task fails with worker_lost within seconds, and the next task on its key runs", async () => {
    await spawnWorkers(2)
    const g = await c.post("/api/v1/graphs", {
      nodes: {
        doomed: { task: "debug.sleep", params: { ms: 120_000 }, resources: { exclusive: ["repo-x"] } },
        next: { task: "debug.sleep", params: { value: "after" }, resources: { exclusive: ["repo-x"] } },
        downstream: { task: "debug.sleep", params: { inputs: [{ $ref: "doomed.result" }] } }
      }
    })
    const victim = await runningOn(g.body.nodes.doomed.task)
    await victim!.kill9()
    // How soon, and by which path, the death is noticed: the next test.
    const doomed = await c.settled(g.body.nodes.doomed.outputs.result, 30_000)
    expect(doomed.state).toBe("failed")
    expect(doomed.error.code).toBe("worker_lost")
    const next = await c.settled(g.body.nodes.next.outputs.result)
    expect(next).toMatchObject({ state: "resolved", value: "after" })
    const down = await c.settled(g.body.nodes.downstream.outputs.result)
    expect(down.error).toMatchObject({ code: "upstream_failed", cause_task: g.body.nodes.doomed.task })
    const listed = (await c.get("/api/v1/workers")).body as Array<{ pid: number }>
    expect(listed.map((w) => w.pid)).not.toContain(victim!.child.pid)
  })

  it("a killed worker's death is noticed through its session lock, long before its heartbeat could expire", async () => {
    // With a heartbeat timeout of ten minutes, the heartbeat path (and the orphan rule, which waits
    // half of it) cannot declare the victim dead for five minutes at least; only the session
    // advisory lock, which vanishes with the killed process's connection, can, and DESIGN.md
    // promises it does in seconds (a reaper pass every CAIRN_REAP_INTERVAL_MS, 250 ms here). So a
    // task settled within a minute of the kill was settled through the lock; on a quiet machine it
    // takes about a second. (The bound is far from both, so that a loaded machine cannot reach it.)
    const heartbeatTimeoutMs = 600_000
    await spawnWorkers(2, { CAIRN_HEARTBEAT_TIMEOUT_MS: String(heartbeatTimeoutMs) })
    const g = await c.post("/api/v1/graphs", {
      nodes: { doomed: { task: "debug.sleep", params: { ms: 600_000 } } }
    })
    const victim = await runningOn(g.body.nodes.doomed.task)
    await victim!.kill9()
    const doomed = await c.settled(g.body.nodes.doomed.outputs.result, 60_000)
    expect(doomed.state).toBe("failed")
    expect(doomed.error.code).toBe("worker_lost")
    const listed = (await c.get("/api/v1/workers")).body as Array<{ pid: number }>
    expect(listed.map((w) => w.pid)).not.toContain(victim!.child.pid)
  })

  it("a killed worker's task with attempts left is retried on another worker", async () => {
    await spawnWorkers(2)
    const g = await c.post("/api/v1/graphs", {
      nodes: { retried: { task: "debug.sleep", params: { ms: 1500, value: 7 }, max_attempts: 3 } }
    })
    const victim = await runningOn(g.body.nodes.retried.task)
    await victim!.kill9()
    const f = await c.settled(g.body.nodes.retried.outputs.result, 30_000)
    expect(f).toMatchObject({ state: "resolved", value: 7 })
    const t = (await c.get(`/api/v1/tasks/${g.body.nodes.retried.task}`)).body
    expect(t.attempts).toBe(2)
    expect(t.worker).not.toContain(`-${victim!.child.pid}-`)
  })

  it("SIGTERM lets a short task finish, and hands a long one back for another worker", async () => {
    await spawnWorkers(1, { CAIRN_SHUTDOWN_GRACE_MS: "1500" })
    const g = await c.post("/api/v1/graphs", {
      nodes: {
        short: { task: "debug.sleep", params: { ms: 600, value: "short" } },
        long: { task: "debug.sleep", params: { ms: 4000, value: "long" } }
      }
    })
    // One worker, one slot: wait until the short one runs, then ask the worker to stop.
    const w = await runningOn(g.body.nodes.short.task)
    const code = await w!.stop(20_000)
    expect(code).toBe(0)
    const short = (await c.get(`/api/v1/futures/${g.body.nodes.short.outputs.result}`)).body
    expect(short).toMatchObject({ state: "resolved", value: "short" })
    // Nothing is left running or owned by the stopped worker.
    const long = (await c.get(`/api/v1/tasks/${g.body.nodes.long.task}`)).body
    expect(["ready", "blocked"]).toContain(long.state)
    expect((await c.get("/api/v1/workers")).body.length).toBe(0)
    await spawnWorkers(1)
    const f = await c.settled(g.body.nodes.long.outputs.result, 30_000)
    expect(f).toMatchObject({ state: "resolved", value: "long" })
  })
})
