/**
 * Bearer tokens (CAIRN_API_TOKENS) against a real `serve` process, for every operation of the
 * server's own OpenAPI document: a missing, wrong or malformed token is refused with 401 and the
 * contract's body before anything is read or written; a good one gets through; a `:read` token
 * gets through to every GET and is refused with 403 everywhere else, writing nothing; the OpenAPI
 * document, the content app, /healthz and /metrics stay open; and no token (good or bad) ever
 * appears in the process's output, even at debug level.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase, watchWrites } from "./support/db.js"
import { readAnswer } from "./support/http.js"
import { api, type Server, startServer } from "./support/processes.js"

const GOOD = "tok-GOOD-8d1f3c9a"
const OTHER = "tok-other-27b94e01"
const BAD = "tok-BAD-5e6a0f77"
const READER = "tok-READER-3c88d1e4"

let server: Server
let writes: Awaited<ReturnType<typeof watchWrites>>
let doc: any
const ids = { graph: "", task: "", future: "" }
const FILE = Buffer.from("hello from behind the token\n")

interface Operation {
  readonly method: string
  readonly path: string
  readonly op: any
}

const operations = (): Array<Operation> =>
  Object.entries<any>(doc.paths).flatMap(([path, item]) =>
    Object.entries<any>(item)
      .filter(([m]) => ["get", "post", "put", "patch", "delete"].includes(m))
      .map(([m, op]) => ({ method: m.toUpperCase(), path, op }))
  )

const isOpenApiDocument = (o: Operation) => o.method === "GET" && o.path === "/api/v1/openapi.json"

/** The operation's path with plausible values: real ids, an existing name, version 0. */
const concrete = (o: Operation, name = "auth-repo") =>
  o.path.replace(/\{([^}]+)\}/g, (_, p: string) =>
    p === "id" ? (o.path.startsWith("/api/v1/futures") ? ids.future : o.path.startsWith("/api/v1/tasks") ? ids.task : ids.graph)
    : p === "name" ? name
    : p === "number" ? "0"
    : "x")

/** A body the operation would accept, so that only the token can stop it. */
const bodyFor = (o: Operation): { body?: Buffer; type?: string } => {
  const json = (v: unknown) => ({ body: Buffer.from(JSON.stringify(v)), type: "application/json" })
  if (o.path === "/api/v1/uploads") return { body: Buffer.from("refused upload bytes"), type: "application/octet-stream" }
  if (o.method === "POST" && o.path === "/api/v1/graphs") return json({ nodes: { a: { task: "debug.sleep" } } })
  if (o.method === "POST" && o.path === "/api/v1/repositories") return json({ name: "created-by-anyone" })
  if (o.method === "POST" && o.path === "/api/v1/remotes") return json({ name: "created-by-anyone", url: "http://127.0.0.1:9/PULP_MANIFEST" })
  if (o.method === "POST" && o.path === "/api/v1/distributions") return json({ name: "created-by-anyone", base_path: "anyone" })
  if (o.method === "PATCH") return json({})
  if (o.op.requestBody) return json({})
  return {}
}

const call = async (method: string, path: string, authorization: string | undefined, b: { body?: Buffer; type?: string } = {}) => {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...(authorization === undefined ? {} : { authorization }), ...(b.type ? { "content-type": b.type } : {}) },
    body: method === "GET" || method === "HEAD" ? undefined : b.body,
    signal: AbortSignal.timeout(30_000)
  })
  return readAnswer(res)
}

const expectForbidden = (r: Awaited<ReturnType<typeof call>>, what: string) => {
  expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBe(403)
  expect(r.contentType ?? "", what).toMatch(/^application\/json/)
  expect(Object.keys(r.json), what).toEqual(["error"])
  expect(r.json.error.code, what).toBe("forbidden")
  expect(r.json.error.message, what).toMatch(/only read/)
}

