/**
 * The artifact store's contract (src/content/storage.ts), as one suite that every backend runs:
 * test/storage.test.ts runs it against the local filesystem and against a real S3-protocol server.
 * A backend tells the suite how to make a fresh store, what is visible in it, what temporaries it
 * holds, and how to damage an artifact the way its medium can be damaged.
 */
import { Duration, Effect, Exit, type Layer, Scope } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import { join } from "node:path"
import { Readable } from "node:stream"
import { afterEach, describe, expect, it } from "vitest"
import { ArtifactStorage, type ArtifactStorageShape, type StorageError } from "../src/content/storage.js"

export interface StoreUnderTest {
  readonly make: Effect.Effect<ArtifactStorageShape, StorageError, Scope.Scope>
  readonly layer: Layer.Layer<ArtifactStorage, StorageError>
  /** The digests of the artifacts visible in the store (the medium, not the store's own answers). */
  readonly visible: () => Promise<Array<string>>
  /** Leftovers of puts (temporary files or objects), by name; tombstones are not counted. */
  readonly temporaries: () => Promise<Array<string>>
  /** Put `bytes` where the artifact `sha` lives, bypassing the store (damage). */
  readonly damage: (sha: string, bytes: Buffer) => Promise<void>
  readonly close: () => Promise<void>
}

export interface Backend {
  readonly name: string
  readonly fresh: () => Promise<StoreUnderTest>
}

export const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex")
export const EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

export const run = <A, E>(eff: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(eff))
/** The typed error an effect fails with (and a test failure if it succeeds). */
export const failure = <A, E>(eff: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(Effect.flip(eff)))

export async function* chunks(...parts: Array<Uint8Array>) {
  for (const p of parts) yield p
}

export const readAll = async (s: NodeJS.ReadableStream) => {
  const out: Array<Buffer> = []
  for await (const c of s) out.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(out)
}

