/**
 * Slow and hostile clients against a real `serve` process: hundreds of idle connections, a
 * slowloris trickling its headers, huge headers, and slow readers of a large file from the content
 * app. Other clients keep being served, the server closes what it should, and its memory stays
 * bounded.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

let server: Server
let c: ReturnType<typeof api>
let upstream: Upstream
let host: string
let port: number
const BIG = Buffer.alloc(8 * 1024 * 1024, 7)

beforeAll(async () => {
  upstream = await startUpstream({ "big.bin": BIG })
  server = await startServer(await createTestDatabase(), { CAIRN_HTTP_IDLE_TIMEOUT_MS: "3000", CAIRN_HTTP_HEADERS_TIMEOUT_MS: "1000" })
  c = api(server.url)
  host = new URL(server.url).hostname
  port = Number(new URL(server.url).port)
  await c.post("/api/v1/remotes", { name: "big", url: upstream.url })
  await c.post("/api/v1/repositories", { name: "big" })
  await c.post("/api/v1/distributions", { name: "big", base_path: "big" })
  const g = await c.post("/api/v1/graphs", {
    nodes: {
      s: { task: "file.sync", params: { repository: "big", remote: "big" } },
      p: { task: "file.publish", params: { version: { $ref: "s.version" } } },
      d: { task: "distribution.set", params: { distribution: "big", publication: { $ref: "p.publication" } } }
    }
  })
  const f = await c.settled(g.body.nodes.d.outputs.distribution, 60_000)
  expect(f.state, JSON.stringify(f.error)).toBe("resolved")
})
afterAll(async () => {
  await server?.stop()
  await upstream?.close()
})

const connect = () =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, host, () => resolve(s))
    s.once("error", reject)
  })
const closed = (s: net.Socket) => new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())))
const rssKiB = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${server.child.pid}/status`, "utf8"))
  return Number(m![1])
}

describe("hostile clients", () => {
  it("300 idle connections: others are still served, and the idle ones are closed after the idle timeout", async () => {
    const idle = await Promise.all(Array.from({ length: 300 }, connect))
    for (const s of idle) s.on("error", () => undefined)
    const r = await c.get("/healthz")
    expect(r.status).toBe(200)
    await until("every idle connection to be closed by the server", async () => {
      await Promise.race([Promise.all(idle.map(closed)), new Promise((r) => setTimeout(r, 200))])
      return idle.every((s) => s.closed) || undefined
    }, 20_000)
  })

  it("a slowloris trickling its headers is cut off at the headers timeout", async () => {
    const s = await connect()
    s.on("error", () => undefined)
    s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n")
    const t = setInterval(() => !s.closed && s.write("X-Slow: y\r\n"), 200)
    try {
      await until("the slow connection to be closed", () => s.closed || undefined, 60_000)
    } finally {
      clearInterval(t)
    }
    expect((await c.get("/healthz")).status).toBe(200)
  })

  it("headers over 16 KiB get 431", async () => {
    const r = await fetch(`${server.url}/healthz`, { headers: { "x-huge": "a".repeat(40_000) } }).catch((e: Error) => e)
    // Node answers 431 and closes; some clients see only the close.
    if (r instanceof Error) expect(r.message).toMatch(/fetch failed|socket|closed/i)
    else expect(r.status).toBe(431)
    expect((await c.get("/healthz")).status).toBe(200)
  })

  it("20 slow readers of an 8 MiB file: memory stays bounded and others are served meanwhile", async () => {
    const before = rssKiB()
    const readers = await Promise.all(Array.from({ length: 20 }, async () => {
      const s = await connect()
      s.on("error", () => undefined)
      s.write(`GET /content/big/big.bin HTTP/1.1\r\nHost: x\r\n\r\n`)
      s.pause() // read nothing: the kernel buffers fill and the server must stop writing
      return s
    }))
    // Meanwhile a normal client downloads the whole file.
    const r = await fetch(`${server.url}/content/big/big.bin`)
    expect(r.status).toBe(200)
    expect((await r.arrayBuffer()).byteLength).toBe(BIG.length)
    const grown = rssKiB() - before
    // 20 readers x 8 MiB would be 160 MiB if the server buffered whole files.
    expect(grown).toBeLessThan(60 * 1024)
    for (const s of readers) s.destroy()
  })
})
