/**
 * cairn as a benchmark runs it: `src/main/serve.ts` and `src/main/worker.ts` as real processes
 * (the process harness, scripts/lib/processes.ts), a keep-alive HTTP client for the v1 API whose
 * round trips are measured, the typed client (src/client) to await futures, and the task rows
 * read back for latencies (timestamps are PostgreSQL's clock, the same host clock the client reads).
 */
import * as http from "node:http"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { type CairnClient, createClient, type FutureView } from "../../../src/client/index.js"
import { onInterrupt, type Proc, type Server, spawnCairn, startServer as startServe, stopAll, until } from "../../lib/processes.js"
import { withClient } from "./postgres.js"
import { nowMs } from "./stats.js"

/** Quiet logs, default engine timings unless overridden. */
const baseEnv: Record<string, string> = {
  CAIRN_LOG_LEVEL: "warning",
  CAIRN_SHUTDOWN_GRACE_MS: "2000",
  // The engine's benchmarks measure the engine through one API process (whose CPU is its pid's);
  // bench:content, which measures the API processes, runs the default.
  CAIRN_API_PROCESSES: "1"
}

export const makeDataDir = async (label: string) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `cairn-bench-${label}-`))
  onInterrupt(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

/** An API server (no worker slots unless `env` gives some). */
export const startServer = (databaseUrl: string, dataDir: string, env: Record<string, string | undefined> = {}, nodeArgs: ReadonlyArray<string> = []): Promise<Server> =>
  startServe({ env: { ...baseEnv, DATABASE_URL: databaseUrl, CAIRN_DATA_DIR: dataDir, CAIRN_WORKERS: "0", ...env }, nodeArgs })

export const startWorkers = (n: number, databaseUrl: string, dataDir: string, env: Record<string, string> = {}, nodeArgs: ReadonlyArray<string> = []): Array<Proc> =>
  Array.from({ length: n }, (_, i) =>
    spawnCairn("worker", {
      name: `worker-${i}`,
      env: { ...baseEnv, DATABASE_URL: databaseUrl, CAIRN_DATA_DIR: dataDir, CAIRN_WORKERS: "1", ...env },
      nodeArgs
    }))

/** Wait until `n` workers are registered (and their processes alive). */
export const waitForWorkers = async (databaseUrl: string, n: number, procs: ReadonlyArray<Proc> = [], timeoutMs = 1_200_000) => {
  const t0 = Date.now()
  let said = t0
  return withClient(databaseUrl, (c) =>
    until(`${n} registered workers`, async () => {
      const dead = procs.find((p) => !p.alive())
      if (dead) throw new Error(`${dead.name} exited:\n${dead.output()}`)
      const r = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM workers")
      // Dozens of processes loading at once on a busy 2-core machine take minutes: say so.
      if (Date.now() - said > 30_000) {
        said = Date.now()
        console.error(`  ${r.rows[0]!.n} of ${n} workers registered after ${Math.round((said - t0) / 1000)} s`)
      }
      return r.rows[0]!.n >= n
    }, timeoutMs, 200))
}

export const stopProcs = (procs: ReadonlyArray<Proc>) => stopAll(procs, 15_000)

// ---- HTTP ---------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

export interface HttpResult {
  readonly status: number
  readonly body: any
  /** Client-side round trip (ms). */
  readonly ms: number
  /** Epoch ms when the request was started. */
  readonly at: number
}

/** One JSON request over a keep-alive connection. */
export const request = (base: string, method: string, p: string, body?: unknown): Promise<HttpResult> =>
  new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const at = nowMs()
    const t0 = performance.now()
    const req = http.request(base + p, {
      method,
      agent,
      headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {}
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (d: Buffer) => chunks.push(d))
      res.on("end", () => {
        const ms = performance.now() - t0
        const text = Buffer.concat(chunks).toString()
        let json: any = text
        try {
          json = text ? JSON.parse(text) : undefined
        } catch { /* keep text */ }
        resolve({ status: res.statusCode ?? 0, body: json, ms, at })
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    if (payload) req.write(payload)
    req.end()
  })

export const post = async (base: string, p: string, body: unknown, expect = 201) => {
  const r = await request(base, "POST", p, body)
  if (r.status !== expect) throw new Error(`POST ${p}: ${r.status} ${JSON.stringify(r.body).slice(0, 500)}`)
  return r
}

export interface NodeSpec {
  readonly task: string
  readonly params?: unknown
  readonly resources?: { readonly exclusive?: ReadonlyArray<string>; readonly shared?: ReadonlyArray<string> }
  readonly max_attempts?: number
}

export interface Submitted extends HttpResult {
  readonly body: { id: string; nodes: Record<string, { task: string; outputs: Record<string, string> }> }
}

export const submitGraph = (base: string, nodes: Record<string, NodeSpec>, label?: string) =>
  post(base, "/api/v1/graphs", { ...(label ? { label } : {}), nodes }) as Promise<Submitted>

const clients = new Map<string, CairnClient>()

/** The typed client of the server at `base`. */
export const clientOf = (base: string): CairnClient => {
  let c = clients.get(base)
  if (!c) clients.set(base, (c = createClient({ url: base })))
  return c
}

/** The future once settled (resolved, failed or canceled), through the typed client's long-poll. */
export const awaitFuture = (base: string, id: string, timeoutMs = 600_000): Promise<FutureView & { readonly value?: any }> =>
  clientOf(base).awaitFuture(id, { timeout: timeoutMs })

// ---- rows ---------------------------------------------------------------------------------------

export interface TaskRow {
  readonly id: string
  readonly graph_id: string
  readonly node: string
  readonly seq: number
  readonly state: string
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
  /** Epoch milliseconds (fractional), or null. */
  readonly created: number
  readonly ready: number | null
  readonly started: number | null
  readonly finished: number | null
  readonly worker_id: string | null
}

const epoch = (col: string) => `extract(epoch FROM ${col}) * 1000 AS ${col.replace(/_at$/, "")}`

export const taskRows = async (databaseUrl: string, where = "true"): Promise<Array<TaskRow>> =>
  withClient(databaseUrl, async (c) => {
    const r = await c.query<TaskRow & { seq: string }>(
      `SELECT id, graph_id, node, seq, state, exclusive, shared, worker_id,
              ${epoch("created_at")}, ${epoch("ready_at")}, ${epoch("started_at")}, ${epoch("finished_at")}
       FROM tasks WHERE ${where} ORDER BY seq`
    )
    return r.rows.map((t) => ({
      ...t,
      seq: Number(t.seq),
      created: Number(t.created),
      ready: t.ready === null ? null : Number(t.ready),
      started: t.started === null ? null : Number(t.started),
      finished: t.finished === null ? null : Number(t.finished)
    }))
  })

/** Wait until no task is unsettled (polling the partial count every `everyMs`). */
export const waitAllSettled = async (databaseUrl: string, opts: { readonly timeoutMs?: number; readonly everyMs?: number; readonly procs?: ReadonlyArray<Proc> } = {}) =>
  withClient(databaseUrl, (c) =>
    until("every task to settle", async () => {
      const dead = (opts.procs ?? []).find((p) => !p.alive())
      if (dead) throw new Error(`${dead.name} exited:\n${dead.output().slice(-4000)}`)
      const r = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE state IN ('blocked', 'ready', 'running')")
      return r.rows[0]!.n === 0
    }, opts.timeoutMs ?? 3_600_000, opts.everyMs ?? 200))

export const countTasks = async (databaseUrl: string) =>
  withClient(databaseUrl, async (c) => {
    const r = await c.query<{ state: string; n: number }>("SELECT state, count(*)::int AS n FROM tasks GROUP BY state")
    return Object.fromEntries(r.rows.map((x) => [x.state, x.n])) as Record<string, number>
  })
