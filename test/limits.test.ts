/**
 * The server's limits against real `serve` processes: each refusal is a 4xx with the contract's
 * body whose message names the limit, a refused request writes nothing, and a value at the limit
 * is accepted.
 *
 * | limit                               | value                         | refusal |
 * |-------------------------------------|-------------------------------|---------|
 * | JSON request body                   | CAIRN_BODY_MAX_BYTES (16 MiB)  | 413     |
 * | JSON nesting                        | 64 levels                      | 400     |
 * | long-polls (`?wait=`) per client IP | CAIRN_LONG_POLLS_PER_CLIENT (1000) | 429 |
 * | upload                              | CAIRN_UPLOAD_MAX_BYTES (1 GiB) | 413     |
 * | nodes per graph                     | 10,000                         | 400     |
 * | resource keys declared per node     | 64                             | 400     |
 * | distinct resource keys per graph    | 10,000                         | 400     |
 * | params nesting / size per node      | 32 levels / 1 MiB of JSON      | 400     |
 *
 * `server` runs with the defaults; `small` with small configured limits.
 */
import { once } from "node:events"
import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase, watchWrites } from "./support/db.js"
import { type Answer, readAnswer } from "./support/http.js"
import { api, type Server, startServer, until } from "./support/processes.js"

const MiB = 1024 * 1024
const SMALL_BODY = 64 * 1024
const SMALL_UPLOAD = 1000
const POLLS = 3

let server: Server
let small: Server
let writes: Awaited<ReturnType<typeof watchWrites>>

const fingerprint = () => writes.fingerprint()

const call = async (base: string, method: string, path: string, body?: Buffer | string, type = "application/json"): Promise<Answer> => {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": type },
    body,
    signal: AbortSignal.timeout(60_000)
  })
  return readAnswer(res)
}

const postJson = (base: string, path: string, v: unknown) => call(base, "POST", path, JSON.stringify(v))

/** A refusal: the status, the contract's body, a message naming `limit`, and nothing written. */
const expectRefused = async (send: () => Promise<Answer>, status: number, code: string, limit: string | number) => {
  const before = await fingerprint()
  const a = await send()
  expect(a.status, a.text.slice(0, 500)).toBe(status)
  expect(Object.keys(a.json)).toEqual(["error"])
  expect(a.json.error.code).toBe(code)
  expect(JSON.stringify(a.json.error), a.text.slice(0, 500)).toContain(String(limit))
  expect(await fingerprint()).toEqual(before)
  return a
}