const expectUnauthorized = (r: Awaited<ReturnType<typeof call>>, what: string) => {
  expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBe(401)
  expect(r.contentType ?? "", what).toMatch(/^application\/json/)
  expect(Object.keys(r.json), what).toEqual(["error"])
  expect(r.json.error.code, what).toBe("unauthorized")
  expect(typeof r.json.error.message, what).toBe("string")
}

/** Unchanged = nothing written (support/db.ts, watchWrites). */
const fingerprint = () => writes.fingerprint()

/** Malformed or wrong credentials: none of them is "Bearer <a configured token>". */
const refused: Array<[string, string | undefined]> = [
  ["no header", undefined],
  ["a wrong token", `Bearer ${BAD}`],
  ["an empty token", "Bearer "],
  ["the scheme alone", "Bearer"],
  ["the token without a scheme", GOOD],
  ["another scheme", `Basic ${Buffer.from(`user:${GOOD}`).toString("base64")}`],
  ["another 7-character scheme", `Token: ${GOOD}`],
  ["a longer token", `Bearer ${GOOD}x`],
  ["a prefix of the token", `Bearer ${GOOD.slice(0, -1)}`],
  ["the token in another case", `Bearer ${GOOD.toUpperCase()}`],
  ["both tokens at once", `Bearer ${GOOD},${OTHER}`],
  ["two spaces", `Bearer  ${GOOD}`],
  ["the whole configuration", `Bearer ${GOOD}, ${OTHER}`],
  ["the read token's entry as configured", `Bearer ${READER}:read`]
]

beforeAll(async () => {
  const dbUrl = await createTestDatabase()
  server = await startServer(dbUrl, { CAIRN_API_TOKENS: ` ${GOOD} , ${OTHER},${READER}:read `, CAIRN_LOG_LEVEL: "debug", CAIRN_WORKERS: "1" })
  writes = await watchWrites(dbUrl)
  doc = (await api(server.url).get("/api/v1/openapi.json")).body

  // A published file under /content/auth, made with a good token.
  const c = api(server.url, GOOD)
  expect((await c.post("/api/v1/repositories", { name: "auth-repo" })).status).toBe(201)
  expect((await c.post("/api/v1/remotes", { name: "auth-repo", url: "http://127.0.0.1:9/PULP_MANIFEST" })).status).toBe(201)
  expect((await c.post("/api/v1/distributions", { name: "auth-repo", base_path: "auth" })).status).toBe(201)
  const up = await call("POST", "/api/v1/uploads", `Bearer ${OTHER}`, { body: FILE, type: "application/octet-stream" })
  expect(up.status, up.text).toBe(201)
  const g = await c.post("/api/v1/graphs", {
    nodes: {
      m: { task: "repository.modify", params: { repository: "auth-repo", add: [{ relative_path: "hello.txt", artifact: up.json.artifact }] } },
      p: { task: "file.publish", params: { version: { $ref: "m.version" } } },
      d: { task: "distribution.set", params: { distribution: "auth-repo", publication: { $ref: "p.publication" } } }
    }
  })
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const done = await c.settled(g.body.nodes.d.outputs.distribution, 60_000)
  expect(done.state, JSON.stringify(done.error)).toBe("resolved")
  ids.graph = g.body.id
  ids.task = g.body.nodes.m.task
  ids.future = g.body.nodes.m.outputs.version
})

afterAll(async () => {
  await writes?.close()
  await server?.stop()
})

