/**
 * The listener of a real `serve` process (src/api/listener.ts): the content app in front of the
 * HttpApi app on the same connections, the headers timeout sparing connections whose first
 * request was a content request, and shutdown answering waiting long-polls before it closes.
 */
import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let server: Server
let c: ReturnType<typeof api>

beforeAll(async () => {
  // No worker slots: a submitted task stays pending, and so does its future.
  server = await startServer(await createTestDatabase(), { CAIRN_WORKERS: "0", CAIRN_HTTP_HEADERS_TIMEOUT_MS: "500" })
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
})

const host = () => new URL(server.url).hostname
const port = () => Number(new URL(server.url).port)

/** One request on `agent`; which socket it used, and the error message of the contract's body. */
const call = (agent: http.Agent, method: string, path: string) =>
  new Promise<{ status: number; message: string; reused: boolean }>((resolve, reject) => {
    const req = http.request({ host: host(), port: port(), method, path, agent }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode!, message: body === "" ? "" : JSON.parse(body).error.message, reused: req.reusedSocket }))
    })
    req.on("error", reject)
    req.end()
  })

const connect = () =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port(), host(), () => resolve(s))
    s.once("error", reject)
  })

describe("the listener", () => {
  it("answers GET|HEAD /content/* with the content app and everything else with the API, on one connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const answers = [
        await call(agent, "GET", "/content/nowhere/file"),
        await call(agent, "POST", "/content/nowhere/file"),
        await call(agent, "HEAD", "/content/nowhere/file"),
        await call(agent, "GET", "/api/v1/nothing"),
        await call(agent, "GET", "/content/nowhere/file")
      ]
      expect(answers.map((a) => [a.status, a.message])).toEqual([
        [404, "nothing is served at this path"],
        [404, "no route for POST /content/nowhere/file"],
        [404, ""],
        [404, "no route for GET /api/v1/nothing"],
        [404, "nothing is served at this path"]
      ])
      expect(answers.slice(1).every((a) => a.reused)).toBe(true)
    } finally {
      agent.destroy()
    }
  })

  it("a connection whose first request went to the content app is not cut at the headers timeout", async () => {
    const served = await connect()
    served.on("error", () => undefined)
    const answered = new Promise<string>((resolve) => {
      let text = ""
      served.on("data", (d) => {
        text += d
        if (text.includes("\r\n\r\n")) resolve(text)
      })
    })
    served.write("HEAD /content/nowhere/file HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(await answered).toMatch(/^HTTP\/1\.1 404 /)
    // A connection opened after it that never completes its headers: once it is cut, the first
    // connection's headers timer has run out too.
    const slow = await connect()
    slow.on("error", () => undefined)
    slow.write("GET /healthz HTTP/1.1\r\n")
    await until("the slow connection to be cut", () => slow.closed || undefined, 60_000)
    expect(served.closed).toBe(false)
    const again = new Promise<string>((resolve) => served.once("data", (d) => resolve(String(d))))
    served.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(await again).toMatch(/^HTTP\/1\.1 200 /)
    served.destroy()
  })

  // Last: it stops the server.
  it("shutdown answers a waiting long-poll with the future's state, then exits 0 without waiting for the poll's end", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { a: { task: "debug.sleep", params: { ms: 1 } } } })
    expect(g.status).toBe(201)
    const future = g.body.nodes.a.outputs.result
    const poll = c.get(`/api/v1/futures/${future}?wait=60`)
    poll.catch(() => undefined) // awaited below, after the stop
    await until("the long-poll to be waiting", async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text()
      return /^cairn_long_polls 1$/m.test(text) || undefined
    })
    // Without the answer, closing would wait for the poll (60 s) and `stop` would SIGKILL at 30 s.
    const code = await server.stop(30_000)
    const answer = await poll
    expect(answer.status).toBe(200)
    expect(answer.body.state).toBe("pending")
    expect(code).toBe(0)
  })
})
