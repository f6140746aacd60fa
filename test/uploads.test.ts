/**
 * POST /api/v1/uploads through real HTTP against a real `serve` process: the bytes land in the
 * server's artifact store under their digest, owned by an `uploads` row; refused uploads (digest
 * mismatch, over the limit, malformed header) leave no row and no file; the body is streamed to
 * disk while it arrives, not buffered. End to end: an uploaded artifact a repository version took
 * over survives its upload's expiry and an orphan cleanup, and is published and served.
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

const LIMIT = 4 * 1024 * 1024
const TTL_MS = 3_600_000

let server: Server
let dbUrl: string
let dataDir: string
let client: pg.Client

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")
const artifactsDir = () => path.join(dataDir, "artifacts")
const artifactFile = (sha: string) => path.join(artifactsDir(), sha.slice(0, 2), sha.slice(2, 4), sha)
const tempFiles = () => fs.readdirSync(path.join(artifactsDir(), "tmp"))

/** Every stored artifact file (fan-out directories only, not tmp). */
const storedFiles = (): Array<string> => {
  const out: Array<string> = []
  for (const d1 of fs.readdirSync(artifactsDir())) {
    if (d1 === "tmp") continue
    for (const d2 of fs.readdirSync(path.join(artifactsDir(), d1))) out.push(...fs.readdirSync(path.join(artifactsDir(), d1, d2)))
  }
  return out
}

const counts = async () =>
  (await client.query<{ artifacts: number; uploads: number }>(
    "SELECT (SELECT count(*) FROM artifacts)::int AS artifacts, (SELECT count(*) FROM uploads)::int AS uploads"
  )).rows[0]!

/** Nothing new in the database or the store, and no temp file left behind. */
const expectNothingKept = async (before: { artifacts: number; uploads: number }, filesBefore: number, sha?: string) => {
  expect(await counts()).toEqual(before)
  expect(storedFiles().length).toBe(filesBefore)
  expect(tempFiles().filter((n) => n.startsWith("put-"))).toEqual([])
  if (sha !== undefined) {
    expect(fs.existsSync(artifactFile(sha))).toBe(false)
    expect((await client.query("SELECT 1 FROM artifacts WHERE sha256 = $1", [sha])).rowCount).toBe(0)
  }
}

