/**
 * Real cairn processes for tests, through the harness that benchmarks and scripts use too
 * (scripts/lib/processes.ts): fast liveness timings, one data directory per test database, and a
 * tiny JSON client for the contract.
 */
import * as os from "node:os"
import * as path from "node:path"
import * as harness from "../../scripts/lib/processes.js"
import type { Proc, Server } from "../../scripts/lib/processes.js"

export type { Proc, Server }

/** Wait (bounded) until `f` returns something other than undefined/false; tests poll briskly. */
export const until = <A>(what: string, f: () => Promise<A | undefined | false> | A | undefined | false, timeoutMs = 20_000, everyMs = 25) =>
  harness.until(what, f, timeoutMs, everyMs)

/**
 * Fast, but with a generous heartbeat timeout (as support/db.ts's testConfig, and for the same
 * reason): a worker fences itself after 60% of it without a heartbeat, which a loaded machine can
 * cause in a few seconds, failing its running tasks as worker_lost. A killed worker is still found
 * at once by its session lock; a test about the heartbeat path gives its own timeout.
 */
const fastTimings: Record<string, string> = {
  CAIRN_HEARTBEAT_MS: "200",
  CAIRN_HEARTBEAT_TIMEOUT_MS: "60000",
  CAIRN_REAP_INTERVAL_MS: "250",
  CAIRN_POLL_INTERVAL_MS: "2000",
  CAIRN_SHUTDOWN_GRACE_MS: "5000",
  CAIRN_LOG_LEVEL: "info",
  // One process per server unless a test asks for more (test/api-processes.test.ts): a test that
  // signals or pauses "the server" means the process that answers its requests.
  CAIRN_API_PROCESSES: "1"
}

export const spawnCairn = (entry: "serve" | "worker", env: Record<string, string>): Proc =>
  harness.spawnCairn(entry, { env: { ...fastTimings, ...env } })

/**
 * The data directory (artifact store) of the processes of one test database: processes on one
 * machine share it, as `npm start` and `npm run worker` do.
 */
export const dataDirOf = (databaseUrl: string) => path.join(os.tmpdir(), `cairn-test-${new URL(databaseUrl).pathname.slice(1)}`)

/** Bounded below vitest's 120 s hook timeout, so that a server that never starts says so, with its output. */
export const startServer = (databaseUrl: string, env: Record<string, string> = {}): Promise<Server> =>
  harness.startServer({
    env: { ...fastTimings, DATABASE_URL: databaseUrl, CAIRN_DATA_DIR: dataDirOf(databaseUrl), CAIRN_WORKERS: "2", ...env },
    timeoutMs: 100_000
  })

export const startWorker = (databaseUrl: string, env: Record<string, string> = {}): Proc =>
  spawnCairn("worker", { DATABASE_URL: databaseUrl, CAIRN_DATA_DIR: dataDirOf(databaseUrl), CAIRN_WORKERS: "1", ...env })

/** A tiny JSON client for the contract. */
export const api = (base: string, token?: string) => {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body)
    })
    const text = await res.text()
    let json: any
    try {
      json = text ? JSON.parse(text) : undefined
    } catch {
      json = text
    }
    return { status: res.status, headers: res.headers, body: json }
  }
  return {
    call,
    get: (path: string, headers?: Record<string, string>) => call("GET", path, undefined, headers),
    post: (path: string, body?: unknown) => call("POST", path, body ?? {}),
    /** Long-poll a future until it settles (bounded). */
    settled: async (futureId: string, timeoutMs = 30_000) =>
      until(`future ${futureId} to settle`, async () => {
        const r = await call("GET", `/api/v1/futures/${futureId}?wait=5`)
        return r.status === 200 && r.body.state !== "pending" ? r.body : undefined
      }, timeoutMs, 0)
  }
}
