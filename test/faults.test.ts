/**
 * Faults of the database and its connections:
 *
 * - the database's connections killed under running work (pg_terminate_backend on the session of
 *   a worker runtime running some of it, then on every connection at once; the work is held at a
 *   gate until the kills are done, so each kill meets running tasks whatever the machine's speed):
 *   workers notice, re-register, and no task ever runs twice at the same time, nor two tasks that
 *   conflict on a key — checked from intervals the handlers record in memory, not from the
 *   database's own timestamps;
 * - the database restarted mid-run under a real `serve` and `worker` process with clients
 *   long-polling: /healthz and the API answer 503 while it is away, everything recovers by itself,
 *   every graph ends consistent, no process exits.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { checkInvariants } from "../scripts/lib/invariants.js"
import { Db } from "../src/db/client.js"
import { type EmbeddedServer, pgCtl, startEmbedded } from "../src/db/embedded.js"
import { defineKind, noResources } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { api, startServer, startWorker, until } from "./support/processes.js"

interface Interval {
  readonly task: string
  readonly keys: ReadonlyArray<string>
  readonly start: number
  end: number | undefined
}
const intervals: Array<Interval> = []

/** Attempts wait here until the test has finished killing connections (then run `ms` more). */
let openGate!: () => void
const gate = new Promise<void>((resolve) => (openGate = resolve))

/**
 * Records when each attempt really ran (start, and end however it ends: success or interruption).
 * Holding every attempt at the gate means the kills always meet running work, on a fast machine
 * as on a slow one, and that every kill is followed by new attempts of what it interrupted.
 */
const recorded = defineKind({
  name: "test.recorded",
  params: Schema.Struct({ ms: Schema.Int, keys: Schema.Array(Schema.String) }),
  outputs: { result: "value" },
  resources: (p) => ({ exclusive: [...p.keys], shared: [] }),
  handler: (p, ctx) =>
    Effect.suspend(() => {
      const me: Interval = { task: ctx.taskId, keys: p.keys, start: performance.now(), end: undefined }
      intervals.push(me)
      return Effect.promise(() => gate).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(p.ms))),
        Effect.as({ result: ctx.attempt }),
        Effect.ensuring(Effect.sync(() => (me.end = performance.now())))
      )
    })
})

const overlaps = (a: Interval, b: Interval) => a.start < (b.end ?? Infinity) && b.start < (a.end ?? Infinity)

describe("killed connections", () => {
  let url: string
  beforeAll(async () => {
    url = await createTestDatabase()
  })

  it("workers reconnect; no task runs twice at once and conflicting tasks never overlap", async () => {
    const quiet = Logger.minimumLogLevel(LogLevel.Error)
    const runtimes = [0, 1].map(() =>
      // Liveness timings as short as the tests' processes have: a killed session's claim that
      // commits after its worker was reaped leaves an orphan, reaped after half of this.
      ManagedRuntime.make(Layer.merge(engineLayer(url, { heartbeatTimeout: Duration.seconds(3) }, [...builtinKinds, recorded]), quiet))
    )
    const killer = new pg.Client({ connectionString: url })
    await killer.connect()
    try {
      for (const rt of runtimes) await rt.runPromise(Effect.forkDaemon(Effect.scoped(Effect.zipRight(runWorker({ slots: 2 }), Effect.never))))
      const keys = ["k0", "k1", "k2", "k3", "k4"]
      const nodes: Record<string, unknown> = {}
      for (let i = 0; i < 40; i++) {
        const mine = [keys[i % 5]!, ...(i % 3 === 0 ? [keys[(i + 2) % 5]!] : [])]
        nodes[`t${i}`] = { task: "test.recorded", params: { ms: 120, keys: mine }, max_attempts: 20 }
      }
      const g = await runtimes[0]!.runPromise(submitGraph({ nodes: nodes as never }))
      const taskIds = Object.values(g.nodes).map((n) => n.task)

      // Kill the session of a runtime that is running some of the work, then everything, a few
      // times while the work is held at the gate.
      const workers = async () => (await killer.query<{ backend_pid: number }>("SELECT backend_pid FROM workers")).rows
      const busyWorker = async () =>
        (await killer.query<{ backend_pid: number }>(
          `SELECT w.backend_pid FROM workers w
           WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running' AND t.id = ANY($1)) LIMIT 1`,
          [taskIds]
        )).rows[0]
      const killAll = () =>
        killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
      for (let round = 0; round < 6; round++) {
        await until("two registered workers", async () => (await workers()).length >= 2 || undefined, 60_000)
        const started = intervals.length
        if (round % 2 === 0) {
          const victim = await until("a worker running one of the tasks", busyWorker, 60_000)
          await killer.query("SELECT pg_terminate_backend($1)", [victim.backend_pid])
        } else {
          await killAll()
        }
        // What was interrupted runs again: at least one more attempt starts (nothing can finish
        // while the gate is shut, so there is always something to retry).
        await until("another attempt to start", () => intervals.length > started || undefined, 60_000)
      }
      // Let the work finish, and kill everything once more as it does (settles racing the kill).
      openGate()
      await killAll()
      await until("every task to settle", async () => {
        const r = await killer.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND state NOT IN ('succeeded', 'failed', 'canceled')",
          [taskIds]
        )
        return r.rows[0]!.n === 0 || undefined
      }, 60_000)

      const mine = intervals.filter((i) => taskIds.includes(i.task))
      const problems: Array<string> = []
      for (let a = 0; a < mine.length; a++) {
        for (let b = a + 1; b < mine.length; b++) {
          const A = mine[a]!
          const B = mine[b]!
          if (!overlaps(A, B)) continue
          if (A.task === B.task) problems.push(`task ${A.task} ran twice at once`)
          else if (A.keys.some((k) => B.keys.includes(k))) problems.push(`tasks ${A.task} and ${B.task} share a key and overlapped`)
        }
      }
      expect(problems).toEqual([])
      const states = await killer.query<{ state: string; n: number }>(
        "SELECT state, count(*)::int AS n FROM tasks WHERE id = ANY($1) GROUP BY state",
        [taskIds]
      )
      expect(Object.fromEntries(states.rows.map((r) => [r.state, r.n]))).toEqual({ succeeded: 40 })
      const report = await runtimes[0]!.runPromise(checkInvariants(sql`g.id = ${g.id}`))
      expect(report.violations).toEqual([])
    } finally {
      await killer.end()
      for (const rt of runtimes) await rt.dispose()
    }
  })
})