const post = async (body: Buffer | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) => {
  const res = await fetch(`${server.url}/api/v1/uploads`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream", ...headers },
    body,
    ...(body instanceof ReadableStream ? { duplex: "half" } : {})
  } as RequestInit)
  return { status: res.status, body: await res.json() as any }
}

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-uploads-"))
  server = await startServer(dbUrl, {
    CAIRN_DATA_DIR: dataDir,
    CAIRN_UPLOAD_MAX_BYTES: String(LIMIT),
    CAIRN_UPLOAD_TTL_MS: String(TTL_MS)
  })
  client = new pg.Client({ connectionString: dbUrl })
  await client.connect()
})
afterAll(async () => {
  await client?.end()
  await server?.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

describe("uploads", () => {
  it("stores the bytes under their digest and answers the artifact, owned by an unexpired upload", async () => {
    const bytes = randomBytes(300_000)
    const r = await post(bytes, { "x-checksum-sha256": sha256(bytes) })
    expect(r.status).toBe(201)
    expect(r.body).toEqual({ artifact: expect.any(String), sha256: sha256(bytes), size: bytes.length })
    expect(fs.readFileSync(artifactFile(sha256(bytes))).equals(bytes)).toBe(true)
    const row = (await client.query("SELECT id, sha256, size::int AS size FROM artifacts WHERE id = $1", [r.body.artifact])).rows[0]
    expect(row).toEqual({ id: r.body.artifact, sha256: sha256(bytes), size: bytes.length })
    const up = (await client.query<{ left_ms: number }>(
      "SELECT (extract(epoch FROM expires_at - now()) * 1000)::float8 AS left_ms FROM uploads WHERE artifact_id = $1",
      [r.body.artifact]
    )).rows
    expect(up.length).toBe(1)
    expect(up[0]!.left_ms).toBeGreaterThan(TTL_MS - 60_000)
    expect(up[0]!.left_ms).toBeLessThanOrEqual(TTL_MS)
  })

  it("accepts a body without a checksum header, and an upper-case checksum", async () => {
    const a = Buffer.from("no header here\n")
    const ra = await post(a)
    expect(ra.status).toBe(201)
    expect(ra.body.sha256).toBe(sha256(a))
    const b = Buffer.from("upper case digest\n")
    const rb = await post(b, { "x-checksum-sha256": sha256(b).toUpperCase() })
    expect(rb.status).toBe(201)
    expect(rb.body.sha256).toBe(sha256(b))
  })

  it("answers the same artifact for the same bytes, with one upload row per upload", async () => {
    const bytes = randomBytes(10_000)
    const first = await post(bytes)
    const second = await post(bytes, { "x-checksum-sha256": sha256(bytes) })
    expect(first.status).toBe(201)
    expect(second.status).toBe(201)
    expect(second.body.artifact).toBe(first.body.artifact)
    expect((await client.query("SELECT 1 FROM artifacts WHERE sha256 = $1", [sha256(bytes)])).rowCount).toBe(1)
    expect((await client.query("SELECT 1 FROM uploads WHERE artifact_id = $1", [first.body.artifact])).rowCount).toBe(2)
  })

  it("refuses a body whose digest differs from the header with 400, keeping nothing", async () => {
    const before = await counts()
    const files = storedFiles().length
    const bytes = randomBytes(50_000)
    const r = await post(bytes, { "x-checksum-sha256": sha256(Buffer.from("something else")) })
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe("bad_request")
    expect(r.body.error.message).toMatch(/digest mismatch/)
    await expectNothingKept(before, files, sha256(bytes))
  })

  it("refuses a malformed checksum header with 400, keeping nothing", async () => {
    const before = await counts()
    const files = storedFiles().length
    const bytes = Buffer.from("bad header")
    for (const bad of ["abc", "z".repeat(64), `${sha256(bytes)}0`, "../../etc/passwd"]) {
      const r = await post(bytes, { "x-checksum-sha256": bad })
      expect(r.status, bad).toBe(400)
      expect(r.body.error.code).toBe("bad_request")
      expect(r.body.error.message).toMatch(/x-checksum-sha256/)
    }
    await expectNothingKept(before, files, sha256(bytes))
  })

  it("refuses a streamed body over the limit with 413 without reading all of it, keeping nothing", async () => {
    const before = await counts()
    const files = storedFiles().length
    const chunk = randomBytes(64 * 1024)
    const total = 64 * 1024 * 1024 // 16x the limit
    let sent = 0
    // Chunked (no content-length): the server only learns the size by reading.
    const body = new ReadableStream<Uint8Array>({
      pull: (c) => {
        if (sent >= total) return c.close()
        sent += chunk.length
        c.enqueue(chunk)
      }
    })
    const r = await post(body)
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe("payload_too_large")
    expect(sent).toBeLessThan(total)
    await expectNothingKept(before, files)
  })

  it("refuses a content-length announcing more than the limit with 413 before reading, keeping nothing", async () => {
    const before = await counts()
    const files = storedFiles().length
    const bytes = randomBytes(LIMIT + 1)
    const r = await post(bytes)
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe("payload_too_large")
    await expectNothingKept(before, files, sha256(bytes))
  })

  it("streams the body into the store while it arrives (never buffered whole)", async () => {
    const first = randomBytes(1024 * 1024)
    const rest = randomBytes(512 * 1024)
    const all = Buffer.concat([first, rest])
    const url = new URL(`${server.url}/api/v1/uploads`)
    const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = http.request(url, { method: "POST", headers: { "transfer-encoding": "chunked" } }, (res) => {
        let text = ""
        res.on("data", (d) => (text += d))
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
      })
      req.on("error", reject)
      req.write(first)
      // Before the request is complete, its first part is already on disk in a temp file.
      until("the first part in a temp file", () =>
        tempFiles().some((n) => n.startsWith("put-") && fs.statSync(path.join(artifactsDir(), "tmp", n)).size >= first.length)
      ).then(() => req.end(rest), reject)
    })
    const r = await answer
    expect(r.status).toBe(201)
    expect(r.body.sha256).toBe(sha256(all))
    expect(fs.readFileSync(artifactFile(sha256(all))).equals(all)).toBe(true)
  })

  it("is part of the OpenAPI document, with its header and a binary body", async () => {
    const doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json() as any
    const op = doc.paths["/api/v1/uploads"].post
    expect(op.requestBody.content["application/octet-stream"]).toBeDefined()
    expect(op.parameters.map((p: { name: string }) => p.name)).toContain("x-checksum-sha256")
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["201", "400", "401", "413"]))
    // Behind the bearer-token middleware, like every other group.
    expect(op.security.length).toBeGreaterThan(0)
  })
})