export const storageContract = (backend: Backend) => {
  let sut: StoreUnderTest | undefined
  const stores: Array<StoreUnderTest> = []
  const scopes: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const close of scopes.splice(0).reverse()) await close()
    for (const s of stores.splice(0)) await s.close()
    sut = undefined
  })

  /** A fresh store (kept open until the test ends) and what the suite can see of it. */
  const makeStore = async () => {
    sut = await backend.fresh()
    stores.push(sut)
    const scope = await Effect.runPromise(Scope.make())
    scopes.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
    return Effect.runPromise(Scope.extend(sut.make, scope))
  }
  const visible = () => sut!.visible().then((v) => v.sort())
  const temporaries = () => sut!.temporaries()

  describe(`${backend.name}: put, stat, open`, () => {
    it("round-trips bytes written in several chunks", async () => {
      const store = await makeStore()
      const parts = [randomBytes(70_000), randomBytes(1), randomBytes(130_000)]
      const all = Buffer.concat(parts)
      const r = await run(store.put(chunks(...parts)))
      expect(r).toEqual({ sha256: sha256(all), size: all.length, created: true })
      expect(await run(store.stat(r.sha256))).toEqual({ size: all.length })
      expect(Buffer.compare(await readAll(await run(store.open(r.sha256))), all)).toBe(0)
      expect(await visible()).toEqual([r.sha256])
      expect(await temporaries()).toEqual([])
    })

    it("streams a body of several parts, with and without an announced digest", async () => {
      const store = await makeStore()
      // More than two 5 MiB parts: an object store's multipart path.
      const all = randomBytes(12 * 1024 * 1024 + 17)
      const pieces = (b: Buffer) => Readable.from(Array.from({ length: Math.ceil(b.length / 65_536) }, (_, i) => b.subarray(i * 65_536, (i + 1) * 65_536)))
      const announced = await run(store.put(pieces(all), { sha256: sha256(all), size: all.length }))
      expect(announced).toEqual({ sha256: sha256(all), size: all.length, created: true })
      expect(sha256(await readAll(await run(store.open(announced.sha256))))).toBe(sha256(all))
      const other = Buffer.concat([all, Buffer.from("!")])
      const unannounced = await run(store.put(pieces(other)))
      expect(unannounced).toEqual({ sha256: sha256(other), size: other.length, created: true })
      expect(sha256(await readAll(await run(store.open(unannounced.sha256))))).toBe(sha256(other))
      expect(await visible()).toEqual([sha256(all), sha256(other)].sort())
      expect(await temporaries()).toEqual([])
    })

    it("serves inclusive byte ranges, clamping the end and refusing unsatisfiable ones", async () => {
      const store = await makeStore()
      const all = randomBytes(1000)
      const { sha256: sha } = await run(store.put(chunks(all)))

      const range = async (start: number, end: number) => readAll(await run(store.open(sha, { start, end })))
      expect(Buffer.compare(await range(10, 19), all.subarray(10, 20))).toBe(0)
      expect(Buffer.compare(await range(0, 0), all.subarray(0, 1))).toBe(0)
      expect(Buffer.compare(await range(999, 999), all.subarray(999))).toBe(0)
      expect(Buffer.compare(await range(990, 5000), all.subarray(990))).toBe(0)

      expect(await failure(store.open(sha, { start: 1000, end: 1000 }))).toMatchObject({ _tag: "BadRange", size: 1000 })
      expect((await failure(store.open(sha, { start: 5, end: 4 })))._tag).toBe("BadRange")
      expect((await failure(store.open(sha, { start: -1, end: 4 })))._tag).toBe("BadRange")
      expect((await failure(store.open(sha, { start: 0.5, end: 4 })))._tag).toBe("BadRange")
      expect((await failure(store.open(sha256("absent"), { start: 0, end: 4 })))._tag).toBe("NotStored")
    })

    it("stores the empty artifact", async () => {
      const store = await makeStore()
      const r = await run(store.put(chunks()))
      expect(r).toEqual({ sha256: EMPTY_SHA, size: 0, created: true })
      expect(await run(store.stat(EMPTY_SHA))).toEqual({ size: 0 })
      expect((await readAll(await run(store.open(EMPTY_SHA)))).length).toBe(0)
      expect((await failure(store.open(EMPTY_SHA, { start: 0, end: 0 })))._tag).toBe("BadRange")
    })

    it("accepts Node readable streams as the source", async () => {
      const store = await makeStore()
      const dir = await fsp.mkdtemp(join(os.tmpdir(), "cairn-source-"))
      try {
        const src = join(dir, "source.bin")
        const all = randomBytes(300_000)
        await fsp.writeFile(src, all)
        const a = await run(store.put(fs.createReadStream(src, { highWaterMark: 16_384 }), { sha256: sha256(all), size: all.length }))
        expect(a).toEqual({ sha256: sha256(all), size: all.length, created: true })
        const b = await run(store.put(Readable.from([Buffer.from("hello "), Buffer.from("world")])))
        expect(b.sha256).toBe(sha256("hello world"))
      } finally {
        await fsp.rm(dir, { recursive: true, force: true })
      }
    })

    it("answers absent digests with undefined / NotStored", async () => {
      const store = await makeStore()
      const sha = sha256("never stored")
      expect(await run(store.stat(sha))).toBeUndefined()
      expect(await failure(store.open(sha))).toMatchObject({ _tag: "NotStored", sha256: sha })
      expect(store.path(sha)).toBeUndefined()
    })

    it("is reachable through the ArtifactStorage tag", async () => {
      await makeStore()
      const r = await Effect.runPromise(
        Effect.gen(function*() {
          const store = yield* ArtifactStorage
          yield* store.check
          return yield* store.put(chunks(Buffer.from("via the layer")))
        }).pipe(Effect.provide(sut!.layer))
      )
      expect(r.sha256).toBe(sha256("via the layer"))
      expect(await visible()).toEqual([r.sha256])
    })
  })

  describe(`${backend.name}: deduplication`, () => {
    it("keeps the first copy and reports created: false for the same bytes, announced or not", async () => {
      const store = await makeStore()
      const bytes = Buffer.from("the same bytes twice")
      const first = await run(store.put(chunks(bytes)))
      const second = await run(store.put(chunks(bytes.subarray(0, 5), bytes.subarray(5))))
      const third = await run(store.put(chunks(bytes), { sha256: first.sha256, size: bytes.length }))
      expect(first.created).toBe(true)
      expect(second).toEqual({ sha256: first.sha256, size: bytes.length, created: false })
      expect(third).toEqual({ sha256: first.sha256, size: bytes.length, created: false })
      // The source is still checked when the bytes are there already.
      expect((await failure(store.put(chunks(Buffer.from("other bytes")), { sha256: first.sha256 })))._tag).toBe("DigestMismatch")
      expect(await visible()).toEqual([first.sha256])
      expect(await temporaries()).toEqual([])
    })

    it("creates exactly once under concurrent puts of the same bytes", async () => {
      const store = await makeStore()
      const bytes = randomBytes(50_000)
      for (const expected of [undefined, { sha256: sha256(Buffer.concat([bytes, bytes])) }]) {
        const body = expected ? Buffer.concat([bytes, bytes]) : bytes
        const results = await run(Effect.all(Array.from({ length: 6 }, () => store.put(chunks(body), expected)), { concurrency: "unbounded" }))
        expect(results.filter((r) => r.created)).toHaveLength(1)
        expect(new Set(results.map((r) => r.sha256))).toEqual(new Set([sha256(body)]))
      }
      expect(await visible()).toEqual([sha256(bytes), sha256(Buffer.concat([bytes, bytes]))].sort())
      expect(await temporaries()).toEqual([])
    })

    it("replaces a damaged (wrong-size) copy with the verified bytes", async () => {
      const store = await makeStore()
      for (const announce of [false, true]) {
        const bytes = Buffer.from(`the real content ${announce}`)
        const sha = sha256(bytes)
        await sut!.damage(sha, Buffer.from("trunc"))
        const r = await run(store.put(chunks(bytes), announce ? { sha256: sha, size: bytes.length } : undefined))
        expect(r.created).toBe(true)
        expect((await readAll(await run(store.open(sha)))).toString()).toBe(bytes.toString())
      }
    })
  })

  describe(`${backend.name}: stage and persist`, () => {
    it("a staged artifact is stored and visible at once, deduplicated as put does; persist takes a batch, absent digests too", async () => {
      const store = await makeStore()
      const parts = [Buffer.from("staged one"), Buffer.from("staged two"), Buffer.from("")]
      const staged = await run(Effect.forEach(parts, (b) => store.stage(chunks(b), { sha256: sha256(b), size: b.length }), { concurrency: 3 }))
      expect(staged.map((r) => r.created)).toEqual([true, true, true])
      for (const [i, b] of parts.entries()) {
        expect(await run(store.stat(sha256(b)))).toEqual({ size: b.length })
        expect((await readAll(await run(store.open(sha256(b))))).toString()).toBe(b.toString())
      }
      // Staging bytes already there (staged or put) keeps that copy.
      expect(await run(store.stage(chunks(parts[0]!)))).toEqual({ sha256: sha256(parts[0]!), size: parts[0]!.length, created: false })
      await run(store.persist([...parts.map((b) => sha256(b)), sha256("never stored"), sha256(parts[0]!)]))
      await run(store.persist([]))
      expect(await visible()).toEqual(parts.map((b) => sha256(b)).sort())
      expect(await temporaries()).toEqual([])
    })

    it("refuses what put refuses, leaving nothing behind", async () => {
      const store = await makeStore()
      const bytes = Buffer.from("staged, but not these bytes")
      expect((await failure(store.stage(chunks(bytes), { sha256: sha256("other") })))._tag).toBe("DigestMismatch")
      expect((await failure(store.stage(chunks(bytes), { size: bytes.length + 1 })))._tag).toBe("SizeMismatch")
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
    })
  })

  describe(`${backend.name}: refused uploads leave nothing behind`, () => {
    it("DigestMismatch when the bytes do not hash to the expected digest", async () => {
      const store = await makeStore()
      const bytes = Buffer.from("actual content")
      const claimed = sha256("claimed content")
      const e = await failure(store.put(chunks(bytes), { sha256: claimed }))
      expect(e).toMatchObject({ _tag: "DigestMismatch", expected: claimed, actual: sha256(bytes) })
      expect(await run(store.stat(claimed))).toBeUndefined()
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
      // ... while the right digest is accepted.
      expect((await run(store.put(chunks(bytes), { sha256: sha256(bytes) }))).created).toBe(true)
    })

    it("DigestMismatch for a body of several parts: no part becomes visible", async () => {
      const store = await makeStore()
      const all = randomBytes(11 * 1024 * 1024)
      const claimed = sha256("something else entirely")
      const parts = Array.from({ length: 11 }, (_, i) => all.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024))
      expect((await failure(store.put(chunks(...parts), { sha256: claimed, size: all.length })))._tag).toBe("DigestMismatch")
      expect(await run(store.stat(claimed))).toBeUndefined()
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
    })

    it("SizeMismatch for too few and for too many bytes", async () => {
      const store = await makeStore()
      const bytes = Buffer.from("0123456789")
      expect(await failure(store.put(chunks(bytes), { size: 11 }))).toMatchObject({ _tag: "SizeMismatch", expected: 11, actual: 10 })
      expect(await failure(store.put(chunks(bytes.subarray(0, 4), bytes.subarray(4)), { size: 5 }))).toMatchObject({
        _tag: "SizeMismatch",
        expected: 5,
        actual: 10
      })
      expect(await failure(store.put(chunks(bytes), { sha256: sha256(bytes), size: 11 }))).toMatchObject({ _tag: "SizeMismatch" })
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
    })

    it("TooLarge as soon as maxSize is exceeded, without reading the rest", async () => {
      const store = await makeStore()
      let pulled = 0
      let finished = false
      async function* endless() {
        try {
          for (;;) {
            pulled += 1
            // Endless in spirit; capped so that a regression fails this test instead of hanging it.
            if (pulled > 1000) throw new Error("read far past maxSize")
            yield randomBytes(1024)
          }
        } finally {
          finished = true
        }
      }
      const e = await failure(store.put(endless(), { maxSize: 4096 }))
      expect(e).toMatchObject({ _tag: "TooLarge", limit: 4096 })
      expect(pulled).toBe(5) // the fifth chunk crossed the limit; nothing more was asked for
      // The source is told to stop without waiting for it: wait for that, bounded.
      for (let i = 0; i < 200 && !finished; i++) await new Promise((r) => setTimeout(r, 5))
      expect(finished).toBe(true)
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])

      // Exactly at the limit is fine.
      expect((await run(store.put(chunks(randomBytes(4096)), { maxSize: 4096 }))).size).toBe(4096)
    })

    it("TooLarge before reading anything when the announced size exceeds maxSize", async () => {
      const store = await makeStore()
      let pulled = 0
      async function* src() {
        pulled += 1
        yield Buffer.from("x")
      }
      expect(await failure(store.put(src(), { size: 10_000, maxSize: 100 }))).toMatchObject({ _tag: "TooLarge", limit: 100 })
      expect(pulled).toBe(0)
    })

    it("SourceError when the source breaks mid-way", async () => {
      const store = await makeStore()
      for (const expected of [undefined, { sha256: sha256("whatever it would have been") }]) {
        async function* broken() {
          yield randomBytes(10_000)
          throw new Error("client went away")
        }
        const e = await failure(store.put(broken(), expected))
        expect(e._tag).toBe("SourceError")
        expect(e.message).toContain("client went away")
      }
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
    })

    it("leaves nothing when the upload is interrupted mid-stream", async () => {
      const store = await makeStore()
      for (const expected of [undefined, { sha256: sha256("never finished") }]) {
        const src = new Readable({ read() {} })
        src.push(randomBytes(5000)) // then nothing more, ever
        const exit = await Effect.runPromiseExit(Effect.scoped(store.put(src, expected).pipe(Effect.timeoutFail({
          duration: Duration.millis(200),
          onTimeout: () => "timeout" as const
        }))))
        expect(exit._tag).toBe("Failure")
        expect(src.destroyed).toBe(true)
      }
      expect(await temporaries()).toEqual([])
      expect(await visible()).toEqual([])
    })
  })

  describe(`${backend.name}: digest validation`, () => {
    const bad = ["../../etc/passwd", "A".repeat(64), "a".repeat(63), "a".repeat(65), `${"a".repeat(62)}/x`, ""]

    it.each(bad)("BadDigest for %j everywhere, before touching the store", async (value) => {
      const store = await makeStore()
      const ops: Array<Effect.Effect<unknown, { readonly _tag: string }>> = [
        store.stat(value),
        store.open(value),
        store.presignedUrl(value, 60),
        store.remove(value),
        store.tombstone(value),
        store.restore(value),
        store.purgeTombstone(value),
        store.put(chunks(Buffer.from("x")), { sha256: value }),
        store.stage(chunks(Buffer.from("x")), { sha256: value }),
        store.persist([sha256("x"), value])
      ]
      for (const op of ops) expect(await failure(op)).toMatchObject({ _tag: "BadDigest", value })
      expect(store.path(value)).toBeUndefined()
      expect(await visible()).toEqual([])
      expect(await temporaries()).toEqual([])
    })
  })

  describe(`${backend.name}: removal`, () => {
    it("remove deletes the artifact and is idempotent", async () => {
      const store = await makeStore()
      const { sha256: sha } = await run(store.put(chunks(Buffer.from("to be removed"))))
      await run(store.remove(sha))
      expect(await run(store.stat(sha))).toBeUndefined()
      expect(await visible()).toEqual([])
      await run(store.remove(sha))
      await run(store.remove(sha256("never stored")))
    })

    it("tombstone hides nothing; restore drops it and keeps the bytes; purge deletes both", async () => {
      const store = await makeStore()
      const bytes = Buffer.from("an orphan, maybe")
      const { sha256: sha } = await run(store.put(chunks(bytes)))

      await run(store.tombstone(sha))
      expect(await run(store.tombstones)).toEqual([sha])
      expect(await run(store.stat(sha))).toEqual({ size: bytes.length })
      expect(Buffer.compare(await readAll(await run(store.open(sha))), bytes)).toBe(0)

      // The cleanup's transaction did not delete the row: the bytes stay.
      await run(store.restore(sha))
      expect(await run(store.tombstones)).toEqual([])
      expect(Buffer.compare(await readAll(await run(store.open(sha))), bytes)).toBe(0)
      await run(store.restore(sha)) // idempotent

      // It did: the bytes go, then the tombstone.
      await run(store.tombstone(sha))
      await run(store.purgeTombstone(sha))
      expect(await run(store.tombstones)).toEqual([])
      expect(await run(store.stat(sha))).toBeUndefined()
      expect(await visible()).toEqual([])
      await run(store.purgeTombstone(sha)) // idempotent

      // A tombstone for bytes that are not there (a crash after the purge's first step) purges too.
      await run(store.tombstone(sha256("never stored")))
      await run(store.purgeTombstone(sha256("never stored")))
      expect(await run(store.tombstones)).toEqual([])
      expect(await temporaries()).toEqual([])
    })
  })

  describe(`${backend.name}: health`, () => {
    it("check succeeds on a usable store; sweep of a clean store removes nothing", async () => {
      const store = await makeStore()
      await run(store.check)
      expect(await run(store.sweep)).toBe(0)
    })
  })
}
