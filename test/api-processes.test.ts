/**
 * `serve` with CAIRN_API_PROCESSES=2 (src/main/api-cluster.ts), as real processes: both API
 * processes answer, a distribution change reaches both (each has its own routing table and cache),
 * /metrics adds every process up whichever answers, a killed API process is replaced while the
 * other keeps answering, SIGTERM stops them all, and a primary killed with SIGKILL takes its API
 * processes with it.
 *
 * Which process answered a request is observed from outside, as an operator would with `ss -tp`:
 * the kernel's socket table (/proc/net/tcp) gives the server side of the client's connection, and
 * /proc/<pid>/fd says which process holds it. Nothing in cairn names its process to clients.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { waitForLine } from "../scripts/lib/processes.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let dbUrl: string
let server: Server
const API_PROCESSES = { CAIRN_API_PROCESSES: "2", CAIRN_WORKERS: "1" }

/** Live processes whose parent is `pid`. */
const childrenOf = (pid: number): Array<number> =>
  fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return Number(fields[1]) === pid && fields[0] !== "Z"
    } catch {
      return false
    }
  })

const alive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}

/** The inode of the server's end of the TCP connection from local port `clientPort` to `serverPort`. */
const serverSocketInode = (serverPort: number, clientPort: number): string | undefined => {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0")
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10) continue
    if (f[1]!.endsWith(`:${hex(serverPort)}`) && f[2]!.endsWith(`:${hex(clientPort)}`)) return f[9]
  }
  return undefined
}

