/**
 * The content app through real HTTP: the whole server (ServerLive) in this process, on a free
 * port, with a Db that counts its queries; plus one real `serve` process to check the routes are
 * mounted there, outside the API's auth.
 *
 * Publications are written with plain SQL (content units, a version, a publication row, a
 * manifest artifact), distributions with `createNamed` and a revision pointing at the publication,
 * so these tests depend on no task kind.
 */
import { HttpServer } from "@effect/platform"
import { sql } from "drizzle-orm"
import { Duration, Effect, Layer, ManagedRuntime } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { Readable } from "node:stream"
import { ulid } from "ulid"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ServerLive } from "../src/api/server.js"
import { formatManifest } from "../src/content/manifest.js"
import { type GuardInput, storeGuard } from "../src/content/guards.js"
import { createNamed, deleteNamed } from "../src/content/named.js"
import { signContentPath } from "../src/content/sign.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { LocalArtifactStorage } from "../src/content/storage-local.js"
import { Db, txRows } from "../src/db/client.js"
import { notifyChanges } from "../src/engine/notify.js"
import { Session } from "../src/engine/session.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { type Server, startServer, until } from "./support/processes.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

/** Statements the server's Db ran (every `rows`, `run` and `transaction` call). */
let queries = 0
const CountingDb = Layer.effect(
  Db,
  Effect.map(Db, (db) =>
    Db.of({
      ...db,
      rows: <R>(q: Parameters<typeof db.rows>[0]) => {
        queries++
        return db.rows<R>(q)
      },
      run: (f) => {
        queries++
        return db.run(f)
      },
      transaction: (body) => {
        queries++
        return db.transaction(body)
      }
    })
  )
)

/** What the fixture upstream serves, for the on-demand tests. */
const upstreamFiles: Record<string, Buffer> = {
  "od/big.bin": randomBytes(300_000),
  "od/twin-a.bin": Buffer.from("same bytes at two paths\n"),
  "od/lazy.bin": randomBytes(1000),
  "od/bad.bin": randomBytes(5000)
}

let dbUrl: string
let upstream: Upstream
let rt: ManagedRuntime.ManagedRuntime<Db | ArtifactStorage | Session | HttpServer.HttpServer, unknown>
let port: number
let remoteRevision: string

const run = <A, E>(eff: Effect.Effect<A, E, Db | ArtifactStorage | Session>) => rt.runPromise(eff)

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  upstream = await startUpstream(upstreamFiles)
  const engine = engineLayer(dbUrl, { port: 0, downloadRetries: 0, downloadTimeout: Duration.seconds(5) })
  rt = ManagedRuntime.make(ServerLive.pipe(Layer.provide(CountingDb), Layer.provideMerge(engine)))
  const address = await rt.runPromise(Effect.map(HttpServer.HttpServer, (s) => s.address))
  port = address._tag === "TcpAddress" ? address.port : 0
  remoteRevision = (await run(createNamed("remote", "upstream", { url: upstream.url, policy: "on_demand", download_concurrency: 2 }))).revision
})
afterAll(async () => {
  await rt?.dispose()
  await upstream?.close()
})

// --- fixtures ---------------------------------------------------------------------------------

interface SeedFile {
  readonly path: string
  readonly bytes: Buffer
  /** On-demand: not stored, fetched from this URL on first request. */
  readonly source?: string
}

/** Store bytes and their artifact row. */
const storeBytes = (bytes: Buffer) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    const db = yield* Db
    const stored = yield* storage.put(Readable.from([bytes]))
    yield* db.rows(sql`INSERT INTO artifacts (id, sha256, size) VALUES (${ulid()}, ${stored.sha256}, ${stored.size})
                       ON CONFLICT (sha256) DO NOTHING`)
    const [row] = yield* db.rows<{ id: string }>(sql`SELECT id FROM artifacts WHERE sha256 = ${stored.sha256}`)
    return row!.id
  })

