/**
 * Content guards (token and signed) against a real `serve` process over real HTTP.
 *
 * The same bytes are published under an open distribution and under guarded ones, so the shared
 * body cache (keyed by sha256) holds them for both: the open one is asked first, and the guarded
 * ones must still refuse. Then a table of every guard type x right, wrong, missing and expired
 * credentials x GET, HEAD, range and conditional requests; signatures replayed on another path,
 * another distribution, with another expiry or after it; guard changes (copy-on-write, rotation,
 * removal) reaching the content app; the sign endpoint's refusals; on-demand fetches and S3
 * redirects only after the check; and no guard secret in the API's answers or the process's output.
 */
import { createHash, randomBytes } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { signatureOf, signedPath } from "../src/content/guards.js"
import { createTestDatabase, watchWrites } from "./support/db.js"
import { type Answer, readAnswer } from "./support/http.js"
import { api, type Server, startServer, until } from "./support/processes.js"
import { type S3Server, startS3 } from "./support/s3.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

const TOKEN_A = "guard-token-A-5d0c9e1b"
const TOKEN_B = "guard-token-B-71f4aa02"
const WRONG = "guard-token-C-00000000"
const FILE = Buffer.from("the same bytes, published open and guarded\n".repeat(20))
const OTHER_FILE = Buffer.from("another file of the same publication\n")
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex")
const ETAG = `"${sha(FILE)}"`

let dbUrl: string
let server: Server
let c: ReturnType<typeof api>
let db: pg.Client
let upstream: Upstream
let publication = ""
const onDemandFile = randomBytes(5000)

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

const content = async (path: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> =>
  readAnswer(await fetch(`${server.url}${path}`, { method: init.method ?? "GET", headers: init.headers ?? {}, redirect: "manual" }))

const settle = async (graph: unknown) => {
  const g = await c.post("/api/v1/graphs", graph)
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const out: Record<string, any> = {}
  for (const [name, node] of Object.entries(g.body.nodes as Record<string, { outputs: Record<string, string> }>)) {
    const f = await c.settled(Object.values(node.outputs)[0]!, 60_000)
    expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
    out[name] = f
  }
  return out
}

const upload = async (bytes: Buffer) => {
  const r = await readAnswer(await fetch(`${server.url}/api/v1/uploads`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: bytes }))
  expect(r.status, r.text).toBe(201)
  return r.json.artifact as string
}

/** Create distribution `name` at `base` with `guard`, serving the shared publication (a future id). */
const distribute = async (name: string, base: string, guard?: unknown, pub = publication) => {
  const created = await c.post("/api/v1/distributions", { name, base_path: base, publication: pub, ...(guard === undefined ? {} : { guard }) })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  return created.body
}

const sign = async (name: string, path: string, seconds = 600) => {
  const r = await c.post(`/api/v1/distributions/${name}/sign`, { path, expires_in_seconds: seconds })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body as { url: string; path: string; expires: number }
}

/** The signing key and id of a distribution, from its current revision: for hand-made URLs. */
const keyOf = async (name: string) => {
  const { rows } = await db.query<{ id: string; key: string }>(
    `SELECT n.resource_id AS id, r.guard->>'key' AS key FROM names n JOIN distribution_revisions r ON r.id = n.revision_id
     WHERE n.kind = 'distribution' AND n.name = $1`,
    [name]
  )
  return { id: rows[0]!.id, key: Buffer.from(rows[0]!.key, "hex") }
}

const handMade = async (name: string, base: string, path: string, expires: number) => {
  const k = await keyOf(name)
  return signedPath(base, path, expires, signatureOf(k.key, k.id, path, expires))
}

const metric = async (name: string) => {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const line = text.split("\n").find((l) => l.startsWith(name))
  return line === undefined ? 0 : Number(line.split(" ").at(-1))
}

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  upstream = await startUpstream({ "lazy.bin": onDemandFile })
  server = await startServer(dbUrl, { CAIRN_WORKERS: "1", CAIRN_LOG_LEVEL: "debug" })
  c = api(server.url)
  db = new pg.Client({ connectionString: dbUrl })
  await db.connect()

  expect((await c.post("/api/v1/repositories", { name: "files" })).status).toBe(201)
  const [a, b] = [await upload(FILE), await upload(OTHER_FILE)]
  const out = await settle({
    nodes: {
      m: { task: "repository.modify", params: { repository: "files", add: [{ relative_path: "dir/f.txt", artifact: a }, { relative_path: "other.txt", artifact: b }] } },
      p: { task: "file.publish", params: { version: { $ref: "m.version" } } }
    }
  })
  publication = out.p.id
  await distribute("open", "g/open")
  await distribute("tok", "g/tok", { type: "token", tokens: [TOKEN_A, TOKEN_B] })
  await distribute("sig", "g/sig", { type: "signed" })
  await distribute("sig2", "g/sig2", { type: "signed" })
})

afterAll(async () => {
  await db?.end()
  await server?.stop()
  await upstream?.close()
})

describe("the shared body cache", () => {
  it("serves the open distribution's copy from memory, and never a guarded one's to a request that fails the check", async () => {
    // Fill the cache through the open distribution, and see it used.
    expect((await content("/content/g/open/dir/f.txt")).status).toBe(200)
    const hits = await metric("cairn_content_body_cache_total{result=\"hit\"}")
    const open = await content("/content/g/open/dir/f.txt")
    expect(open.status).toBe(200)
    expect(Buffer.from(open.text).equals(FILE)).toBe(true)
    expect(await metric("cairn_content_body_cache_total{result=\"hit\"}")).toBe(hits + 1)

    // The same bytes behind guards, without (or with bad) credentials: refused, and the cache not even looked at.
    const lookups = async () =>
      (await metric("cairn_content_body_cache_total{result=\"hit\"}")) + (await metric("cairn_content_body_cache_total{result=\"miss\"}"))
    const before = await lookups()
    const refused: Array<[string, Record<string, string>, number]> = [
      ["/content/g/tok/dir/f.txt", {}, 401],
      ["/content/g/tok/dir/f.txt", { range: "bytes=0-9" }, 401],
      ["/content/g/tok/dir/f.txt", { "if-none-match": ETAG }, 401],
      ["/content/g/tok/dir/f.txt", { authorization: `Bearer ${WRONG}` }, 401],
      ["/content/g/sig/dir/f.txt", {}, 403],
      ["/content/g/sig/dir/f.txt", { "if-none-match": ETAG }, 403]
    ]
    for (const [path, headers, status] of refused) {
      for (const method of ["GET", "HEAD"]) {
        const r = await content(path, { method, headers })
        expect(r.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(status)
        expect(r.text.includes("the same bytes")).toBe(false)
        expect(r.headers.get("etag")).toBeNull()
      }
    }
    expect(await lookups()).toBe(before)

    // With credentials the guarded distribution gets the cached bytes: they are the same file.
    const allowed = await content("/content/g/tok/dir/f.txt", { headers: { authorization: `Bearer ${TOKEN_A}` } })
    expect(allowed.status).toBe(200)
    expect(Buffer.from(allowed.text).equals(FILE)).toBe(true)
    expect(allowed.headers.get("cache-control")).toBe("private, no-cache")
    expect(await metric("cairn_content_body_cache_total{result=\"hit\"}")).toBeGreaterThan(hits + 1)
    // The open distribution's answers say nothing about caching, as before.
    expect(open.headers.get("cache-control")).toBeNull()
  })
})