describe("the upload hand-off, end to end", () => {
  it("an uploaded artifact that a repository.modify took over survives its upload's expiry and a cleanup, and is served", async () => {
    // A second server on the same database and store, whose uploads expire after a second.
    const shortLived = await startServer(dbUrl, { CAIRN_DATA_DIR: dataDir, CAIRN_UPLOAD_TTL_MS: "1000" })
    try {
      const c = api(shortLived.url)
      const upload = async (bytes: Buffer) => {
        const res = await fetch(`${shortLived.url}/api/v1/uploads`, {
          method: "POST",
          headers: { "content-type": "application/octet-stream" },
          body: bytes
        })
        expect(res.status).toBe(201)
        return (await res.json() as { artifact: string }).artifact
      }
      const kept = randomBytes(70_000)
      const control = randomBytes(50_000)
      const keptId = await upload(kept)
      // Uploaded and never used: the cleanup must take it (otherwise surviving proves nothing).
      const controlId = await upload(control)

      for (const [path, body] of [["/api/v1/repositories", { name: "handoff" }], ["/api/v1/distributions", { name: "handoff", base_path: "handoff" }]] as const) {
        const r = await c.post(path, body)
        expect(r.status, JSON.stringify(r.body)).toBe(201)
      }
      const m = await c.post("/api/v1/graphs", {
        nodes: { m: { task: "repository.modify", params: { repository: "handoff", add: [{ relative_path: "dir/kept.bin", artifact: keptId }] } } }
      })
      expect(m.status, JSON.stringify(m.body)).toBe(201)
      const version = await c.settled(m.body.nodes.m.outputs.version)
      expect(version.state, JSON.stringify(version.error)).toBe("resolved")

      // Both uploads expire, by the database's clock (the one the cleanup judges by).
      await until("both uploads to expire", async () => {
        const r = await client.query<{ live: number }>(
          "SELECT count(*) FILTER (WHERE expires_at > now())::int AS live FROM uploads WHERE artifact_id = ANY($1)",
          [[keptId, controlId]]
        )
        return r.rows[0]!.live === 0 || undefined
      })
      const gc = await c.post("/api/v1/graphs", { nodes: { gc: { task: "orphans.cleanup", params: { protection_seconds: 0 } } } })
      const report = await c.settled(gc.body.nodes.gc.outputs.report)
      expect(report.state, JSON.stringify(report.error)).toBe("resolved")

      const artifactRows = async (id: string) => (await client.query("SELECT 1 FROM artifacts WHERE id = $1", [id])).rowCount
      const uploadRows = async (id: string) => (await client.query("SELECT 1 FROM uploads WHERE artifact_id = $1", [id])).rowCount
      // The expired upload rows are gone; the unused artifact went with its upload...
      expect(await uploadRows(keptId)).toBe(0)
      expect(await uploadRows(controlId)).toBe(0)
      expect(await artifactRows(controlId)).toBe(0)
      expect(fs.existsSync(artifactFile(sha256(control)))).toBe(false)
      // ...and the one the version took over is still there, row and bytes.
      expect(await artifactRows(keptId)).toBe(1)
      expect(fs.readFileSync(artifactFile(sha256(kept))).equals(kept)).toBe(true)

      // Published and distributed after the cleanup, it is served from the store.
      const pub = await c.post("/api/v1/graphs", {
        nodes: {
          publish: { task: "file.publish", params: { version: { $ref: m.body.nodes.m.outputs.version } } },
          distribute: { task: "distribution.set", params: { distribution: "handoff", publication: { $ref: "publish.publication" } } }
        }
      })
      expect(pub.status, JSON.stringify(pub.body)).toBe(201)
      const distributed = await c.settled(pub.body.nodes.distribute.outputs.distribution)
      expect(distributed.state, JSON.stringify(distributed.error)).toBe("resolved")
      const served = await fetch(`${shortLived.url}/content/handoff/dir/kept.bin`)
      expect(served.status).toBe(200)
      expect(Buffer.from(await served.arrayBuffer()).equals(kept)).toBe(true)
    } finally {
      await shortLived.stop()
    }
  })
})