describe("database restart", () => {
  let root: string
  let db: EmbeddedServer
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-restart-"))
    await fs.chmod(root, 0o777)
    db = await startEmbedded(path.join(root, "data"), { settings: { fsync: "off" } })
  })
  afterAll(async () => {
    await db?.stop()
    await fs.rm(root, { recursive: true, force: true })
  })

  it("503 while the database is away, then everything recovers by itself and ends consistent", async () => {
    const env = { CAIRN_DATA_DIR: path.join(root, "cairn") }
    const server = await startServer(db.url, { ...env, CAIRN_WORKERS: "1" })
    const worker = startWorker(db.url, { ...env, CAIRN_WORKERS: "2" })
    const c = api(server.url)
    try {
      const graphs: Array<{ id: string; last: string }> = []
      for (let i = 0; i < 4; i++) {
        const r = await c.post("/api/v1/graphs", {
          label: `restart-${i}`,
          nodes: {
            a: { task: "debug.sleep", params: { ms: 800 }, resources: { exclusive: ["shared-key"] }, max_attempts: 5 },
            b: { task: "debug.sleep", params: { ms: 300, inputs: [{ $ref: "a.result" }] }, max_attempts: 5 },
            c: { task: "debug.sleep", params: { ms: 100, inputs: [{ $ref: "b.result" }] }, max_attempts: 5 }
          }
        })
        expect(r.status).toBe(201)
        graphs.push({ id: r.body.id, last: r.body.nodes.c.outputs.result })
      }
      // Clients long-polling through the outage, tolerating 503s and dropped connections.
      const polls = graphs.map((g) =>
        until(`graph ${g.id} to settle`, async () => {
          const r = await c.get(`/api/v1/futures/${g.last}?wait=5`).catch(() => undefined)
          return r?.status === 200 && r.body.state !== "pending" ? r.body.state as string : undefined
        }, 120_000, 100)
      )
      await until("a task to be running", async () => {
        const r = await c.get("/api/v1/tasks?state=running")
        return r.status === 200 && r.body.items?.length > 0 || undefined
      })

      await pgCtl(path.join(root, "data"), "stop")
      const down = await until("/healthz to answer 503", async () => {
        const r = await c.get("/healthz").catch(() => undefined)
        return r?.status === 503 ? r : undefined
      }, 30_000)
      expect(down.body).toEqual({ ok: false, db: "unreachable", storage: "ok" })
      const api503 = await c.get(`/api/v1/graphs/${graphs[0]!.id}`)
      expect(api503.status).toBe(503)
      expect(api503.body.error.code).toBe("unavailable")
      expect(api503.headers.get("retry-after")).toBe("2")

      await pgCtl(path.join(root, "data"), "start", { fsync: "off" })
      await until("/healthz to answer 200 again", async () => (await c.get("/healthz").catch(() => undefined))?.status === 200 || undefined, 60_000)
      const states = await Promise.all(polls)
      expect(states.every((s) => ["resolved", "failed"].includes(s)), JSON.stringify(states)).toBe(true)

      // Nothing stuck, every invariant holds, no process exited.
      const rt = ManagedRuntime.make(engineLayer(db.url))
      try {
        const report = await rt.runPromise(checkInvariants(sql`g.label LIKE 'restart-%'`))
        expect(report.violations).toEqual([])
        const [running] = await rt.runPromise(Effect.flatMap(Db, (d) => d.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM tasks WHERE state IN ('running', 'ready', 'blocked')`)))
        expect(running!.n).toBe(0)
      } finally {
        await rt.dispose()
      }
      expect(server.child.exitCode).toBeNull()
      expect(worker.child.exitCode).toBeNull()
    } finally {
      await worker.stop()
      await server.stop()
    }
  })
})
