/**
 * CAIRN_STORAGE=s3 through HTTP only, against a real `serve` process, an S3-protocol server
 * (s3rver, in this process) and a fixture upstream, with CAIRN_CONTENT_REDIRECT=true: uploads
 * (announced digest or not, refused ones leaving nothing in the bucket), a repository made of them,
 * published and distributed; its files answered with a 302 to a presigned URL that a real HTTP
 * client follows to the right bytes (ranges too), the manifest and HEAD answered directly;
 * on-demand files fetched into the bucket on their first request; an orphan cleanup removing an
 * expired upload's artifact, in the bucket too.
 *
 * What this cannot show: s3rver does not verify SigV4 signatures (it checks the access key id and
 * the expiry only), so a tampered URL would still be served by it. What is checked instead is that
 * the URL is a presigned GET of exactly that object (its path, X-Amz-Expires, the signed headers)
 * and that another object's URL has another path and another signature.
 */
import { createHash, randomBytes } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer } from "./support/processes.js"
import { type S3Server, startFaultProxy, startS3, storedObjects } from "./support/s3.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

const PREFIX = "objects/"
const REDIRECT_SECONDS = 120
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex")
const keyOf = (digest: string) => `${PREFIX}${digest.slice(0, 2)}/${digest.slice(2, 4)}/${digest}`

let s3: S3Server
let dbUrl: string
let server: Server
let c: ReturnType<typeof api>
let upstream: Upstream
const upstreamFiles = { "lazy/a.bin": randomBytes(3000), "lazy/b.bin": randomBytes(70_000) }

beforeAll(async () => {
  s3 = await startS3()
  upstream = await startUpstream(upstreamFiles)
  dbUrl = await createTestDatabase()
  server = await startServer(dbUrl, {
    ...s3.env(PREFIX),
    CAIRN_CONTENT_REDIRECT: "true",
    CAIRN_CONTENT_REDIRECT_SECONDS: String(REDIRECT_SECONDS),
    CAIRN_UPLOAD_MAX_BYTES: String(8 * 1024 * 1024)
  })
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
  await upstream?.close()
  await s3?.close()
})

const objects = () => storedObjects(s3, PREFIX)
const temporaries = () => [...objects().keys()].filter((k) => k.startsWith(`${PREFIX}tmp/`))

const upload = async (body: Buffer, headers: Record<string, string> = {}) => {
  const res = await fetch(`${server.url}/api/v1/uploads`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream", ...headers },
    body
  })
  return { status: res.status, body: await res.json() as any }
}

const settled = async (graph: unknown) => {
  const g = await c.post("/api/v1/graphs", graph)
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const out: Record<string, any> = {}
  for (const [name, node] of Object.entries(g.body.nodes as Record<string, { outputs: Record<string, string> }>)) {
    out[name] = await c.settled(Object.values(node.outputs)[0]!)
  }
  return out
}

const publishAndDistribute = async (version: unknown, distribution: string) => {
  const out = await settled({
    nodes: {
      publish: { task: "file.publish", params: { version } },
      distribute: { task: "distribution.set", params: { distribution, publication: { $ref: "publish.publication" } } }
    }
  })
  for (const [name, f] of Object.entries(out)) expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
}

const content = (path: string, init: RequestInit = {}) => fetch(`${server.url}/content/${path}`, { redirect: "manual", ...init })