/** A repository whose version 1 holds `files`, and a publication of it; answers the publication id. */
const publish = (files: ReadonlyArray<SeedFile>) =>
  Effect.gen(function*() {
    const db = yield* Db
    const repo = yield* createNamed("repository", `repo-${ulid()}`, {})
    const contentIds: Array<string> = []
    for (const f of files) {
      const digest = sha256(f.bytes)
      const [unit] = yield* db.rows<{ id: string }>(sql`
        INSERT INTO content_units (id, relative_path, sha256, size) VALUES (${ulid()}, ${f.path}, ${digest}, ${f.bytes.length})
        ON CONFLICT (type, relative_path, sha256, size) DO UPDATE SET relative_path = EXCLUDED.relative_path RETURNING id`)
      contentIds.push(unit!.id)
      if (f.source === undefined) {
        const artifact = yield* storeBytes(f.bytes)
        yield* db.rows(sql`INSERT INTO content_artifacts (content_id, artifact_id) VALUES (${unit!.id}, ${artifact}) ON CONFLICT DO NOTHING`)
      } else {
        yield* db.rows(sql`INSERT INTO content_sources (content_id, remote_revision_id, url) VALUES (${unit!.id}, ${remoteRevision}, ${f.source})
                           ON CONFLICT DO NOTHING`)
      }
    }
    const version = ulid()
    yield* db.rows(sql`INSERT INTO repository_content (repository_id, content_id, added_in)
                       SELECT ${repo.id}, unnest(${sql.param(contentIds)}::text[]), 1`)
    yield* db.rows(sql`INSERT INTO repository_versions (id, repository_id, number, content_count)
                       VALUES (${version}, ${repo.id}, 1, ${contentIds.length})`)
    const manifest = yield* storeBytes(Buffer.from(manifestOf(files)))
    const publication = ulid()
    yield* db.rows(sql`INSERT INTO publications (id, version_id) VALUES (${publication}, ${version})`)
    yield* db.rows(sql`INSERT INTO publication_files (publication_id, relative_path, media_type, position, artifact_id)
                       VALUES (${publication}, 'PULP_MANIFEST', 'text/plain; charset=utf-8', 0, ${manifest})`)
    return publication
  })

const manifestOf = (files: ReadonlyArray<SeedFile>) =>
  formatManifest(files.map((f) => ({ relative_path: f.path, sha256: sha256(f.bytes), size: f.bytes.length })))

/** A new revision of distribution `name` serving `publication` (what distribution.set writes). */
const pointAt = (name: string, publication: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const revision = ulid()
        yield* txRows(tx, sql`
          INSERT INTO distribution_revisions (id, distribution_id, name, base_path, publication_id, guard)
          SELECT ${revision}, n.resource_id, n.name, r.base_path, ${publication}, r.guard
          FROM names n JOIN distribution_revisions r ON r.id = n.revision_id WHERE n.kind = 'distribution' AND n.name = ${name}`)
        yield* txRows(tx, sql`UPDATE names SET revision_id = ${revision} WHERE kind = 'distribution' AND name = ${name}`)
      })
    )
  })

/**
 * A new revision of distribution `name` with `guard` (what a PATCH writes; these publications have
 * no future, so `updateNamed` could not carry them over).
 */
const guardAt = (name: string, guard: GuardInput | null) =>
  Effect.gen(function*() {
    const db = yield* Db
    const stored = guard === null ? null : JSON.stringify(storeGuard(guard))
    yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const revision = ulid()
        yield* txRows(tx, sql`
          INSERT INTO distribution_revisions (id, distribution_id, name, base_path, publication_id, guard)
          SELECT ${revision}, n.resource_id, n.name, r.base_path, r.publication_id, ${stored}::jsonb
          FROM names n JOIN distribution_revisions r ON r.id = n.revision_id WHERE n.kind = 'distribution' AND n.name = ${name}`)
        yield* txRows(tx, sql`UPDATE names SET revision_id = ${revision} WHERE kind = 'distribution' AND name = ${name}`)
      })
    )
  })

