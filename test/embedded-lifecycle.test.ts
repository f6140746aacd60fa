/**
 * Who stops the embedded PostgreSQL (DESIGN.md §9): the last cairn process of the data directory
 * when it exits, or the watchdog when the last one was killed; a process that finds the server
 * without a watchdog adopts it. Real `serve` and `worker` processes with DATABASE_URL unset, as
 * `npm start` and `npm run worker` run them.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isAlive, readWatchdog } from "../src/db/embedded-lifecycle.js"
import { pgCtl } from "../src/db/embedded.js"
import { api, type Proc, spawnCairn, until } from "./support/processes.js"

let dir: string
const procs: Array<Proc> = []

beforeEach(async () => {
  // These processes must start or join the embedded server, not a DATABASE_URL of the environment.
  expect(process.env.DATABASE_URL, "DATABASE_URL must be unset for this test").toBeUndefined()
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-embedded-"))
  await fs.chmod(dir, 0o777)
})

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill9()))
  // Whatever a failed test left: the server and its watchdog.
  const watchdog = await readWatchdog(path.join(dir, "data"))
  if (watchdog && isAlive(watchdog)) process.kill(watchdog.pid, "SIGKILL")
  await pgCtl(path.join(dir, "data"), "stop").catch(() => undefined)
  await fs.rm(dir, { recursive: true, force: true })
})

const env = () => ({ CAIRN_DATA_DIR: path.join(dir, "data") })

const serve = async (workers = "1") => {
  const p = spawnCairn("serve", { ...env(), PORT: "0", HOST: "127.0.0.1", CAIRN_WORKERS: workers })
  procs.push(p)
  const url = await until("the server's listening line", () => {
    if (p.child.exitCode !== null) throw new Error(`serve exited early:\n${p.output()}`)
    return /cairn listening on (http:\/\/[\d.]+:\d+)/.exec(p.output())?.[1]
  }, 120_000)
  return { ...p, url }
}

const worker = async () => {
  const p = spawnCairn("worker", { ...env(), CAIRN_WORKERS: "1" })
  procs.push(p)
  await until("the worker's registration", () => /worker \S+ registered/.test(p.output()), 120_000)
  return p
}

/** The postmaster's pid, from its pid file (undefined when the server is not running). */
const postmaster = async () => {
  const text = await fs.readFile(path.join(dir, "data", "pg", "postmaster.pid"), "utf8").catch(() => undefined)
  const pid = text === undefined ? undefined : Number(text.split("\n")[0])
  return pid !== undefined && isAlive({ pid, start: 0 }) ? pid : undefined
}

const serverGone = (pid: number) => until(`PostgreSQL (pid ${pid}) to stop`, () => !isAlive({ pid, start: 0 }), 60_000, 100)

/** A plain connection to the embedded server, from postgres.json: does it answer? */
const answers = async () => {
  const info = JSON.parse(await fs.readFile(path.join(dir, "data", "postgres.json"), "utf8")) as { port: number; password: string }
  const c = new pg.Client({ host: "127.0.0.1", port: info.port, user: "postgres", password: info.password, database: "postgres" })
  c.on("error", () => undefined)
  try {
    await c.connect()
    return (await c.query("SELECT 1 AS one")).rows[0].one === 1
  } finally {
    await c.end().catch(() => undefined)
  }
}

const runsAGraph = async (url: string) => {
  const client = api(url)
  const g = await client.post("/api/v1/graphs", { nodes: { a: { task: "debug.sleep", params: { value: "ok" } } } })
  expect(g.status).toBe(201)
  expect(await client.settled(g.body.nodes.a.outputs.result, 60_000)).toMatchObject({ state: "resolved", value: "ok" })
}

describe("the embedded PostgreSQL's lifecycle", () => {
  it("stops when a lone npm start is killed; the next start starts it again and stops it on exit", async () => {
    const first = await serve()
    const pid = (await postmaster())!
    expect(pid).toBeDefined()
    await first.kill9()
    // Nobody is attached any more: the watchdog stops the server.
    await serverGone(pid)

    const second = await serve()
    expect(second.output()).toMatch(/started the embedded PostgreSQL/)
    await runsAGraph(second.url)
    const pid2 = (await postmaster())!
    expect(await second.stop()).toBe(0)
    expect(second.output()).toMatch(/stopped the embedded PostgreSQL: no cairn process uses it any more/)
    await serverGone(pid2)
  })

  it("keeps running for a worker when npm start is killed, and stops when the worker goes too", async () => {
    const first = await serve("0")
    const w = await worker()
    expect(w.output()).toMatch(/joined the embedded PostgreSQL/)
    const pid = (await postmaster())!
    await first.kill9()

    // A new npm start joins the server that kept running for the worker, and the worker runs its work.
    const second = await serve("0")
    expect(second.output()).toMatch(/joined the embedded PostgreSQL/)
    expect(await postmaster()).toBe(pid)
    await runsAGraph(second.url)
    // It leaves (SIGTERM): the worker still uses the server.
    expect(await second.stop()).toBe(0)
    expect(second.output()).toMatch(/left the embedded PostgreSQL running/)
    expect(await answers()).toBe(true)

    // The last one is killed: the watchdog stops the server.
    await w.kill9()
    await serverGone(pid)
  })

  it("adopts a server whose starter and watchdog were both killed", async () => {
    const first = await serve("0")
    const w = await worker()
    const pid = (await postmaster())!
    const watchdog = (await readWatchdog(path.join(dir, "data")))!
    expect(isAlive(watchdog)).toBe(true)
    await first.kill9()
    process.kill(watchdog.pid, "SIGKILL")
    await until("the watchdog to be gone", () => !isAlive(watchdog), 30_000)

    const second = await serve("0")
    expect(second.output()).toMatch(/the embedded PostgreSQL had no watchdog; started one/)
    await runsAGraph(second.url)
    await Promise.all([second.kill9(), w.kill9()])
    await serverGone(pid)
  })
})
