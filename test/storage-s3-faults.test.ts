/**
 * The object store failing under a sync: a real S3-protocol server (s3rver) behind a proxy the
 * test controls, which passes requests through, refuses connections (the store is down), answers
 * 503 SlowDown or 500 InternalError, or holds requests unanswered (the store is slow). Each time
 * the sync fails with `storage_error` and a message naming the cause, no artifact row lacks its
 * object, every object under an artifact's name holds bytes that hash to it, no temporary is left,
 * and once the store is back a re-run succeeds. Then the store's own answers to a bad
 * configuration: refused credentials and a missing bucket, named, and no secret in the message.
 *
 * No mock of the SDK: every request is a real HTTP request to a real server.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { createHash } from "node:crypto"
import { Readable } from "node:stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed } from "../src/content/named.js"
import { S3ArtifactStorage } from "../src/content/storage-s3.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { Db } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { type Fault, type FaultProxy, type S3Server, startFaultProxy, startS3, storedObjects } from "./support/s3.js"
import { makeFiles, startUpstream } from "./support/upstream.js"

const PREFIX = "faults/"
let s3: S3Server
let proxy: FaultProxy
let rt: ManagedRuntime.ManagedRuntime<any, any>
let seed = 30
/** Files no other case has (so that each sync stores them): several single-part ones and one of two parts (a multipart upload). */
const freshFiles = () => ({
  ...makeFiles(6, { seed: seed++, minSize: 20_000, maxSize: 200_000 }),
  "big/two-parts.bin": Buffer.concat(Object.values(makeFiles(7, { seed: seed++, minSize: 1024 * 1024, maxSize: 1024 * 1024 })))
})

beforeAll(async () => {
  s3 = await startS3()
  proxy = await startFaultProxy(s3.endpoint)
  const url = await createTestDatabase()
  rt = ManagedRuntime.make(Layer.merge(
    engineLayer(url, {
      // Short enough for the "does not answer" case to be quick, long enough that a loaded machine
      // does not stall an answer of s3rver that long (a retried part upload racing its first
      // attempt is what s3rver answers 500 to).
      storage: { ...s3.storage(PREFIX, proxy.endpoint), requestTimeoutMs: 5000 },
      // No retries of the downloads: the store's failures are what is under test.
      downloadRetries: 0
    }),
    Logger.minimumLogLevel(LogLevel.Error)
  ))
  await rt.runPromise(Effect.forkDaemon(Effect.scoped(Effect.zipRight(runWorker({ slots: 2 }), Effect.never))))
})
afterAll(async () => {
  await rt?.dispose()
  await proxy?.close()
  await s3?.close()
})

/** Run one sync and wait (bounded) for its future. */
const sync = (repository: string, remote: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const g = yield* submitGraph({ nodes: { s: { task: "file.sync", params: { repository, remote } } } })
    const id = g.nodes.s!.outputs.version!
    for (let waited = 0; waited < 120_000; waited += 50) {
      const [f] = yield* db.rows<{ state: string; value: any; error: any }>(sql`SELECT state, value, error FROM futures WHERE id = ${id}`)
      if (f!.state !== "pending") return f!
      yield* Effect.sleep(Duration.millis(50))
    }
    return yield* Effect.dieMessage("the sync did not settle within 120 s")
  })

/** Every row has its whole object, every object under an artifact's name is that artifact, no temporaries. */
const consistent = Effect.gen(function*() {
  const db = yield* Db
  const storage = yield* ArtifactStorage
  const rows = yield* db.rows<{ sha256: string; size: string }>(sql`SELECT sha256, size FROM artifacts`)
  for (const r of rows) expect((yield* storage.stat(r.sha256))?.size, r.sha256).toBe(Number(r.size))
  for (const [key, bytes] of storedObjects(s3, PREFIX)) {
    expect(key.startsWith(`${PREFIX}tmp/`), `a temporary is left: ${key}`).toBe(false)
    expect(createHash("sha256").update(bytes).digest("hex"), key).toBe(key.split("/").at(-1))
  }
})

const cases: ReadonlyArray<[name: string, fault: Fault | "down", cause: RegExp]> = [
  ["the store is down", "down", /the object store at http:\/\/127\.0\.0\.1:\d+ is unreachable \((ECONNREFUSED|ECONNRESET)\)/],
  // (A HEAD's answer has no body, so its error code is unknown: the status is named all the same.)
  ["the store answers 503 SlowDown", "slowdown", /the object store is overloaded or unavailable \(503( SlowDown)?\); retried, still failing/],
  ["the store answers 500 InternalError", "internal", /the object store failed \(500( InternalError)?\); retried, still failing/],
  ["the store does not answer", "hang", /the object store at http:\/\/127\.0\.0\.1:\d+ did not answer in time/]
]