const distribute = (name: string, basePath: string, publication: string, guard?: GuardInput) =>
  Effect.zipRight(createNamed("distribution", name, { base_path: basePath, guard }), pointAt(name, publication))

// --- HTTP -------------------------------------------------------------------------------------

interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  readonly json: any
}

/** A request with the path sent exactly as given (fetch would normalize `..` and friends away). */
const request = (method: string, rawPath: string, headers: Record<string, string> = {}, toPort = port) =>
  new Promise<Answer>((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: toPort, method, path: rawPath, headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        const body = Buffer.concat(chunks)
        let json: any
        try {
          json = JSON.parse(body.toString())
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode!, headers: res.headers, body, json })
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end()
  })

const get = (p: string, headers?: Record<string, string>) => request("GET", p, headers)

const expectNotFound = (a: Answer, what: string) => {
  expect(a.status, what).toBe(404)
  expect(a.json?.error?.code, what).toBe("not_found")
  expect(typeof a.json?.error?.message, what).toBe("string")
}

// --- tests ------------------------------------------------------------------------------------

const small = Buffer.from("0123456789abcdefghij")
const nested = randomBytes(70_000)
const spaced = Buffer.from("a file with a space and an umlaut in its name\n")
const files: ReadonlyArray<SeedFile> = [
  { path: "small.txt", bytes: small },
  { path: "deep/er/nested.bin", bytes: nested },
  { path: "dir/hällo wörld.txt", bytes: spaced },
  { path: "empty", bytes: Buffer.alloc(0) }
]