/** Which of `pids` holds the server's end of `socket`. */
const pidServing = (pids: ReadonlyArray<number>, serverPort: number, socket: { localPort?: number | undefined }) => {
  const inode = serverSocketInode(serverPort, socket.localPort!)
  if (inode === undefined) return undefined
  return pids.find((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`
        } catch {
          return false
        }
      })
    } catch {
      return false
    }
  })
}

interface Answer {
  readonly status: number
  readonly body: Buffer
}

/** A keep-alive connection to the server, and the API process that answers on it. */
interface Pinned {
  readonly pid: number
  readonly get: (path: string) => Promise<Answer>
  readonly close: () => void
}

const getOn = (agent: http.Agent, base: string, path: string, onSocket?: (s: import("node:net").Socket) => void) =>
  new Promise<Answer>((resolve, reject) => {
    const req = http.get(base + path, { agent }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }))
      res.on("error", reject)
    })
    if (onSocket) req.once("socket", onSocket)
    req.on("error", reject)
  })

/** A new connection, and the API process (one of `pids`) the primary handed it to. */
const connect = async (s: Server, pids: ReadonlyArray<number>): Promise<Pinned> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  let socket: import("node:net").Socket | undefined
  const first = await getOn(agent, s.url, "/healthz", (sk) => (socket = sk))
  expect(first.status).toBe(200)
  const pid = await until("the connection's server process", () => pidServing(pids, Number(new URL(s.url).port), socket!))
  return { pid, get: (path) => getOn(agent, s.url, path), close: () => agent.destroy() }
}

/**
 * Connections until one lands on each of `pids`. Each API process accepts from the shared socket
 * (the kernel picks which): connections are opened 8 at a time and held, so that a process busy
 * accepting leaves the next ones to the others.
 */
const connectToEach = async (s: Server, pids: ReadonlyArray<number>): Promise<Map<number, Pinned>> => {
  const pinned = new Map<number, Pinned>()
  const spare: Array<Pinned> = []
  for (let batch = 0; batch < 20 && pinned.size < pids.length; batch++) {
    for (const c of await Promise.all(Array.from({ length: 8 }, () => connect(s, pids)))) {
      if (pinned.has(c.pid)) spare.push(c)
      else pinned.set(c.pid, c)
    }
  }
  for (const c of spare) c.close()
  expect([...pinned.keys()].sort()).toEqual([...pids].sort())
  return pinned
}

const upload = async (base: string, bytes: Buffer) => {
  const res = await fetch(`${base}/api/v1/uploads`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: bytes })
  expect(res.status).toBe(201)
  return (await res.json() as { artifact: string }).artifact
}

/** Repository `repo` holding `bytes` at f.bin, published and served by distribution "procs". */
const publishAndDistribute = async (base: string, repo: string, bytes: Buffer) => {
  const c = api(base)
  const artifact = await upload(base, bytes)
  expect((await c.post("/api/v1/repositories", { name: repo })).status).toBe(201)
  const g = await c.post("/api/v1/graphs", {
    nodes: {
      modify: { task: "repository.modify", params: { repository: repo, add: [{ relative_path: "f.bin", artifact }] } },
      publish: { task: "file.publish", params: { version: { $ref: "modify.version" } } },
      distribute: { task: "distribution.set", params: { distribution: "procs", publication: { $ref: "publish.publication" } } }
    }
  })
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const done = await c.settled(g.body.nodes.distribute.outputs.distribution, 60_000)
  expect(done.state, JSON.stringify(done.error)).toBe("resolved")
}

/** cairn_content_requests_total{method="GET",status="200"} in a /metrics text. */
const contentGets = (text: string) => {
  const m = /^cairn_content_requests_total\{method="GET",status="200"\} (\d+)$/m.exec(text)
  return m === null ? 0 : Number(m[1])
}

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  server = await startServer(dbUrl, API_PROCESSES)
})
afterAll(async () => {
  await server?.stop()
})

describe("serve with two API processes", () => {
  it("both answer; a distribution change reaches both; /metrics counts both; SIGTERM stops them all", async () => {
    const pids = await until("two API processes", () => {
      const c = childrenOf(server.pid).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("src/main/serve.ts"))
      return c.length === 2 ? c : undefined
    })
    expect((await api(server.url).post("/api/v1/distributions", { name: "procs", base_path: "procs" })).status).toBe(201)
    const first = randomBytes(3000)
    await publishAndDistribute(server.url, "one", first)

    const pinned = await connectToEach(server, pids)
    let gets = 0
    // Each process loads the route, the publication and the file's bytes into its own memory.
    for (const c of pinned.values()) {
      const a = await c.get("/content/procs/f.bin")
      gets++
      expect(a.status).toBe(200)
      expect(a.body.equals(first)).toBe(true)
    }

    // The distribution moves to other bytes at the same path: each process's table follows (its
    // own LISTEN), so each serves the new file. Without that, a process would keep answering from
    // the publication it has in memory.
    const second = randomBytes(3000)
    await publishAndDistribute(server.url, "two", second)
    for (const [pid, c] of pinned) {
      await until(`API process ${pid} to serve the new publication`, async () => {
        const a = await c.get("/content/procs/f.bin")
        gets++
        expect(a.status).toBe(200)
        return a.body.equals(second)
      })
    }

    // /metrics from either process counts the content requests both answered.
    for (const [pid, c] of pinned) {
      const m = await c.get("/metrics")
      expect(m.status).toBe(200)
      expect(contentGets(m.body.toString()), `content GETs in /metrics answered by ${pid}`).toBe(gets)
    }
    for (const c of pinned.values()) c.close()

    expect(await server.stop()).toBe(0)
    for (const pid of pids) expect(alive(pid), `API process ${pid} after SIGTERM`).toBe(false)
  })

  it("a killed API process is replaced, and the other answers meanwhile; SIGKILL of the primary ends them all", async () => {
    const s = await startServer(dbUrl, API_PROCESSES)
    try {
      const apiPids = () => childrenOf(s.pid).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("src/main/serve.ts"))
      const before = await until("two API processes", () => (apiPids().length === 2 ? apiPids() : undefined))
      const [victim, survivor] = before as [number, number]
      process.kill(victim, "SIGKILL")
      await until(`API process ${victim} to be gone`, () => !alive(victim))
      // New connections are answered while the replacement starts (by the survivor, or by it).
      for (let i = 0; i < 10; i++) (await connect(s, apiPids())).close()
      await waitForLine(s, new RegExp(`API process ${victim} exited \\(signal SIGKILL\\); starting another`), "the restart's log line")
      const [, replacing] = await waitForLine(s, new RegExp(`API process (\\d+) listening, replacing ${victim}`), "the replacement's log line")
      const replacement = Number(replacing)
      const after = apiPids()
      expect(after.sort()).toEqual([survivor, replacement].sort())
      // The replacement answers too.
      const pinned = await connectToEach(s, after)
      expect((await pinned.get(replacement)!.get("/healthz")).status).toBe(200)
      for (const c of pinned.values()) c.close()

      // The primary killed: its API processes leave with its IPC channel.
      await s.kill9()
      for (const pid of after) await until(`API process ${pid} to leave after the primary's SIGKILL`, () => !alive(pid))
    } finally {
      await s.stop()
    }
  })
})