describe("cairn on an object store", () => {
  const small = randomBytes(5000)
  const large = randomBytes(6 * 1024 * 1024 + 3) // two parts

  it("stores uploads in the bucket (announced digest or not); refused ones leave nothing there", async () => {
    const a = await upload(small, { "x-checksum-sha256": sha(small) })
    expect(a.status, JSON.stringify(a.body)).toBe(201)
    const b = await upload(large)
    expect(b.status, JSON.stringify(b.body)).toBe(201)
    expect(b.body.sha256).toBe(sha(large))
    expect(objects().get(keyOf(sha(small)))?.equals(small)).toBe(true)
    expect(objects().get(keyOf(sha(large)))?.equals(large)).toBe(true)

    const before = objects().size
    const wrong = await upload(randomBytes(1000), { "x-checksum-sha256": sha("something else") })
    expect(wrong.status).toBe(400)
    const tooBig = await upload(randomBytes(9 * 1024 * 1024))
    expect(tooBig.status).toBe(413)
    expect(objects().size).toBe(before)
    expect(temporaries()).toEqual([])

    await c.post("/api/v1/repositories", { name: "uploaded" })
    await c.post("/api/v1/distributions", { name: "uploaded", base_path: "up" })
    const out = await settled({
      nodes: {
        add: {
          task: "repository.modify",
          params: { repository: "uploaded", add: [{ relative_path: "small.bin", artifact: a.body.artifact }, { relative_path: "dir/large.bin", artifact: b.body.artifact }] }
        },
        publish: { task: "file.publish", params: { version: { $ref: "add.version" } } },
        distribute: { task: "distribution.set", params: { distribution: "uploaded", publication: { $ref: "publish.publication" } } }
      }
    })
    for (const [name, f] of Object.entries(out)) expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
  })

  it("answers a stored file with a 302 to a presigned URL of its object, which a real client follows to the bytes", async () => {
    const r = await content("up/small.bin")
    expect(r.status).toBe(302)
    expect(r.headers.get("cache-control")).toBe("no-store")
    const smallUrl = new URL(r.headers.get("location")!)
    const largeUrl = new URL((await content("up/dir/large.bin")).headers.get("location")!)

    // The URL names exactly that object of the store, as a SigV4 presigned GET valid the configured time.
    expect(`${smallUrl.protocol}//${smallUrl.host}`).toBe(s3.endpoint)
    expect(smallUrl.pathname).toBe(`/${s3.bucket}/${keyOf(sha(small))}`)
    expect(smallUrl.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256")
    expect(smallUrl.searchParams.get("X-Amz-Expires")).toBe(String(REDIRECT_SECONDS))
    expect(smallUrl.searchParams.get("X-Amz-SignedHeaders")).toBe("host")
    expect(smallUrl.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/)
    expect(smallUrl.searchParams.get("X-Amz-Credential")).toMatch(/^S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request$/)
    // Bound to the object: another object's URL differs in path and signature.
    expect(largeUrl.pathname).toBe(`/${s3.bucket}/${keyOf(sha(large))}`)
    expect(largeUrl.searchParams.get("X-Amz-Signature")).not.toBe(smallUrl.searchParams.get("X-Amz-Signature"))

    // A real client follows it.
    for (const [path, bytes] of [["up/small.bin", small], ["up/dir/large.bin", large]] as const) {
      const followed = await fetch(`${server.url}/content/${path}`)
      expect(followed.status).toBe(200)
      expect(followed.url).not.toContain(server.url)
      expect(sha(Buffer.from(await followed.arrayBuffer()))).toBe(sha(bytes))
    }
    // Ranges: the client sends its Range again to the location.
    const part = await fetch(`${server.url}/content/up/dir/large.bin`, { headers: { range: "bytes=5242870-5242889" } })
    expect(part.status).toBe(206)
    expect(Buffer.from(await part.arrayBuffer())).toEqual(large.subarray(5242870, 5242890))
  })

  it("serves generated files, HEAD, 304 and 416 directly", async () => {
    const manifest = await content("up/PULP_MANIFEST")
    expect(manifest.status).toBe(200)
    expect((await manifest.text()).trim().split("\n").sort()).toEqual(
      [`dir/large.bin,${sha(large)},${large.length}`, `small.bin,${sha(small)},${small.length}`]
    )
    const head = await content("up/small.bin", { method: "HEAD" })
    expect(head.status).toBe(200)
    expect(head.headers.get("content-length")).toBe(String(small.length))
    expect(head.headers.get("etag")).toBe(`"${sha(small)}"`)
    expect((await content("up/small.bin", { headers: { "if-none-match": `"${sha(small)}"` } })).status).toBe(304)
    expect((await content("up/small.bin", { headers: { range: "bytes=999999-" } })).status).toBe(416)
  })

  it("fetches an on-demand file into the bucket on its first request, then redirects to it", async () => {
    await c.post("/api/v1/remotes", { name: "lazy", url: upstream.url, policy: "on_demand" })
    await c.post("/api/v1/repositories", { name: "lazy" })
    await c.post("/api/v1/distributions", { name: "lazy", base_path: "lazy" })
    const out = await settled({
      nodes: {
        sync: { task: "file.sync", params: { repository: "lazy", remote: "lazy" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        distribute: { task: "distribution.set", params: { distribution: "lazy", publication: { $ref: "publish.publication" } } }
      }
    })
    for (const [name, f] of Object.entries(out)) expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
    const bytes = upstreamFiles["lazy/b.bin"]
    expect(objects().has(keyOf(sha(bytes)))).toBe(false)
    const all = await Promise.all(Array.from({ length: 4 }, () => fetch(`${server.url}/content/lazy/lazy/b.bin`)))
    for (const r of all) expect(sha(Buffer.from(await r.arrayBuffer()))).toBe(sha(bytes))
    expect(upstream.requests.get("lazy/b.bin")).toBe(1)
    expect(objects().get(keyOf(sha(bytes)))?.equals(bytes)).toBe(true)
  })

  it("an orphan cleanup removes an abandoned upload's artifact from the bucket too, and nothing that is used", async () => {
    const orphan = randomBytes(4000)
    const up = await upload(orphan)
    expect(up.status).toBe(201)
    expect(objects().has(keyOf(sha(orphan)))).toBe(true)
    // The upload goes (as its expiry would delete it; uploads rows are immutable), its artifact stays.
    const db = new pg.Client({ connectionString: dbUrl })
    await db.connect()
    try {
      await db.query("DELETE FROM uploads WHERE artifact_id = $1", [up.body.artifact])
    } finally {
      await db.end()
    }

    const cleaned = await settled({ nodes: { c: { task: "orphans.cleanup", params: { protection_seconds: 0 } } } })
    expect(cleaned.c.state, JSON.stringify(cleaned.c.error)).toBe("resolved")
    expect(cleaned.c.value).toMatchObject({ artifacts: 1, bytes_freed: orphan.length })
    expect(objects().has(keyOf(sha(orphan)))).toBe(false)
    // No tombstone or temporary left, and everything still published is still there.
    expect(temporaries()).toEqual([])
    for (const bytes of [small, large, upstreamFiles["lazy/b.bin"]]) expect(objects().has(keyOf(sha(bytes)))).toBe(true)
    const again = await fetch(`${server.url}/content/up/small.bin`)
    expect(sha(Buffer.from(await again.arrayBuffer()))).toBe(sha(small))
  })
})

describe("/healthz with an object store", () => {
  it("answers 503 naming the store while it cannot be reached, and 200 again once it is back", async () => {
    const proxy = await startFaultProxy(s3.endpoint)
    const other = await startServer(await createTestDatabase(), { ...s3.env("health/", proxy.endpoint), CAIRN_WORKERS: "0" })
    try {
      const health = async () => {
        const r = await fetch(`${other.url}/healthz`)
        return { status: r.status, body: await r.json() as { ok: boolean; db: string; storage: string } }
      }
      expect(await health()).toEqual({ status: 200, body: { ok: true, db: "ok", storage: "ok" } })
      await proxy.down()
      const down = await health()
      expect(down.status).toBe(503)
      expect(down.body).toMatchObject({ ok: false, db: "ok" })
      expect(down.body.storage).toMatch(/^unreachable: /)
      expect(down.body.storage).not.toContain(s3.env()["AWS_SECRET_ACCESS_KEY"]!)
      await proxy.up()
      expect(await health()).toEqual({ status: 200, body: { ok: true, db: "ok", storage: "ok" } })
    } finally {
      await other.stop()
      await proxy.close()
    }
  })
})