describe("serving stored files", () => {
  beforeAll(async () => {
    const publication = await run(publish(files))
    await run(distribute("main", "pub/main", publication))
    await until("the distribution to be routed", async () => (await get("/content/pub/main/small.txt")).status === 200)
  })

  it("answers GET with the bytes, a strong etag, the length and accept-ranges; HEAD with the headers only", async () => {
    for (const f of files) {
      const url = `/content/pub/main/${f.path.split("/").map(encodeURIComponent).join("/")}`
      const a = await get(url)
      expect(a.status, f.path).toBe(200)
      expect(a.body.equals(f.bytes), f.path).toBe(true)
      expect(a.headers.etag).toBe(`"${sha256(f.bytes)}"`)
      expect(a.headers["content-length"]).toBe(String(f.bytes.length))
      expect(a.headers["accept-ranges"]).toBe("bytes")
      expect(a.headers["content-type"]).toBe("application/octet-stream")
      const h = await request("HEAD", url)
      expect(h.status).toBe(200)
      expect(h.body.length).toBe(0)
      expect(h.headers.etag).toBe(a.headers.etag)
      expect(h.headers["content-length"]).toBe(String(f.bytes.length))
    }
  })

  it("serves the publication's PULP_MANIFEST", async () => {
    const a = await get("/content/pub/main/PULP_MANIFEST")
    expect(a.status).toBe(200)
    expect(a.body.toString()).toBe(manifestOf(files))
    expect(a.headers.etag).toBe(`"${sha256(Buffer.from(manifestOf(files)))}"`)
    expect(a.headers["content-type"]).toMatch(/^text\/plain/)
  })

  it("answers if-none-match with 304", async () => {
    const etag = `"${sha256(small)}"`
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const a = await get("/content/pub/main/small.txt", { "if-none-match": header })
      expect(a.status, header).toBe(304)
      expect(a.body.length).toBe(0)
      expect(a.headers.etag).toBe(etag)
    }
    expect((await get("/content/pub/main/small.txt", { "if-none-match": '"other"' })).status).toBe(200)
    expect((await request("HEAD", "/content/pub/main/small.txt", { "if-none-match": etag })).status).toBe(304)
  })

  it("answers single byte ranges with 206, unsatisfiable ones with 416, several with the whole file", async () => {
    const cases: Array<[string, number, number]> = [
      ["bytes=2-5", 2, 5],
      ["bytes=15-", 15, 19],
      ["bytes=-3", 17, 19],
      ["bytes=10-1000", 10, 19],
      ["bytes=-100", 0, 19]
    ]
    for (const [range, start, end] of cases) {
      const a = await get("/content/pub/main/small.txt", { range })
      expect(a.status, range).toBe(206)
      expect(a.headers["content-range"], range).toBe(`bytes ${start}-${end}/20`)
      expect(a.headers["content-length"], range).toBe(String(end - start + 1))
      expect(a.body.toString(), range).toBe(small.subarray(start, end + 1).toString())
    }
    const big = await get("/content/pub/main/deep/er/nested.bin", { range: "bytes=65536-65635" })
    expect(big.status).toBe(206)
    expect(big.body.equals(nested.subarray(65536, 65636))).toBe(true)
    const head = await request("HEAD", "/content/pub/main/small.txt", { range: "bytes=2-5" })
    expect(head.status).toBe(206)
    expect(head.headers["content-length"]).toBe("4")

    for (const range of ["bytes=20-", "bytes=100-200", "bytes=-0"]) {
      const a = await get("/content/pub/main/small.txt", { range })
      expect(a.status, range).toBe(416)
      expect(a.headers["content-range"], range).toBe("bytes */20")
      expect(a.json.error.code).toBe("range_not_satisfiable")
    }
    expect((await get("/content/pub/main/empty", { range: "bytes=0-" })).status).toBe(416)

    for (const range of ["bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=x-"]) {
      const a = await get("/content/pub/main/small.txt", { range })
      expect(a.status, range).toBe(200)
      expect(a.body.equals(small), range).toBe(true)
    }
    // If-Range with another etag: the file changed, so the client gets all of it.
    expect((await get("/content/pub/main/small.txt", { range: "bytes=2-5", "if-range": '"stale"' })).status).toBe(200)
    expect((await get("/content/pub/main/small.txt", { range: "bytes=2-5", "if-range": `"${sha256(small)}"` })).status).toBe(206)
  })

  it("answers 404 with the contract's error body for unknown base paths and files", async () => {
    expectNotFound(await get("/content/nope/small.txt"), "unknown base path")
    expectNotFound(await get("/content/pub/small.txt"), "a prefix of a base path")
    expectNotFound(await get("/content/pub/main"), "the base path alone")
    expectNotFound(await get("/content/pub/main/"), "the base path with a slash")
    expectNotFound(await get("/content/pub/main/missing.txt"), "unknown file")
    expectNotFound(await get("/content/pub/main/deep/er"), "a directory")
    expect((await request("HEAD", "/content/pub/main/missing.txt")).status, "HEAD of an unknown file").toBe(404)
    await run(createNamed("distribution", "unpublished", { base_path: "pub/none" }))
    await until("the new distribution to be routed", async () =>
      (await get("/content/pub/none/x")).json?.error?.message.includes("no publication"))
  })

  it("refuses path traversal and malformed paths, and still decodes a percent-encoded name once", async () => {
    const publication = await run(publish([{ path: "secret.txt", bytes: Buffer.from("secret") }]))
    await run(distribute("other", "other", publication))
    await until("the other distribution to be routed", async () => (await get("/content/other/secret.txt")).status === 200)

    const attempts = [
      "/content/pub/main/../../other/secret.txt",
      "/content/pub/main/%2e%2e/%2e%2e/other/secret.txt",
      "/content/pub/main/%2E%2E/%2E%2E/other/secret.txt",
      "/content/pub/main/..%2f..%2fother%2fsecret.txt",
      "/content/pub/main/%252e%252e/%252e%252e/other/secret.txt",
      "/content/pub/main/deep/../small.txt",
      "/content/pub/main/./small.txt",
      "/content/pub/main//small.txt",
      "/content//pub/main/small.txt",
      "/content/pub/main/small.txt/",
      "/content/pub/main/deep%2Fer/nested.bin",
      "/content/pub%2Fmain/small.txt",
      "/content/pub/main/deep\\er\\nested.bin",
      "/content/pub/main/deep%5Cer%5Cnested.bin",
      "/content/pub/main/small.txt%00",
      "/content/pub/main/%00",
      "/content/pub/main/%2Fetc%2Fpasswd",
      "/content/%2Fetc%2Fpasswd",
      "/content/../api/v1/workers",
      "/content/pub/main/%",
      "/content/pub/main/%E0%A4%A"
    ]
    for (const p of attempts) {
      for (const method of ["GET", "HEAD"]) {
        const a = await request(method, p)
        expect(a.status, `${method} ${p}`).toBe(404)
        if (method === "GET") expect(a.json?.error?.code, p).toBe("not_found")
      }
    }
    expect((await get("/content/pub/main/small%2Etxt")).body.equals(small)).toBe(true)
    expect((await get("/content/pub/main/small.txt?x=../../other")).body.equals(small)).toBe(true)
  })

  it("answers 500 for a stored file that is not the size it was stored with, and does not keep it", async () => {
    const bytes = Buffer.from("bytes that a damaged store will shorten\n")
    const publication = await run(publish([{ path: "damaged.txt", bytes }]))
    await run(distribute("damaged", "damaged", publication))
    await until("the damaged distribution to be routed", async () => (await request("HEAD", "/content/damaged/damaged.txt")).status === 200)
    const file = await run(Effect.map(ArtifactStorage, (s) => s.path(sha256(bytes))))
    fs.chmodSync(file!, 0o644)
    fs.writeFileSync(file!, bytes.subarray(0, 10))
    const a = await get("/content/damaged/damaged.txt")
    expect(a.status).toBe(500)
    expect(a.json.error.code).toBe("internal")
    // Repaired: served whole, so the short read was not remembered.
    fs.writeFileSync(file!, bytes)
    const b = await get("/content/damaged/damaged.txt")
    expect(b.status).toBe(200)
    expect(b.body.equals(bytes)).toBe(true)
  })

  it("makes no database query for a file at steady state, and none through the pool for a miss", async () => {
    const paths = ["small.txt", "deep/er/nested.bin", "PULP_MANIFEST"].map((p) => `/content/pub/main/${p}`)
    for (const p of paths) expect((await get(p)).status).toBe(200)
    const before = queries
    for (let i = 0; i < 20; i++) {
      for (const p of paths) {
        expect((await get(p)).status).toBe(200)
        expect((await request("HEAD", p)).status).toBe(200)
        expect((await get(p, { range: "bytes=0-3" })).status).toBe(206)
      }
      expect((await get("/content/pub/main/missing")).status).toBe(404)
      expect((await get("/content/nowhere/x")).status).toBe(404)
    }
    expect(queries - before).toBe(0)
  })

  it("makes no database query for a guarded file either, allowed or refused", async () => {
    const publication = await run(publish([{ path: "small.txt", bytes: Buffer.from("guarded at steady state\n") }]))
    await run(distribute("guarded-token", "guarded/token", publication, { type: "token", tokens: ["steady-token"] }))
    await run(distribute("guarded-signed", "guarded/signed", publication, { type: "signed" }))
    const signed = await run(signContentPath("guarded-signed", "small.txt", 600, Date.now()))
    const token = { authorization: "Bearer steady-token" }
    await until("the guarded distributions to be routed", async () =>
      (await get("/content/guarded/token/small.txt", token)).status === 200 && (await get(signed.path)).status === 200)
    const before = queries
    for (let i = 0; i < 20; i++) {
      expect((await get("/content/guarded/token/small.txt", token)).status).toBe(200)
      expect((await request("HEAD", "/content/guarded/token/small.txt", token)).status).toBe(200)
      expect((await get("/content/guarded/token/small.txt", { ...token, range: "bytes=0-3" })).status).toBe(206)
      expect((await get(signed.path)).status).toBe(200)
      expect((await request("HEAD", signed.path)).status).toBe(200)
      expect((await get(signed.path, { range: "bytes=0-3" })).status).toBe(206)
      // Refusals pass the notification barrier (on the session), not the pool.
      expect((await get("/content/guarded/token/small.txt")).status).toBe(401)
      expect((await get("/content/guarded/signed/small.txt")).status).toBe(403)
    }
    expect(queries - before).toBe(0)
  })
})

