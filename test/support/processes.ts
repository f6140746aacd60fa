/**
 * Real cairn processes for tests: `src/main/serve.ts` and `src/main/worker.ts` run through tsx as
 * child processes against a test database, exactly as `npm start` / `npm run worker` run them.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

export interface Proc {
  readonly child: ChildProcess
  readonly output: () => string
  /** SIGTERM, then wait for exit (SIGKILL after `graceMs`). */
  readonly stop: (graceMs?: number) => Promise<number | null>
  readonly kill9: () => Promise<void>
  readonly exited: Promise<number | null>
}

const fastTimings: Record<string, string> = {
  CAIRN_HEARTBEAT_MS: "200",
  CAIRN_HEARTBEAT_TIMEOUT_MS: "3000",
  CAIRN_REAP_INTERVAL_MS: "250",
  CAIRN_POLL_INTERVAL_MS: "2000",
  CAIRN_SHUTDOWN_GRACE_MS: "5000",
  CAIRN_LOG_LEVEL: "info"
}

export const spawnCairn = (entry: "serve" | "worker", env: Record<string, string>): Proc => {
  // node itself with tsx's loader (not the tsx wrapper): the child's pid is the worker's pid, and
  // a SIGKILL really kills the worker.
  const child = spawn(process.execPath, ["--import", "tsx", `src/main/${entry}.ts`], {
    cwd: root,
    env: { ...process.env, ...fastTimings, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (d) => (out += d))
  child.stderr!.on("data", (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return {
    child,
    output: () => out,
    exited,
    stop: async (graceMs = 15_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill("SIGTERM")
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs)
      const code = await exited
      clearTimeout(t)
      return code
    },
    kill9: async () => {
      child.kill("SIGKILL")
      await exited
    }
  }
}

/** Wait (bounded) until `predicate` holds, polling every `everyMs`. */
export const until = async <A>(what: string, f: () => Promise<A | undefined | false> | A | undefined | false, timeoutMs = 20_000, everyMs = 25): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export interface Server extends Proc {
  readonly url: string
}

/**
 * The data directory (artifact store) of the processes of one test database: processes on one
 * machine share it, as `npm start` and `npm run worker` do.
 */
export const dataDirOf = (databaseUrl: string) => path.join(os.tmpdir(), `cairn-test-${new URL(databaseUrl).pathname.slice(1)}`)

export const startServer = async (databaseUrl: string, env: Record<string, string> = {}): Promise<Server> => {
  const p = spawnCairn("serve", {
    DATABASE_URL: databaseUrl,
    CAIRN_DATA_DIR: dataDirOf(databaseUrl),
    PORT: "0",
    HOST: "127.0.0.1",
    CAIRN_WORKERS: "2",
    ...env
  })
  const url = await until("the server's listening line", () => {
    if (p.child.exitCode !== null) throw new Error(`server exited early:\n${p.output()}`)
    return /cairn listening on (http:\/\/[\d.]+:\d+)/.exec(p.output())?.[1]
  }, 60_000)
  return { ...p, url }
}

export const startWorker = (databaseUrl: string, env: Record<string, string> = {}) =>
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