describe("with CAIRN_API_TOKENS", () => {
  it("the OpenAPI document is open, and declares bearer security on every other operation", async () => {
    const r = await call("GET", "/api/v1/openapi.json", undefined)
    expect(r.status).toBe(200)
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" })
    const ops = operations().filter((o) => !isOpenApiDocument(o))
    expect(ops.length).toBeGreaterThanOrEqual(25)
    for (const o of ops) {
      expect(o.op.security, `${o.method} ${o.path}`).toEqual([{ bearer: [] }])
      expect(Object.keys(o.op.responses), `${o.method} ${o.path}`).toEqual(expect.arrayContaining(["401", "403"]))
    }
  })

  it("every operation refuses a missing, wrong or malformed token: 401, the contract's body, nothing written", async () => {
    const before = await fingerprint()
    for (const o of operations().filter((o) => !isOpenApiDocument(o))) {
      for (const [what, authorization] of refused) {
        const r = await call(o.method, concrete(o), authorization, bodyFor(o))
        expectUnauthorized(r, `${o.method} ${o.path} with ${what}`)
      }
      // Hostile parameters, bodies and content types do not get past the token either.
      const hostile = await call(o.method, concrete(o, "%00").replace(/[0-9A-Z]{26}/, "not-a-ulid") + "?wait=999&limit=-1&bogus=1", `Bearer ${BAD}`, {
        body: Buffer.from("{\"__proto__\":"),
        type: "text/plain"
      })
      expectUnauthorized(hostile, `${o.method} ${o.path} hostile`)
      // A token anywhere but the authorization header does not count.
      const inQuery = await call(o.method, `${concrete(o)}?access_token=${GOOD}&token=${GOOD}`, undefined, bodyFor(o))
      expectUnauthorized(inQuery, `${o.method} ${o.path} with the token in the query`)
    }
    expect(await fingerprint()).toEqual(before)
  })

  it("a request body is not read before the token is checked: a huge or endless one gets its 401", async () => {
    const r = await call("POST", "/api/v1/graphs", undefined, { body: Buffer.alloc(32 * 1024 * 1024, 0x20), type: "application/json" })
    expectUnauthorized(r, "32 MiB without a token")
  })

  it("unknown routes and methods under /api/v1 need a token too (401 before 404)", async () => {
    for (const [method, path] of [
      ["GET", "/api/v1"],
      ["GET", "/api/v1/"],
      ["GET", "/api/v1/nope"],
      ["PUT", "/api/v1/graphs"],
      ["DELETE", "/api/v1/graphs"],
      ["POST", "/api/v1/openapi.json"],
      ["GET", "/api/v1/graphs/x/y/z"],
      ["GET", "/api/v2/graphs"]
    ] as const) {
      const anonymous = await call(method, path, undefined)
      const good = await call(method, path, `Bearer ${GOOD}`)
      expect(good.status, `${method} ${path}`).toBe(404)
      expect(good.json.error.code).toBe("not_found")
      if (path.startsWith("/api/v1")) expectUnauthorized(anonymous, `${method} ${path}`)
      else expect(anonymous.status).toBe(404)
    }
  })

  it("either configured token gets through to every operation", async () => {
    for (const o of operations()) {
      for (const token of [GOOD, OTHER]) {
        // A delete of a name that does not exist: a 404 says the token got through, and keeps /content/auth.
        const r = await call(o.method, concrete(o, o.method === "DELETE" ? "gone" : "auth-repo"), `Bearer ${token}`, bodyFor(o))
        const what = `${o.method} ${o.path}: ${r.status} ${r.text.slice(0, 300)}`
        expect(r.status, what).not.toBe(401)
        expect(r.status, what).toBeLessThan(500)
      }
    }
    // The scheme is case-insensitive (RFC 9110).
    expect((await call("GET", "/api/v1/workers", `bearer ${GOOD}`)).status).toBe(200)
    expect((await call("GET", "/api/v1/workers", `BEARER ${OTHER}`)).status).toBe(200)
  })

  it("a :read token gets through to every GET, long-polls included, and is refused (403) everywhere else, writing nothing", async () => {
    const before = await fingerprint()
    const ops = operations().filter((o) => !isOpenApiDocument(o))
    expect(ops.filter((o) => o.method !== "GET").length).toBeGreaterThanOrEqual(10)
    for (const o of ops) {
      const r = await call(o.method, concrete(o), `Bearer ${READER}`, bodyFor(o))
      if (o.method === "GET") {
        const what = `${o.method} ${o.path}: ${r.status} ${r.text.slice(0, 300)}`
        expect(r.status, what).not.toBe(401)
        expect(r.status, what).not.toBe(403)
        expect(r.status, what).toBeLessThan(500)
      } else {
        expectForbidden(r, `${o.method} ${o.path}`)
      }
    }
    // A long-poll is a read.
    const poll = await call("GET", `/api/v1/futures/${ids.future}?wait=1`, `Bearer ${READER}`)
    expect(poll.status).toBe(200)
    expect(poll.json.state).toBe("resolved")
    // Unknown routes: a read is a 404, anything else is refused first.
    expect((await call("GET", "/api/v1/nope", `Bearer ${READER}`)).status).toBe(404)
    expectForbidden(await call("PUT", "/api/v1/graphs", `Bearer ${READER}`), "PUT /api/v1/graphs")
    expect(await fingerprint()).toEqual(before)
  })

  it("the content app, /healthz and /metrics need no token", async () => {
    for (const authorization of [undefined, `Bearer ${BAD}`]) {
      const file = await fetch(`${server.url}/content/auth/hello.txt`, { headers: authorization ? { authorization } : {} })
      expect(file.status).toBe(200)
      expect(Buffer.from(await file.arrayBuffer())).toEqual(FILE)
      const head = await fetch(`${server.url}/content/auth/hello.txt`, { method: "HEAD" })
      expect(head.status).toBe(200)
      const manifest = await fetch(`${server.url}/content/auth/PULP_MANIFEST`)
      expect(manifest.status).toBe(200)
      expect(await manifest.text()).toContain("hello.txt")
      expect((await call("GET", "/content/auth/missing.txt", authorization)).status).toBe(404)
      expect((await call("GET", "/content/nowhere/x", authorization)).status).toBe(404)
      const health = await call("GET", "/healthz", authorization)
      expect(health.status).toBe(200)
      expect(health.json).toEqual({ ok: true, db: "ok", storage: "ok" })
      const metrics = await call("GET", "/metrics", authorization)
      expect(metrics.status).toBe(200)
      expect(metrics.text).toContain("cairn_tasks")
    }
  })

  it("no token, good or bad, appears in the process's output, even at debug level", async () => {
    // Requests that log: failures, a failing task, a refused upload, a 404, with both kinds of token.
    const c = api(server.url, GOOD)
    const g = await c.post("/api/v1/graphs", { nodes: { boom: { task: "debug.sleep", params: { fail: "logged failure" } } } })
    await c.settled(g.body.nodes.boom.outputs.result)
    await call("POST", "/api/v1/uploads", `Bearer ${GOOD}`, { body: Buffer.from("x"), type: "application/octet-stream" })
    await call("POST", "/api/v1/graphs", `Bearer ${BAD}`, { body: Buffer.from("{"), type: "application/json" })
    await call("POST", "/api/v1/graphs", `Bearer ${GOOD}`, { body: Buffer.from("{"), type: "application/json" })
    await call("GET", "/api/v1/nope", `Bearer ${GOOD}`)
    await call("GET", "/api/v1/nope", `Bearer ${BAD}`)
    await call("GET", `/api/v1/tasks/${ids.task}`, `Bearer ${OTHER}`)
    const out = server.output()
    expect(out).toContain("level=DEBUG")
    expect(out).toContain("logged failure")
    await call("POST", "/api/v1/graphs", `Bearer ${READER}`, { body: Buffer.from("{}"), type: "application/json" })
    await call("GET", `/api/v1/tasks/${ids.task}`, `Bearer ${READER}`)
    for (const secret of [GOOD, OTHER, BAD, READER, GOOD.toUpperCase(), Buffer.from(`user:${GOOD}`).toString("base64")]) {
      expect(out.includes(secret), `the output contains ${secret}`).toBe(false)
    }
  })
})