describe("routing follows distribution changes", () => {
  it("routes a new distribution, follows it to another publication, and forgets it when deleted", async () => {
    const one = await run(publish([{ path: "f.txt", bytes: Buffer.from("one") }]))
    const two = await run(publish([{ path: "f.txt", bytes: Buffer.from("two") }]))
    await run(distribute("moving", "moving/target", one))
    await until("the first publication", async () => (await get("/content/moving/target/f.txt")).body.toString() === "one", 60_000)
    await run(pointAt("moving", two))
    await until("the second publication", async () => (await get("/content/moving/target/f.txt")).body.toString() === "two", 60_000)
    await run(deleteNamed("distribution", "moving"))
    await until("the deleted distribution to be gone", async () => (await get("/content/moving/target/f.txt")).status === 404, 60_000)
  })

  it("serves a distribution, or its new publication, to the first request after the change commits", async () => {
    // No waiting for the notification here: a client told "distribution.set resolved" asks at once.
    const first = await run(publish([{ path: "f.txt", bytes: Buffer.from("first") }]))
    for (let i = 0; i < 10; i++) {
      await run(distribute(`instant-${i}`, `instant/${i}`, first))
      const a = await get(`/content/instant/${i}/f.txt`)
      expect(a.status, `instant/${i}`).toBe(200)
      expect(a.body.toString()).toBe("first")
      // A file only the new publication has.
      const next = await run(publish([{ path: `only-${i}.txt`, bytes: Buffer.from(`next ${i}`) }]))
      await run(pointAt(`instant-${i}`, next))
      const b = await get(`/content/instant/${i}/only-${i}.txt`)
      expect(b.status, `instant/${i}/only-${i}.txt`).toBe(200)
      expect(b.body.toString()).toBe(`next ${i}`)
    }
  })
})