const sleep = (params: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({ task: "debug.sleep", params, ...extra })

/** A raw HTTP/1.1 exchange: write `head`, then `feed`; resolve with the answer's head as soon as it arrives. */
const rawExchange = async (base: string, head: string, feed: (s: net.Socket) => Promise<void>) => {
  const u = new URL(base)
  const socket = net.connect(Number(u.port), u.hostname)
  let received = ""
  socket.on("data", (d) => (received += d.toString("latin1")))
  socket.on("error", () => {})
  await once(socket, "connect")
  socket.write(head)
  const fed = feed(socket).catch(() => {})
  try {
    return await until("an answer", () => (received.includes("\r\n\r\n") ? received : undefined), 20_000)
  } finally {
    socket.destroy()
    await fed
  }
}

beforeAll(async () => {
  const dbUrl = await createTestDatabase()
  ;[server, small] = await Promise.all([
    startServer(dbUrl, { CAIRN_WORKERS: "0" }),
    startServer(dbUrl, {
      CAIRN_WORKERS: "0",
      CAIRN_BODY_MAX_BYTES: String(SMALL_BODY),
      CAIRN_LONG_POLLS_PER_CLIENT: String(POLLS),
      CAIRN_UPLOAD_MAX_BYTES: String(SMALL_UPLOAD)
    })
  ])
  writes = await watchWrites(dbUrl)
})

afterAll(async () => {
  await writes?.close()
  await Promise.all([server?.stop(), small?.stop()])
})

describe("request bodies", () => {
  it("a JSON body over 16 MiB (the default): 413 naming the limit; 16 MiB is read", async () => {
    const graph = JSON.stringify({ nodes: { a: sleep() } })
    // Whitespace is JSON: a small graph padded to the limit is accepted, one byte more is not.
    const atLimit = graph + " ".repeat(16 * MiB - graph.length)
    expect((await call(server.url, "POST", "/api/v1/graphs", atLimit)).status).toBe(201)
    await expectRefused(() => call(server.url, "POST", "/api/v1/graphs", atLimit + " "), 413, "payload_too_large", 16 * MiB)
    // Without a content-length (chunked), the same.
    const chunked = () =>
      fetch(`${server.url}/api/v1/repositories`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 17; i++) c.enqueue(new Uint8Array(MiB).fill(0x20))
            c.close()
          }
        }),
        duplex: "half"
      } as RequestInit).then(readAnswer)
    await expectRefused(chunked, 413, "payload_too_large", 16 * MiB)
  })

  it("is refused without being read: a 1 GiB content-length, or a chunked body past the limit, is answered while it is still being sent", async () => {
    const announced = await rawExchange(
      server.url,
      "POST /api/v1/graphs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n",
      async (s) => void s.write(" ".repeat(1024))
    )
    expect(announced).toMatch(/^HTTP\/1\.1 413/)
    expect(announced).toContain("payload_too_large")
    const streamed = await rawExchange(
      server.url,
      "PATCH /api/v1/repositories/none HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
      async (s) => {
        const chunk = Buffer.alloc(MiB, 0x20)
        // 17 MiB and no final chunk: the body never ends, the answer comes anyway.
        for (let i = 0; i < 17 && !s.destroyed; i++) {
          s.write(`${chunk.length.toString(16)}\r\n`)
          s.write(chunk)
          if (!s.write("\r\n")) await once(s, "drain")
        }
      }
    )
    expect(streamed).toMatch(/^HTTP\/1\.1 413/)
  })

  it("the limit is configurable (CAIRN_BODY_MAX_BYTES) and applies to every JSON endpoint", async () => {
    const body = JSON.stringify({ name: "at-the-limit" })
    expect((await call(small.url, "POST", "/api/v1/repositories", body + " ".repeat(SMALL_BODY - body.length))).status).toBe(201)
    for (const [method, path] of [["POST", "/api/v1/graphs"], ["POST", "/api/v1/remotes"], ["PATCH", "/api/v1/repositories/at-the-limit"]]) {
      await expectRefused(() => call(small.url, method!, path!, body + " ".repeat(SMALL_BODY - body.length + 1)), 413, "payload_too_large", SMALL_BODY)
    }
  })

  it("uploads are not JSON bodies: their own limit (CAIRN_UPLOAD_MAX_BYTES), 413 naming it, nothing kept", async () => {
    // 17 MiB is over the JSON limit, well under the default upload limit.
    const big = await call(server.url, "POST", "/api/v1/uploads", Buffer.alloc(17 * MiB, 1), "application/octet-stream")
    expect(big.status, big.text).toBe(201)
    expect(big.json.size).toBe(17 * MiB)
    expect((await call(small.url, "POST", "/api/v1/uploads", Buffer.alloc(SMALL_UPLOAD, 2), "application/octet-stream")).status).toBe(201)
    await expectRefused(
      () => call(small.url, "POST", "/api/v1/uploads", Buffer.alloc(SMALL_UPLOAD + 1, 3), "application/octet-stream"),
      413,
      "payload_too_large",
      SMALL_UPLOAD
    )
  })

  it("JSON nests at most 64 levels: 400 naming the limit", async () => {
    const nested = (n: number) => "[".repeat(n) + "]".repeat(n)
    // 64 levels pass the check (and then fail the schema); 65 do not.
    const at = await call(small.url, "POST", "/api/v1/repositories", `{"name":${nested(63)}}`)
    expect(at.status).toBe(400)
    expect(at.json.error.message).not.toContain("64 levels")
    await expectRefused(() => call(small.url, "POST", "/api/v1/repositories", `{"name":${nested(64)}}`), 400, "bad_request", 64)
    await expectRefused(() => call(server.url, "POST", "/api/v1/graphs", nested(100_000)), 400, "bad_request", 64)
  })
})

describe("long-polls per client", () => {
  it(`at most CAIRN_LONG_POLLS_PER_CLIENT (${POLLS}) at once per client address: 429 naming the limit, then a slot frees`, async () => {
    const g = await postJson(small.url, "/api/v1/graphs", { nodes: { a: sleep({ ms: 60_000 }) } })
    expect(g.status).toBe(201)
    const future = g.json.nodes.a.outputs.result
    const metric = async () => {
      const text = (await call(small.url, "GET", "/metrics")).text
      return Number(/^cairn_long_polls (\d+)/m.exec(text)?.[1])
    }
    const aborts = Array.from({ length: POLLS }, () => new AbortController())
    const held = aborts.map((a) => fetch(`${small.url}/api/v1/futures/${future}?wait=30`, { signal: a.signal }).then((r) => r.status, () => "aborted"))
    await until("the long-polls to be held", async () => (await metric()) === POLLS)

    const refused = await expectRefused(() => call(small.url, "GET", `/api/v1/futures/${future}?wait=5`), 429, "too_many_requests", POLLS)
    expect(refused.json.error.details).toEqual({ limit: POLLS })
    expect(refused.headers.get("retry-after")).toBe("1")
    // A plain read is not a long-poll.
    expect((await call(small.url, "GET", `/api/v1/futures/${future}`)).status).toBe(200)
    expect((await call(small.url, "GET", `/api/v1/futures/${future}?wait=0`)).status).toBe(200)
    // Another client address has its own allowance.
    const other = await new Promise<number>((resolve, reject) => {
      const u = new URL(small.url)
      http.get({ host: u.hostname, port: u.port, path: `/api/v1/futures/${future}?wait=0.2`, localAddress: "127.0.0.2" }, (res) => {
        res.resume()
        res.on("end", () => resolve(res.statusCode ?? 0))
      }).on("error", reject)
    })
    expect(other).toBe(200)

    // A client that gives up frees its slot.
    aborts[0]!.abort()
    await until("the abandoned long-poll to be let go", async () => (await metric()) === POLLS - 1)
    const again = fetch(`${small.url}/api/v1/futures/${future}?wait=30`).then((r) => r.status)
    await until("the new long-poll to be held", async () => (await metric()) === POLLS)
    expect((await call(small.url, "GET", `/api/v1/futures/${future}?wait=1`)).status).toBe(429)

    // Settlement answers them all, and the slots are free again.
    expect((await call(small.url, "POST", `/api/v1/graphs/${g.json.id}/cancel`)).status).toBe(202)
    expect(await Promise.all([...held.slice(1), again])).toEqual(Array(POLLS).fill(200))
    const after = await Promise.all(Array.from({ length: POLLS }, () => call(small.url, "GET", `/api/v1/futures/${future}?wait=1`)))
    expect(after.map((a) => a.status)).toEqual(Array(POLLS).fill(200))
  })
})

