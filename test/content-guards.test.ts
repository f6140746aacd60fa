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
import { ulid } from "ulid"
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
/** A name that needs percent-encoding in a URL, and means something else unencoded (`?`, `#`, `%`, `&`, `=`). */
const ODD_PATH = "sp ace/ä%?#&=.txt"
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

const content = async (path: string, init: { method?: string; headers?: Record<string, string> } = {}, base = server.url): Promise<Answer> =>
  readAnswer(await fetch(`${base}${path}`, { method: init.method ?? "GET", headers: init.headers ?? {}, redirect: "manual" }))

const settle = async (graph: unknown, client = c) => {
  const g = await client.post("/api/v1/graphs", graph)
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const out: Record<string, any> = {}
  for (const [name, node] of Object.entries(g.body.nodes as Record<string, { outputs: Record<string, string> }>)) {
    const f = await client.settled(Object.values(node.outputs)[0]!, 60_000)
    expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
    out[name] = f
  }
  return out
}

const upload = async (bytes: Buffer, base = server.url) => {
  const r = await readAnswer(await fetch(`${base}/api/v1/uploads`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: bytes }))
  expect(r.status, r.text).toBe(201)
  return r.json.artifact as string
}

/** Create distribution `name` at `base` with `guard`, serving the shared publication (a future id). */
const distribute = async (name: string, base: string, guard?: unknown, pub = publication, client = c) => {
  const created = await client.post("/api/v1/distributions", { name, base_path: base, publication: pub, ...(guard === undefined ? {} : { guard }) })
  expect(created.status, JSON.stringify(created.body)).toBe(201)
  return created.body
}