/**
 * Runs `f` with the content app's notifications held back: the LISTEN session is kept busy by a
 * statement, and PostgreSQL delivers a session's notifications only between statements. A change
 * `f` commits is then not yet announced when `f`'s request arrives (what a client racing the
 * notification sees, made certain), unless that request passes the notification barrier, which
 * queues behind the statement and so waits for the change. If the machine is so slow that `f`
 * only starts after the statement ended, the notification simply arrives first.
 */
const withHeldNotifications = async <A>(f: () => Promise<A>): Promise<A> => {
  const busy = run(Effect.gen(function*() {
    const session = yield* Session
    const { client } = yield* session.connected
    yield* session.queries.withPermits(1)(Effect.promise(() => client.query("SELECT pg_sleep(0.5)")))
  }))
  try {
    return await f()
  } finally {
    await busy
  }
}

describe("guards follow distribution changes", () => {
  it("a guard removed, or a key rotated, is honoured by the first request after the change commits", async () => {
    // The refusal by the old guard is checked again behind the notification barrier.
    const publication = await run(publish([{ path: "g.txt", bytes: Buffer.from("guarded, then not\n") }]))
    for (let i = 0; i < 5; i++) {
      await run(distribute(`unguarding-${i}`, `unguarding/${i}`, publication, { type: "token", tokens: ["tok"] }))
      expect((await get(`/content/unguarding/${i}/g.txt`)).status, `unguarding/${i} guarded`).toBe(401)
      const opened = await withHeldNotifications(async () => {
        await run(guardAt(`unguarding-${i}`, null))
        return get(`/content/unguarding/${i}/g.txt`)
      })
      expect(opened.status, `unguarding/${i} opened`).toBe(200)

      await run(distribute(`rotating-${i}`, `rotating/${i}`, publication, { type: "signed" }))
      const old = await run(signContentPath(`rotating-${i}`, "g.txt", 600, Date.now()))
      expect((await get(old.path)).status, `rotating/${i} first key`).toBe(200)
      const fresh = await withHeldNotifications(async () => {
        await run(guardAt(`rotating-${i}`, { type: "signed" }))
        return get((await run(signContentPath(`rotating-${i}`, "g.txt", 600, Date.now()))).path)
      })
      expect(fresh.status, `rotating/${i} new key`).toBe(200)
      expect((await get(old.path)).status, `rotating/${i} old key`).toBe(403)
    }
  })
})