describe("object store faults under a sync", () => {
  it.each(cases)("%s: the sync fails naming the cause, nothing half-visible remains, a re-run succeeds once it is back", async (name, fault, cause) => {
    const key = name.replace(/\W+/g, "-")
    const files = freshFiles()
    const upstream = await startUpstream(files)
    await rt.runPromise(Effect.gen(function*() {
      yield* createNamed("remote", key, { url: upstream.url, policy: "immediate", download_concurrency: 2 })
      yield* createNamed("repository", key, {})
      const before = proxy.requests()
      if (fault === "down") yield* Effect.promise(() => proxy.down())
      else proxy.set(fault)
      const failed = yield* sync(key, key).pipe(Effect.ensuring(Effect.promise(async () => {
        if (fault === "down") await proxy.up()
        else proxy.set("none")
      })))
      expect(failed.state).toBe("failed")
      expect(failed.error.code).toBe("storage_error")
      expect(failed.error.message).toMatch(cause)
      if (fault !== "down") expect(proxy.requests()).toBeGreaterThan(before)
      yield* consistent

      const ok = yield* sync(key, key)
      expect(ok.state, JSON.stringify(ok.error)).toBe("resolved")
      expect(ok.value.number).toBe(1)
      yield* consistent
      // Every file of the version is in the bucket.
      for (const bytes of Object.values(files)) {
        const sha = createHash("sha256").update(bytes).digest("hex")
        expect(storedObjects(s3, PREFIX).has(`${PREFIX}${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`)).toBe(true)
      }
    })).finally(() => upstream.close())
  })
})

describe("what landed is checked", () => {
  it("a store that stores other bytes than it was sent fails the put, and the wrong object is removed", async () => {
    const bytes = Buffer.from("exactly these bytes")
    const sha = createHash("sha256").update(bytes).digest("hex")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* S3ArtifactStorage.make(s3.options("landed/", proxy.endpoint))
      proxy.set("pad-puts")
      const announced = yield* Effect.flip(store.put(Readable.from([bytes]), { sha256: sha, size: bytes.length })).pipe(
        Effect.ensuring(Effect.sync(() => proxy.set("none")))
      )
      expect(announced.message).toMatch(/the object store stored 20 bytes for an upload of 19 bytes/)
      expect(yield* store.stat(sha)).toBeUndefined()
      proxy.set("pad-puts")
      const unannounced = yield* Effect.flip(store.put(Readable.from([bytes]))).pipe(Effect.ensuring(Effect.sync(() => proxy.set("none"))))
      expect(unannounced.message).toMatch(/the object store stored 20 bytes for an upload of 19 bytes/)
      expect(yield* store.stat(sha)).toBeUndefined()
      expect([...storedObjects(s3, "landed/").keys()]).toEqual([])
      // Once the store behaves, the same put succeeds.
      expect(yield* store.put(Readable.from([bytes]), { sha256: sha })).toMatchObject({ sha256: sha, created: true })
    })))
  })
})

describe("object store configuration faults", () => {
  const make = (overrides: Partial<ReturnType<S3Server["options"]>>) =>
    Effect.runPromise(Effect.scoped(Effect.flip(S3ArtifactStorage.make({ ...s3.options("x/"), maxAttempts: 1, ...overrides }))))

  it("refused credentials stop the store at start, naming the cause and not the secret", async () => {
    const e = await make({ credentials: { accessKeyId: "AKIAUNKNOWNKEY", secretAccessKey: "never-in-a-message" } })
    expect(e.message).toMatch(/the object store (refused the credentials \(InvalidAccessKeyId\)|denied access to bucket)/)
    expect(e.message).not.toContain("never-in-a-message")
    expect(JSON.stringify(e)).not.toContain("never-in-a-message")
  })

  it("a bucket that does not exist is named", async () => {
    const e = await make({ bucket: "no-such-bucket" })
    expect(e.message).toMatch(/the object store has no bucket no-such-bucket/)
  })

  it("the health check names the cause while the store is down, and passes again once it is back", async () => {
    await rt.runPromise(Effect.gen(function*() {
      const storage = yield* ArtifactStorage
      yield* storage.check
      yield* Effect.promise(() => proxy.down())
      const e = yield* Effect.flip(storage.check).pipe(Effect.ensuring(Effect.promise(() => proxy.up())))
      expect(e.message).toMatch(/unreachable \((ECONNREFUSED|ECONNRESET)\)/)
      yield* storage.check
    }))
  })
})