const sign = async (name: string, path: string, seconds = 600, client = c) => {
  const r = await client.post(`/api/v1/distributions/${name}/sign`, { path, expires_in_seconds: seconds })
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
      m: { task: "repository.modify", params: { repository: "files", add: [{ relative_path: "dir/f.txt", artifact: a }, { relative_path: "other.txt", artifact: b }, { relative_path: ODD_PATH, artifact: b }] } },
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

// ---- every guard x credentials x request kind ----------------------------------------------------

interface Credentials {
  readonly guard: "token" | "signed"
  readonly what: string
  /** The request's path and headers, for the distribution's file `dir/f.txt`. */
  readonly make: () => Promise<{ path: string; headers: Record<string, string> }>
  /** Allowed, or the refusal's status. */
  readonly expect: "allowed" | 401 | 403
}

const tokenPath = "/content/g/tok/dir/f.txt"
const header = (authorization: string) => async () => ({ path: tokenPath, headers: { authorization } })
const signedBy = (f: () => Promise<string>) => async () => ({ path: await f(), headers: {} })
const now = () => Math.floor(Date.now() / 1000)
/** Replace the value of query parameter `name` in a signed path. */
const withParam = (path: string, name: string, value: string) => {
  const [p, q] = path.split("?")
  const params = new URLSearchParams(q)
  params.set(name, value)
  return `${p}?${params}`
}

const table: ReadonlyArray<Credentials> = [
  { guard: "token", what: "the first token as a bearer", make: header(`Bearer ${TOKEN_A}`), expect: "allowed" },
  { guard: "token", what: "the second token as a bearer", make: header(`Bearer ${TOKEN_B}`), expect: "allowed" },
  { guard: "token", what: "a lower-case scheme", make: header(`bearer ${TOKEN_A}`), expect: "allowed" },
  { guard: "token", what: "the token as a basic password", make: header(basic("anyone", TOKEN_B)), expect: "allowed" },
  { guard: "token", what: "the token as a basic password with a colon user", make: header(basic("", TOKEN_A)), expect: "allowed" },
  { guard: "token", what: "no credentials", make: async () => ({ path: tokenPath, headers: {} }), expect: 401 },
  { guard: "token", what: "a wrong token", make: header(`Bearer ${WRONG}`), expect: 401 },
  { guard: "token", what: "an empty bearer", make: header("Bearer "), expect: 401 },
  { guard: "token", what: "the scheme alone", make: header("Bearer"), expect: 401 },
  { guard: "token", what: "the token without a scheme", make: header(TOKEN_A), expect: 401 },
  { guard: "token", what: "the token as the basic user", make: header(basic(TOKEN_A, "x")), expect: 401 },
  { guard: "token", what: "a basic header without a password", make: header(`Basic ${Buffer.from(TOKEN_A).toString("base64")}`), expect: 401 },
  { guard: "token", what: "a longer token", make: header(`Bearer ${TOKEN_A}x`), expect: 401 },
  { guard: "token", what: "a prefix of the token", make: header(`Bearer ${TOKEN_A.slice(0, -1)}`), expect: 401 },
  { guard: "token", what: "both tokens at once", make: header(`Bearer ${TOKEN_A},${TOKEN_B}`), expect: 401 },
  { guard: "token", what: "the token in the query", make: async () => ({ path: `${tokenPath}?token=${TOKEN_A}&access_token=${TOKEN_A}`, headers: {} }), expect: 401 },
  { guard: "token", what: "a signed URL of another distribution", make: signedBy(async () => (await sign("sig", "dir/f.txt")).path.replace("/g/sig/", "/g/tok/")), expect: 401 },

  { guard: "signed", what: "a fresh signed URL", make: signedBy(async () => (await sign("sig", "dir/f.txt")).path), expect: "allowed" },
  { guard: "signed", what: "its signature in upper case", make: signedBy(async () => {
    const p = (await sign("sig", "dir/f.txt")).path
    return withParam(p, "signature", new URLSearchParams(p.split("?")[1]).get("signature")!.toUpperCase())
  }), expect: "allowed" },
  { guard: "signed", what: "the path percent-encoded otherwise", make: signedBy(async () => (await sign("sig", "dir/f.txt")).path.replace("dir/f.txt", "%64ir/f%2Etxt")), expect: "allowed" },
  { guard: "signed", what: "more query parameters", make: signedBy(async () => `${(await sign("sig", "dir/f.txt")).path}&x=1`), expect: "allowed" },
  { guard: "signed", what: "a hand-made URL with the key, in the future", make: signedBy(() => handMade("sig", "g/sig", "dir/f.txt", now() + 600)), expect: "allowed" },
  { guard: "signed", what: "no signature", make: async () => ({ path: "/content/g/sig/dir/f.txt", headers: {} }), expect: 403 },
  { guard: "signed", what: "expires without a signature", make: async () => ({ path: `/content/g/sig/dir/f.txt?expires=${now() + 600}`, headers: {} }), expect: 403 },
  { guard: "signed", what: "a hand-made URL with the key, expired", make: signedBy(() => handMade("sig", "g/sig", "dir/f.txt", now() - 1)), expect: 403 },
  { guard: "signed", what: "a hand-made URL with the key, expiring now", make: signedBy(() => handMade("sig", "g/sig", "dir/f.txt", now())), expect: 403 },
  { guard: "signed", what: "one digit of the signature changed", make: signedBy(async () => {
    const p = (await sign("sig", "dir/f.txt")).path
    const s = new URLSearchParams(p.split("?")[1]).get("signature")!
    return withParam(p, "signature", `${s.slice(0, -1)}${s.endsWith("0") ? "1" : "0"}`)
  }), expect: 403 },
  { guard: "signed", what: "the expiry moved later", make: signedBy(async () => {
    const s = await sign("sig", "dir/f.txt")
    return withParam(s.path, "expires", String(s.expires + 3600))
  }), expect: 403 },
  { guard: "signed", what: "the signature of another file", make: signedBy(async () => (await sign("sig", "other.txt")).path.replace("other.txt", "dir/f.txt")), expect: 403 },
  { guard: "signed", what: "another distribution's URL for the same file", make: signedBy(async () => (await sign("sig2", "dir/f.txt")).path.replace("/g/sig2/", "/g/sig/")), expect: 403 },
  { guard: "signed", what: "the parameters twice", make: signedBy(async () => {
    const s = await sign("sig", "dir/f.txt")
    return `${s.path}&expires=${s.expires}`
  }), expect: 403 },
  { guard: "signed", what: "a malformed signature", make: signedBy(async () => withParam((await sign("sig", "dir/f.txt")).path, "signature", "zz")), expect: 403 },
  { guard: "signed", what: "a malformed expiry", make: signedBy(async () => withParam((await sign("sig", "dir/f.txt")).path, "expires", "-5")), expect: 403 },
  { guard: "signed", what: "a token instead", make: async () => ({ path: "/content/g/sig/dir/f.txt", headers: { authorization: `Bearer ${TOKEN_A}` } }), expect: 403 }
]

/** The request kinds a guard must not be bypassed by, and what each answers when allowed. */
const kinds: ReadonlyArray<{ what: string; method: string; headers: Record<string, string>; allowed: number; body?: Buffer }> = [
  { what: "GET", method: "GET", headers: {}, allowed: 200, body: FILE },
  { what: "HEAD", method: "HEAD", headers: {}, allowed: 200 },
  { what: "range", method: "GET", headers: { range: "bytes=2-9" }, allowed: 206, body: FILE.subarray(2, 10) },
  { what: "conditional", method: "GET", headers: { "if-none-match": ETAG }, allowed: 304 },
  { what: "HEAD range", method: "HEAD", headers: { range: "bytes=2-9" }, allowed: 206 },
  { what: "unsatisfiable range", method: "GET", headers: { range: `bytes=${FILE.length}-` }, allowed: 416 }
]

describe("every guard, credentials and request kind", () => {
  it.each(table.map((t) => [`${t.guard}: ${t.what}`, t] as const))("%s", async (_, t) => {
    for (const k of kinds) {
      const { path, headers } = await t.make()
      const r = await content(path, { method: k.method, headers: { ...headers, ...k.headers } })
      const what = `${k.what} ${path} -> ${r.status} ${r.text.slice(0, 200)}`
      if (t.expect === "allowed") {
        expect(r.status, what).toBe(k.allowed)
        if (k.body !== undefined) expect(Buffer.from(r.text).equals(k.body), what).toBe(true)
        expect(r.headers.get("cache-control"), what).toBe("private, no-cache")
        continue
      }
      expect(r.status, what).toBe(t.expect)
      // Nothing about the file: no etag, length of it, range, or bytes.
      expect(r.headers.get("etag"), what).toBeNull()
      expect(r.headers.get("content-range"), what).toBeNull()
      if (k.method === "GET") {
        expect(r.json?.error?.code, what).toBe(t.expect === 401 ? "unauthorized" : "forbidden")
        expect(r.text.includes("the same bytes"), what).toBe(false)
      }
      if (t.expect === 401) expect(r.headers.get("www-authenticate"), what).toMatch(/^Bearer realm="g\/tok".*Basic realm="g\/tok"$/)
      else expect(r.headers.get("www-authenticate"), what).toBeNull()
    }
  })

  it("refuses before saying whether a file exists; with credentials, a missing file is a 404", async () => {
    expect((await content("/content/g/tok/no/such/file")).status).toBe(401)
    expect((await content("/content/g/sig/no/such/file")).status).toBe(403)
    const missing = await content("/content/g/tok/no/such/file", { headers: { authorization: `Bearer ${TOKEN_A}` } })
    expect(missing.status).toBe(404)
    expect((await content((await sign("sig", "no/such/file")).path)).status).toBe(404)
    // The manifest is content like any other.
    expect((await content("/content/g/tok/PULP_MANIFEST")).status).toBe(401)
    const manifest = await content((await sign("sig", "PULP_MANIFEST")).path)
    expect(manifest.status).toBe(200)
    expect(manifest.text).toContain("dir/f.txt")
  })

  it("refuses a signed URL once its expiry has passed by the server's clock, and not before", async () => {
    const s = await sign("sig", "dir/f.txt", 2)
    // Poll until the server refuses it. An answer received before the expiry must be a 200, a
    // request sent after it must be refused as expired; in between, either (the clock is shared).
    let refused: Answer | undefined
    while (refused === undefined) {
      const sent = Date.now()
      const r = await content(s.path)
      const received = Date.now()
      if (received < s.expires * 1000) expect(r.status, r.text).toBe(200)
      if (sent >= s.expires * 1000) expect(r.status, r.text).toBe(403)
      if (r.status !== 200) refused = r
      else await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(refused.status).toBe(403)
    expect(refused.json.error.code).toBe("forbidden")
    expect(refused.json.error.message).toMatch(/expired/)
  })
})

// ---- guards are revision fields --------------------------------------------------------------------

/** Every secret a server could leak: the tokens, their digests, and the distributions' keys. */
const secrets = async () => {
  const { rows } = await db.query<{ key: string }>(`SELECT guard->>'key' AS key FROM distribution_revisions WHERE guard->>'type' = 'signed'`)
  return [TOKEN_A, TOKEN_B, WRONG, sha(Buffer.from(TOKEN_A)), sha(Buffer.from(TOKEN_B)), ...rows.map((r) => r.key)]
}

const patch = (name: string, body: unknown) => c.call("PATCH", `/api/v1/distributions/${name}`, body)
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

describe("a guard is a field of the distribution's revisions", () => {
  it("is shown as set (its kind, how many tokens), never with its secrets", async () => {
    expect((await c.get("/api/v1/distributions/tok")).body.guard).toEqual({ type: "token", token_count: 2 })
    expect((await c.get("/api/v1/distributions/sig")).body.guard).toEqual({ type: "signed" })
    expect((await c.get("/api/v1/distributions/open")).body.guard).toBeNull()
    const twice = await distribute("twice", "g/twice", { type: "token", tokens: [TOKEN_A, TOKEN_A, TOKEN_B] })
    expect(twice.guard).toEqual({ type: "token", token_count: 2 })
    const answers = [
      await c.get("/api/v1/distributions"),
      ...await Promise.all(["tok", "sig", "twice"].flatMap((n) => [c.get(`/api/v1/distributions/${n}`), c.get(`/api/v1/distributions/${n}/revisions`)]))
    ].map((r) => JSON.stringify(r.body))
    for (const secret of await secrets()) {
      for (const text of answers) expect(text.includes(secret), `an answer holds ${secret}`).toBe(false)
    }
  })

  it("is kept by changes that do not give it: a new base path, a new publication by distribution.set", async () => {
    const before = await sign("sig", "dir/f.txt")
    await distribute("moving", "g/mv1", { type: "token", tokens: [TOKEN_A] })
    const moved = await patch("moving", { base_path: "g/mv2" })
    expect(moved.status, JSON.stringify(moved.body)).toBe(201)
    expect(moved.body.guard).toEqual({ type: "token", token_count: 1 })
    // The first request after the change already sees the new base path, guarded.
    expect((await content("/content/g/mv2/dir/f.txt")).status).toBe(401)
    expect((await content("/content/g/mv2/dir/f.txt", bearer(TOKEN_A))).status).toBe(200)

    // A new publication through the task that moves distributions.
    const up = await upload(Buffer.from("version two\n"))
    const out = await settle({
      nodes: {
        m: { task: "repository.modify", params: { repository: "files", add: [{ relative_path: "two.txt", artifact: up }] } },
        p: { task: "file.publish", params: { version: { $ref: "m.version" } } },
        d: { task: "distribution.set", params: { distribution: "moving", publication: { $ref: "p.publication" } } },
        s: { task: "distribution.set", params: { distribution: "sig", publication: { $ref: "p.publication" } } }
      }
    })
    expect(out.d.state).toBe("resolved")
    expect((await c.get("/api/v1/distributions/moving")).body.guard).toEqual({ type: "token", token_count: 1 })
    await until("the new publication at g/mv2", async () =>
      (await content("/content/g/mv2/two.txt", bearer(TOKEN_A))).status === 200)
    expect((await content("/content/g/mv2/two.txt")).status).toBe(401)
    // The signing key too: a URL signed before distribution.set still opens the file.
    expect((await content(before.path)).status).toBe(200)
    await until("sig's new publication", async () => (await content((await sign("sig", "two.txt")).path)).status === 200)
    const revisions = (await c.get("/api/v1/distributions/moving/revisions")).body as Array<{ guard: unknown }>
    expect(revisions.length).toBe(3)
    for (const r of revisions) expect(r.guard).toEqual({ type: "token", token_count: 1 })
  })

  it("removed, opens the content to the first request after the change", async () => {
    await distribute("opening", "g/opening", { type: "token", tokens: [TOKEN_A] })
    expect((await content("/content/g/opening/dir/f.txt")).status).toBe(401)
    const r = await patch("opening", { guard: null })
    expect(r.status).toBe(201)
    expect(r.body.guard).toBeNull()
    // No waiting: a refusal is checked again against every change committed before the request.
    expect((await content("/content/g/opening/dir/f.txt")).status).toBe(200)
  })

  it("given again, replaces the tokens; a signed guard given again draws a new key, voiding every URL signed before", async () => {
    await distribute("rotating", "g/rotating", { type: "token", tokens: [TOKEN_A] })
    expect((await patch("rotating", { guard: { type: "token", tokens: [TOKEN_B] } })).status).toBe(201)
    expect((await content("/content/g/rotating/dir/f.txt", bearer(TOKEN_B))).status).toBe(200)
    expect((await content("/content/g/rotating/dir/f.txt", bearer(TOKEN_A))).status).toBe(401)

    expect((await patch("rotating", { guard: { type: "signed" } })).status).toBe(201)
    const old = await sign("rotating", "dir/f.txt")
    expect((await content(old.path)).status).toBe(200)
    const oldKey = (await keyOf("rotating")).key
    expect((await patch("rotating", { guard: { type: "signed" } })).status).toBe(201)
    expect((await keyOf("rotating")).key.equals(oldKey)).toBe(false)
    const fresh = await sign("rotating", "dir/f.txt")
    // The new URL works at once (the refusal by the old key is checked again); then the old one is refused.
    expect((await content(fresh.path)).status).toBe(200)
    const refused = await content(old.path)
    expect(refused.status).toBe(403)
    expect(refused.json.error.message).toMatch(/signature does not match/)
  })

  it("a signed URL opens only its own distribution, even one that holds the same key (a copied row)", async () => {
    await distribute("twin", "g/twin", { type: "signed" })
    // A revision of twin with sig's key, written in one transaction as a PATCH writes one.
    const { key } = await keyOf("sig")
    const revision = ulid()
    await db.query("BEGIN")
    await db.query(
      `INSERT INTO distribution_revisions (id, distribution_id, name, base_path, publication_id, guard)
       SELECT $2, n.resource_id, n.name, r.base_path, r.publication_id, jsonb_build_object('type', 'signed', 'key', $3::text)
       FROM names n JOIN distribution_revisions r ON r.id = n.revision_id WHERE n.kind = 'distribution' AND n.name = $1`,
      ["twin", revision, key.toString("hex")]
    )
    await db.query(`UPDATE names SET revision_id = $2 WHERE kind = 'distribution' AND name = $1`, ["twin", revision])
    await db.query("COMMIT")
    expect((await keyOf("twin")).key.equals(key)).toBe(true)
    // Twin's own URL works (the content app has its key)...
    expect((await content((await sign("twin", "dir/f.txt")).path)).status).toBe(200)
    // ...and sig's URL for the same file, moved to twin's base path, does not: the MAC names the distribution.
    const moved = (await sign("sig", "dir/f.txt")).path.replace("/g/sig/", "/g/twin/")
    const refused = await content(moved)
    expect(refused.status).toBe(403)
    expect(refused.json.error.message).toMatch(/signature does not match/)
  })

  it("added, reaches the content app with the distribution's wake-up", async () => {
    await distribute("closing", "g/closing")
    expect((await content("/content/g/closing/dir/f.txt")).status).toBe(200)
    expect((await patch("closing", { guard: { type: "token", tokens: [TOKEN_A] } })).status).toBe(201)
    await until("the guard to be enforced", async () => (await content("/content/g/closing/dir/f.txt")).status === 401)
    expect((await content("/content/g/closing/dir/f.txt", bearer(TOKEN_A))).status).toBe(200)
  })

  it("a bad guard is refused with 400, and nothing is written", async () => {
    const writes = await watchWrites(dbUrl)
    try {
      const before = await writes.fingerprint()
      const bad: ReadonlyArray<unknown> = [
        { type: "token", tokens: [] },
        { type: "token" },
        { type: "token", tokens: ["has a space"] },
        { type: "token", tokens: [""] },
        { type: "token", tokens: ["x".repeat(1025)] },
        { type: "token", tokens: ["ünïcode"] },
        { type: "token", tokens: Array.from({ length: 101 }, (_, i) => `t${i}`) },
        { type: "token", tokens: [TOKEN_A], extra: 1 },
        { type: "token", tokens: [TOKEN_B, "has a space"] },
        { type: "token", tokens: TOKEN_A },
        { type: "signed", key: "00".repeat(32) },
        { type: "nope" },
        "signed",
        {}
      ]
      for (const guard of bad) {
        const created = await c.post("/api/v1/distributions", { name: "refused", base_path: "g/refused", guard })
        expect(created.status, JSON.stringify(guard)).toBe(400)
        expect(created.body.error.code).toBe("bad_request")
        const patched = await patch("tok", { guard })
        expect(patched.status, JSON.stringify(guard)).toBe(400)
        // The answer names the problem without quoting the guard given: its tokens are secrets.
        for (const answer of [created, patched]) {
          expect(answer.body.error.message).toMatch(/^invalid request: guard: guard must be null/)
          for (const token of [TOKEN_A, TOKEN_B]) expect(JSON.stringify(answer.body)).not.toContain(token)
        }
      }
      expect(await writes.fingerprint()).toEqual(before)
    } finally {
      await writes.close()
    }
  })
})

describe("POST /distributions/{name}/sign", () => {
  it("answers the URL on the address asked, its origin-relative path and its expiry; odd names are encoded and open their file", async () => {
    const t = now()
    const s = await sign("sig2", ODD_PATH, 120)
    expect(s.url).toBe(`${server.url}${s.path}`)
    expect(s.path.startsWith("/content/g/sig2/sp%20ace/")).toBe(true)
    expect(s.expires).toBeGreaterThanOrEqual(t + 120)
    expect(s.expires).toBeLessThanOrEqual(now() + 120)
    const r = await content(s.path)
    expect(r.status, r.text).toBe(200)
    expect(Buffer.from(r.text).equals(OTHER_FILE)).toBe(true)
  })

  it("refuses an unknown distribution (404), one without a signed guard (409), a bad path or lifetime (400); writes nothing", async () => {
    const writes = await watchWrites(dbUrl)
    try {
      const before = await writes.fingerprint()
      const call = (name: string, body: unknown) => c.post(`/api/v1/distributions/${name}/sign`, body)
      expect((await call("nope", { path: "a", expires_in_seconds: 60 })).status).toBe(404)
      for (const name of ["open", "tok"]) {
        const r = await call(name, { path: "dir/f.txt", expires_in_seconds: 60 })
        expect(r.status).toBe(409)
        expect(r.body.error.code).toBe("conflict")
        expect(r.body.error.message).toMatch(/signed/)
      }
      for (const path of ["", "/dir/f.txt", "../f.txt", "dir//f.txt", "dir/./f.txt", "dir\\f.txt", "dir/f.txt/", "a\u0000b", "x".repeat(1025)]) {
        const r = await call("sig", { path, expires_in_seconds: 60 })
        expect(r.status, JSON.stringify(path)).toBe(400)
        expect(r.body.error.code).toBe("bad_request")
      }
      for (const expires_in_seconds of [0, -1, 1.5, 365 * 24 * 3600 + 1, "60", null]) {
        expect((await call("sig", { path: "dir/f.txt", expires_in_seconds })).status, JSON.stringify(expires_in_seconds)).toBe(400)
      }
      expect((await call("sig", { path: "dir/f.txt" })).status).toBe(400)
      expect((await call("sig", { path: "dir/f.txt", expires_in_seconds: 60, expires: 1 })).status).toBe(400)
      expect(await writes.fingerprint()).toEqual(before)
    } finally {
      await writes.close()
    }
  })
})

describe("on-demand content behind a guard", () => {
  it("is fetched from upstream only for a request that passed the check", async () => {
    expect((await c.post("/api/v1/remotes", { name: "lazy", url: upstream.url, policy: "on_demand" })).status).toBe(201)
    expect((await c.post("/api/v1/repositories", { name: "lazy" })).status).toBe(201)
    const out = await settle({
      nodes: {
        s: { task: "file.sync", params: { repository: "lazy", remote: "lazy" } },
        p: { task: "file.publish", params: { version: { $ref: "s.version" } } }
      }
    })
    await distribute("lazy", "g/lazy", { type: "token", tokens: [TOKEN_A] }, out.p.id)
    for (const headers of [{}, { range: "bytes=0-9" }, { authorization: `Bearer ${WRONG}` }] as Array<Record<string, string>>) {
      for (const method of ["GET", "HEAD"]) expect((await content("/content/g/lazy/lazy.bin", { method, headers })).status).toBe(401)
    }
    expect(upstream.requests.get("lazy.bin")).toBeUndefined()
    const r = await content("/content/g/lazy/lazy.bin", bearer(TOKEN_A))
    expect(r.status).toBe(200)
    expect(r.headers.get("etag")).toBe(`"${sha(onDemandFile)}"`)
    expect(upstream.requests.get("lazy.bin")).toBe(1)
  })
})

describe("the process's output", () => {
  it("holds no guard token, token digest or signing key, even at debug level", async () => {
    // Failures with every kind of credential, to give the process something to log.
    await content("/content/g/tok/dir/f.txt", bearer(WRONG))
    await content("/content/g/tok/dir/f.txt", { headers: { authorization: basic("u", TOKEN_B) } })
    await c.post("/api/v1/distributions", { name: "bad", base_path: "g/bad", guard: { type: "token", tokens: [TOKEN_A, "with space"] } })
    await patch("nope", { guard: { type: "token", tokens: [TOKEN_A] } })
    const out = server.output()
    expect(out).toContain("level=DEBUG")
    for (const secret of await secrets()) expect(out.includes(secret), `the output holds ${secret}`).toBe(false)
  })
})

describe("with CAIRN_CONTENT_REDIRECT (an object store)", () => {
  const REDIRECT_SECONDS = 300
  let s3: S3Server
  let redirecting: Server
  let r: ReturnType<typeof api>
  beforeAll(async () => {
    s3 = await startS3()
    redirecting = await startServer(await createTestDatabase(), {
      ...s3.env("objects/"),
      CAIRN_CONTENT_REDIRECT: "true",
      CAIRN_CONTENT_REDIRECT_SECONDS: String(REDIRECT_SECONDS),
      CAIRN_WORKERS: "1"
    })
    r = api(redirecting.url)
    expect((await r.post("/api/v1/repositories", { name: "s3" })).status).toBe(201)
    const artifact = await upload(FILE, redirecting.url)
    const out = await settle({
      nodes: {
        m: { task: "repository.modify", params: { repository: "s3", add: [{ relative_path: "dir/f.txt", artifact }] } },
        p: { task: "file.publish", params: { version: { $ref: "m.version" } } }
      }
    }, r)
    await distribute("s3tok", "s3/tok", { type: "token", tokens: [TOKEN_A] }, out.p.id, r)
    await distribute("s3sig", "s3/sig", { type: "signed" }, out.p.id, r)
  })
  afterAll(async () => {
    await redirecting?.stop()
    await s3?.close()
  })

  const expiresOf = (a: Answer) => Number(new URL(a.headers.get("location")!).searchParams.get("X-Amz-Expires"))

  it("redirects only a request that passed the check, and never for longer than its signed URL lives", async () => {
    for (const headers of [{}, { authorization: `Bearer ${WRONG}` }] as Array<Record<string, string>>) {
      const refused = await content("/content/s3/tok/dir/f.txt", { headers }, redirecting.url)
      expect(refused.status).toBe(401)
      expect(refused.headers.get("location")).toBeNull()
    }
    const allowed = await content("/content/s3/tok/dir/f.txt", bearer(TOKEN_A), redirecting.url)
    expect(allowed.status).toBe(302)
    expect(expiresOf(allowed)).toBe(REDIRECT_SECONDS)

    const unsigned = await content("/content/s3/sig/dir/f.txt", {}, redirecting.url)
    expect(unsigned.status).toBe(403)
    expect(unsigned.headers.get("location")).toBeNull()
    const short = await sign("s3sig", "dir/f.txt", 60, r)
    const redirected = await content(short.path, {}, redirecting.url)
    expect(redirected.status).toBe(302)
    // The object store's URL ends when cairn's does (give or take the second it was asked in).
    expect(expiresOf(redirected)).toBeGreaterThanOrEqual(1)
    expect(expiresOf(redirected)).toBeLessThanOrEqual(60)
    const long = await sign("s3sig", "dir/f.txt", 3600, r)
    expect(expiresOf(await content(long.path, {}, redirecting.url))).toBe(REDIRECT_SECONDS)
  })
})