describe("the session's notification barrier", () => {
  it("has announced every wake-up committed before sync was called by the time it returns", async () => {
    const announced = new Set<string>()
    await run(Effect.scoped(Effect.gen(function*() {
      const session = yield* Session
      const db = yield* Db
      yield* session.onWakeup((w) => {
        if (w.futures !== "*") for (const f of w.futures) announced.add(f)
      })
      for (let i = 0; i < 50; i++) {
        const id = ulid()
        yield* db.transaction((tx) => notifyChanges(tx, { ready: 0, tasks: [], futures: [id] }))
        yield* session.sync
        expect(announced.has(id), `wake-up ${i}`).toBe(true)
      }
      // Concurrent callers all pass, sharing rounds.
      const ids = Array.from({ length: 100 }, () => ulid())
      yield* Effect.forEach(ids, (id) =>
        db.transaction((tx) => notifyChanges(tx, { ready: 0, tasks: [], futures: [id] })).pipe(
          Effect.zipRight(session.sync),
          Effect.map(() => announced.has(id))
        ), { concurrency: "unbounded" }).pipe(Effect.map((seen) => expect(seen.every(Boolean)).toBe(true)))
    })))
  })
})

describe("on-demand content", () => {
  const upstreamBytes = (p: string) => upstreamFiles[p]!
  const od = (p: string): SeedFile => ({ path: p, bytes: upstreamBytes(p), source: upstream.fileUrl(p) })
  const artifactRows = (digest: string) =>
    run(Effect.flatMap(Db, (db) => db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM artifacts WHERE sha256 = ${digest}`)))
  const linkRows = (p: string) =>
    run(Effect.flatMap(Db, (db) =>
      db.rows<{ artifact_id: string }>(sql`
        SELECT ca.artifact_id FROM content_units c JOIN content_artifacts ca ON ca.content_id = c.id WHERE c.relative_path = ${p}`)))

  beforeAll(async () => {
    const twin = { path: "od/twin-b.bin", bytes: upstreamBytes("od/twin-a.bin"), source: upstream.fileUrl("od/twin-a.bin") }
    const publication = await run(publish([od("od/big.bin"), od("od/twin-a.bin"), twin, od("od/lazy.bin"), od("od/bad.bin")]))
    await run(distribute("ondemand", "ondemand", publication))
    await until("the on-demand distribution", async () => (await request("HEAD", "/content/ondemand/od/big.bin")).status === 200)
  })

  it("fetches a file once for many concurrent first requests, stores and links it, then serves it without queries", async () => {
    const bytes = upstreamBytes("od/big.bin")
    // A slow upstream keeps the download going while all the requests arrive.
    upstream.faults.slow("od/big.bin", 500, 1)
    const first = queries
    const answers = await Promise.all(Array.from({ length: 20 }, () => get("/content/ondemand/od/big.bin")))
    for (const a of answers) {
      expect(a.status).toBe(200)
      expect(a.body.equals(bytes)).toBe(true)
    }
    expect(upstream.requests.get("od/big.bin")).toBe(1)
    expect(queries, "the counter sees the content app's queries").toBeGreaterThan(first)
    expect((await artifactRows(sha256(bytes)))[0]!.n).toBe(1)
    expect(await linkRows("od/big.bin")).toHaveLength(1)
    expect(await run(Effect.flatMap(ArtifactStorage, (s) => s.stat(sha256(bytes))))).toEqual({ size: bytes.length })

    const before = queries
    const again = await get("/content/ondemand/od/big.bin", { range: "bytes=100-199" })
    expect(again.body.equals(bytes.subarray(100, 200))).toBe(true)
    expect(queries - before).toBe(0)
    expect(upstream.requests.get("od/big.bin")).toBe(1)
  })

  it("links a second unit with the same bytes without downloading them again", async () => {
    const bytes = upstreamBytes("od/twin-a.bin")
    const [a, b] = await Promise.all([get("/content/ondemand/od/twin-a.bin"), get("/content/ondemand/od/twin-b.bin")])
    expect(a.body.equals(bytes)).toBe(true)
    expect(b.body.equals(bytes)).toBe(true)
    expect(upstream.requests.get("od/twin-a.bin")).toBe(1)
    expect(await linkRows("od/twin-a.bin")).toHaveLength(1)
    expect(await linkRows("od/twin-b.bin")).toEqual(await linkRows("od/twin-a.bin"))
  })

  it("answers HEAD, 304 and 416 from the routing table, without fetching", async () => {
    const bytes = upstreamBytes("od/lazy.bin")
    const h = await request("HEAD", "/content/ondemand/od/lazy.bin")
    expect(h.status).toBe(200)
    expect(h.headers["content-length"]).toBe(String(bytes.length))
    expect(h.headers.etag).toBe(`"${sha256(bytes)}"`)
    expect((await get("/content/ondemand/od/lazy.bin", { "if-none-match": `"${sha256(bytes)}"` })).status).toBe(304)
    expect((await get("/content/ondemand/od/lazy.bin", { range: "bytes=5000-" })).status).toBe(416)
    expect(upstream.requests.get("od/lazy.bin")).toBeUndefined()
  })

  it("answers 502 and stores nothing when upstream sends the wrong bytes; a later request succeeds", async () => {
    const bytes = upstreamBytes("od/bad.bin")
    upstream.faults.corrupt("od/bad.bin")
    const a = await get("/content/ondemand/od/bad.bin")
    expect(a.status).toBe(502)
    expect(a.json.error.code).toBe("bad_gateway")
    expect(a.json.error.message).toMatch(/digest/)
    expect((await artifactRows(sha256(bytes)))[0]!.n).toBe(0)
    expect(await linkRows("od/bad.bin")).toHaveLength(0)
    expect(await run(Effect.flatMap(ArtifactStorage, (s) => s.stat(sha256(bytes))))).toBeUndefined()

    upstream.faults.clear("od/bad.bin")
    const b = await get("/content/ondemand/od/bad.bin")
    expect(b.status).toBe(200)
    expect(b.body.equals(bytes)).toBe(true)
    expect(await linkRows("od/bad.bin")).toHaveLength(1)
  })
})

describe("in a real serve process", () => {
  let server: Server | undefined
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-content-"))
  afterAll(async () => {
    await server?.stop()
    fs.rmSync(dataDir, { recursive: true, force: true })
  })

  it("serves /content without a token while /api/v1 requires one", async () => {
    const storage = await Effect.runPromise(LocalArtifactStorage.make(path.join(dataDir, "artifacts")))
    const bytes = Buffer.from("served by the serve process\n")
    const publication = await run(publish([{ path: "hello.txt", bytes }]).pipe(Effect.provideService(ArtifactStorage, storage)))
    await run(distribute("process", "process/dist", publication))

    server = await startServer(dbUrl, { CAIRN_DATA_DIR: dataDir, CAIRN_API_TOKENS: "s3cret", CAIRN_WORKERS: "0" })
    const serverPort = Number(new URL(server.url).port)
    const a = await request("GET", "/content/process/dist/hello.txt", {}, serverPort)
    expect(a.status).toBe(200)
    expect(a.body.equals(bytes)).toBe(true)
    expect(a.headers.etag).toBe(`"${sha256(bytes)}"`)
    expectNotFound(await request("GET", "/content/process/dist/nope", {}, serverPort), "unknown file in the process")
    expect((await request("GET", "/api/v1/workers", {}, serverPort)).status).toBe(401)
  })
})