describe("graph limits", () => {
  it("10,000 nodes are accepted; 10,001 are refused naming the limit", async () => {
    const nodes = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i}`, sleep()]))
    const ok = await postJson(server.url, "/api/v1/graphs", { nodes: nodes(10_000) })
    expect(ok.status, ok.text.slice(0, 300)).toBe(201)
    expect(Object.keys(ok.json.nodes)).toHaveLength(10_000)
    await expectRefused(() => postJson(server.url, "/api/v1/graphs", { nodes: nodes(10_001) }), 400, "bad_request", 10_000)
  })

  it("resource keys: 64 declared per node, 10,000 distinct per graph", async () => {
    const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
    expect((await postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep({}, { resources: { exclusive: keys("a", 32), shared: keys("b", 32) } }) } })).status).toBe(201)
    const one = await expectRefused(
      () => postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep({}, { resources: { exclusive: keys("a", 33), shared: keys("b", 32) } }) } }),
      400,
      "bad_request",
      64
    )
    expect(Object.keys(one.json.error.details.nodes)).toEqual(["a"])
    const wide = Object.fromEntries(Array.from({ length: 157 }, (_, i) => [`n${i}`, sleep({}, { resources: { shared: keys(`n${i}`, 64) } })]))
    await expectRefused(() => postJson(server.url, "/api/v1/graphs", { nodes: wide }), 400, "bad_request", 10_000)
  })

  it("params: 32 levels deep and 1 MiB of JSON per node", async () => {
    const nested = (n: number): unknown => (n === 0 ? 1 : [nested(n - 1)])
    // params itself is the first level.
    expect((await postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep({ value: nested(31) }) } })).status).toBe(201)
    const deep = await expectRefused(() => postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep({ value: nested(32) }) } }), 400, "bad_request", 32)
    expect(Object.keys(deep.json.error.details.nodes)).toEqual(["a"])
    const sized = (bytes: number) => {
      const overhead = JSON.stringify({ value: "" }).length
      return { value: "v".repeat(bytes - overhead) }
    }
    expect((await postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep(sized(MiB)) } })).status).toBe(201)
    const big = await expectRefused(() => postJson(server.url, "/api/v1/graphs", { nodes: { a: sleep(sized(MiB + 1)) } }), 400, "bad_request", MiB)
    expect(Object.keys(big.json.error.details.nodes)).toEqual(["a"])
  })

  it("field sizes: labels, names, descriptions, urls, base paths, page sizes, waits", async () => {
    const post = (path: string, v: unknown) => () => postJson(server.url, path, v)
    expect((await post("/api/v1/graphs", { label: "l".repeat(1000), nodes: { a: sleep() } })()).status).toBe(201)
    await expectRefused(post("/api/v1/graphs", { label: "l".repeat(1001), nodes: { a: sleep() } }), 400, "bad_request", 1000)
    expect((await post("/api/v1/repositories", { name: "n".repeat(128), description: "d".repeat(10_000) })()).status).toBe(201)
    await expectRefused(post("/api/v1/repositories", { name: "n".repeat(129) }), 400, "bad_request", 127)
    await expectRefused(post("/api/v1/repositories", { name: "long-description", description: "d".repeat(10_001) }), 400, "bad_request", 10000)
    await expectRefused(post("/api/v1/remotes", { name: "long-url", url: `http://example.com/${"u".repeat(4096)}` }), 400, "bad_request", 4096)
    await expectRefused(post("/api/v1/distributions", { name: "long-path", base_path: "p".repeat(257) }), 400, "bad_request", 256)
    await expectRefused(() => call(server.url, "GET", "/api/v1/tasks?limit=1001"), 400, "bad_request", 1000)
    expect((await call(server.url, "GET", "/api/v1/tasks?limit=1000")).status).toBe(200)
    await expectRefused(() => call(server.url, "GET", "/api/v1/futures/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=61"), 400, "bad_request", 60)
    await expectRefused(() => call(server.url, "GET", "/api/v1/repositories/x/versions/0/content?limit=10001"), 400, "bad_request", 10000)
  })
})
