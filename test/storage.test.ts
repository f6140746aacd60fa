/**
 * The local artifact store, on the real filesystem (a fresh mkdtemp directory per test; no
 * database). The tests run as root in CI, where permission bits do not stop writes, so store
 * failures are provoked with things root cannot get past: a file where a directory must be, and
 * an immutable (chattr +i) directory.
 */
import { Duration, Effect } from "effect"
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import { join } from "node:path"
import { Readable } from "node:stream"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { toStorageError, LocalArtifactStorage } from "../src/content/storage-local.js"
import { ArtifactStorage, type ArtifactStorageShape, StorageError } from "../src/content/storage.js"

let base: string
let root: string
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  base = await fsp.mkdtemp(join(os.tmpdir(), "cairn-storage-"))
  root = join(base, "store")
})

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  await fsp.rm(base, { recursive: true, force: true })
})

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex")
const EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

const run = <A, E>(eff: Effect.Effect<A, E>) => Effect.runPromise(eff)
/** The typed error an effect fails with (and a test failure if it succeeds). */
const failure = <A, E>(eff: Effect.Effect<A, E>) => Effect.runPromise(Effect.flip(eff))

const makeStore = () => run(LocalArtifactStorage.make(root))

async function* chunks(...parts: Array<Uint8Array>) {
  for (const p of parts) yield p
}

const readAll = async (s: NodeJS.ReadableStream) => {
  const out: Array<Buffer> = []
  for await (const c of s) out.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(out)
}

const finalPath = (sha: string) => join(root, sha.slice(0, 2), sha.slice(2, 4), sha)
const tmpEntries = () => fsp.readdir(join(root, "tmp"))
const exists = (p: string) => fsp.lstat(p).then(() => true, () => false)

/** Every regular file under the store outside tmp (the visible artifacts). */
const visibleFiles = async (): Promise<Array<string>> => {
  const out: Array<string> = []
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      if (d === root && e.name === "tmp") continue
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(p)
    }
  }
  await walk(root)
  return out
}

describe("put, stat, open", () => {
  it("round-trips bytes written in several chunks", async () => {
    const store = await makeStore()
    const parts = [randomBytes(70_000), randomBytes(1), randomBytes(130_000)]
    const all = Buffer.concat(parts)
    const r = await run(store.put(chunks(...parts)))
    expect(r).toEqual({ sha256: sha256(all), size: all.length, created: true })

    expect(await run(store.stat(r.sha256))).toEqual({ size: all.length })
    expect(Buffer.compare(await readAll(await run(store.open(r.sha256))), all)).toBe(0)
    expect(store.path(r.sha256)).toBe(finalPath(r.sha256))
    expect(Buffer.compare(await fsp.readFile(finalPath(r.sha256)), all)).toBe(0)
    // Stored read-only, and no temp file left behind.
    expect((await fsp.stat(finalPath(r.sha256))).mode & 0o777).toBe(0o444)
    expect(await tmpEntries()).toEqual([])
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
    const src = join(base, "source.bin")
    const all = randomBytes(300_000)
    await fsp.writeFile(src, all)
    const a = await run(store.put(fs.createReadStream(src, { highWaterMark: 16_384 }), { sha256: sha256(all), size: all.length }))
    expect(a).toEqual({ sha256: sha256(all), size: all.length, created: true })
    const b = await run(store.put(Readable.from([Buffer.from("hello "), Buffer.from("world")])))
    expect(b.sha256).toBe(sha256("hello world"))
  })

  it("answers absent digests with undefined / NotStored", async () => {
    const store = await makeStore()
    const sha = sha256("never stored")
    expect(await run(store.stat(sha))).toBeUndefined()
    expect(await failure(store.open(sha))).toMatchObject({ _tag: "NotStored", sha256: sha })
    expect(store.path(sha)).toBeUndefined()
  })

  it("is reachable through the ArtifactStorage tag and creates root and tmp", async () => {
    const r = await run(
      Effect.gen(function*() {
        const store = yield* ArtifactStorage
        return yield* store.put(chunks(Buffer.from("via the layer")))
      }).pipe(Effect.provide(LocalArtifactStorage.layer(root)))
    )
    expect(r.sha256).toBe(sha256("via the layer"))
    expect((await fsp.lstat(join(root, "tmp"))).isDirectory()).toBe(true)
  })
})

describe("deduplication", () => {
  it("keeps the first copy and reports created: false for the same bytes", async () => {
    const store = await makeStore()
    const bytes = Buffer.from("the same bytes twice")
    const first = await run(store.put(chunks(bytes)))
    const inodeBefore = (await fsp.stat(finalPath(first.sha256))).ino
    const second = await run(store.put(chunks(bytes.subarray(0, 5), bytes.subarray(5))))
    expect(first.created).toBe(true)
    expect(second).toEqual({ sha256: first.sha256, size: bytes.length, created: false })
    expect((await fsp.stat(finalPath(first.sha256))).ino).toBe(inodeBefore)
    expect(await visibleFiles()).toEqual([finalPath(first.sha256)])
    expect(await tmpEntries()).toEqual([])
  })

  it("creates exactly once under concurrent puts of the same bytes", async () => {
    const store = await makeStore()
    const bytes = randomBytes(50_000)
    const results = await run(Effect.all(Array.from({ length: 6 }, () => store.put(chunks(bytes))), { concurrency: "unbounded" }))
    expect(results.filter((r) => r.created)).toHaveLength(1)
    expect(new Set(results.map((r) => r.sha256))).toEqual(new Set([sha256(bytes)]))
    expect(await visibleFiles()).toEqual([finalPath(sha256(bytes))])
    expect(await tmpEntries()).toEqual([])
  })

  it("replaces a damaged (wrong-size) copy with the verified bytes", async () => {
    const store = await makeStore()
    const bytes = Buffer.from("the real content")
    const sha = sha256(bytes)
    await fsp.mkdir(join(root, sha.slice(0, 2), sha.slice(2, 4)), { recursive: true })
    await fsp.writeFile(finalPath(sha), "trunc")
    const r = await run(store.put(chunks(bytes)))
    expect(r.created).toBe(true)
    expect((await fsp.readFile(finalPath(sha))).toString()).toBe("the real content")
  })
})

describe("refused uploads leave nothing behind", () => {
  it("DigestMismatch when the bytes do not hash to the expected digest", async () => {
    const store = await makeStore()
    const bytes = Buffer.from("actual content")
    const claimed = sha256("claimed content")
    const e = await failure(store.put(chunks(bytes), { sha256: claimed }))
    expect(e).toMatchObject({ _tag: "DigestMismatch", expected: claimed, actual: sha256(bytes) })
    expect(await exists(finalPath(sha256(bytes)))).toBe(false)
    expect(await exists(finalPath(claimed))).toBe(false)
    expect(await visibleFiles()).toEqual([])
    expect(await tmpEntries()).toEqual([])
    // ... while the right digest is accepted.
    expect((await run(store.put(chunks(bytes), { sha256: sha256(bytes) }))).created).toBe(true)
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
    expect(await visibleFiles()).toEqual([])
    expect(await tmpEntries()).toEqual([])
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
    await new Promise((r) => setTimeout(r, 10))
    expect(finished).toBe(true) // the source was told to stop
    expect(await visibleFiles()).toEqual([])
    expect(await tmpEntries()).toEqual([])

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
    async function* broken() {
      yield randomBytes(10_000)
      throw new Error("client went away")
    }
    const e = await failure(store.put(broken()))
    expect(e._tag).toBe("SourceError")
    expect(e.message).toContain("client went away")
    expect(await visibleFiles()).toEqual([])
    expect(await tmpEntries()).toEqual([])
  })

  it("removes the temp file when the upload is interrupted mid-stream", async () => {
    const store = await makeStore()
    const src = new Readable({ read() {} })
    src.push(randomBytes(5000)) // then nothing more, ever
    const exit = await Effect.runPromiseExit(store.put(src).pipe(Effect.timeoutFail({
      duration: Duration.millis(200),
      onTimeout: () => "timeout" as const
    })))
    expect(exit._tag).toBe("Failure")
    expect(src.destroyed).toBe(true)
    expect(await tmpEntries()).toEqual([])
    expect(await visibleFiles()).toEqual([])
  })
})

describe("store failures", () => {
  it("StorageError with the OS message when tmp is not a directory, nothing visible", async () => {
    const store = await makeStore()
    await fsp.rm(join(root, "tmp"), { recursive: true })
    await fsp.writeFile(join(root, "tmp"), "not a directory")
    const bytes = Buffer.from("cannot be stored")
    const e = await failure(store.put(chunks(bytes)))
    expect(e).toBeInstanceOf(StorageError)
    expect(e.message).toMatch(/^artifact store: creating a temporary file: ENOTDIR: not a directory/)
    expect(await run(store.stat(sha256(bytes)))).toBeUndefined()
    expect(await visibleFiles()).toEqual([])
  })

  it("StorageError naming the damage when a fan-out directory is a regular file; temp removed", async () => {
    const store = await makeStore()
    const bytes = Buffer.from("fan-out blocked")
    const sha = sha256(bytes)
    await fsp.writeFile(join(root, sha.slice(0, 2)), "in the way")
    const e = await failure(store.put(chunks(bytes)))
    expect(e._tag).toBe("StorageError")
    expect(e.message).toBe(`the artifact store is damaged: ${join(root, sha.slice(0, 2))} is a regular file, expected a directory`)
    expect(await tmpEntries()).toEqual([])
  })

  it("'the artifact store is read-only' when the store cannot be written, even by root", async (ctx) => {
    const store = await makeStore()
    const tmp = join(root, "tmp")
    if (process.getuid?.() === 0) {
      // Permission bits do not stop root; the immutable attribute does.
      try {
        execFileSync("chattr", ["+i", tmp], { stdio: "ignore" })
      } catch {
        ctx.skip("chattr +i is not available here")
      }
      cleanups.push(async () => void execFileSync("chattr", ["-i", tmp], { stdio: "ignore" }))
    } else {
      await fsp.chmod(tmp, 0o555)
      cleanups.push(() => fsp.chmod(tmp, 0o755))
    }
    const bytes = Buffer.from("read-only store")
    const e = await failure(store.put(chunks(bytes)))
    expect(e._tag).toBe("StorageError")
    expect(e.message).toMatch(/^the artifact store is read-only \(/)
    expect(await run(store.stat(sha256(bytes)))).toBeUndefined()
    expect(await visibleFiles()).toEqual([])
  })

  it("maps errno codes to operator-readable messages", () => {
    const errno = (code: string, message: string) => Object.assign(new Error(message), { code })
    expect(toStorageError(errno("ENOSPC", "ENOSPC: no space left on device, write")).message).toBe(
      "the artifact store is full (ENOSPC: no space left on device, write)"
    )
    expect(toStorageError(errno("EROFS", "EROFS: read-only file system, open '/s/tmp/x'")).message).toBe(
      "the artifact store is read-only (EROFS: read-only file system, open '/s/tmp/x')"
    )
    expect(toStorageError(errno("EACCES", "EACCES: permission denied")).message).toMatch(/^the artifact store is read-only/)
    const other = toStorageError(errno("EIO", "EIO: i/o error, read"), "reading")
    expect(other.message).toBe("artifact store: reading: EIO: i/o error, read")
    expect(other.code).toBe("EIO")
  })
})

describe("symlinks never lead out of the store", () => {
  /** A secret outside the store, laid out as if it were the artifact `sha` in a fan-out tree. */
  const plantOutside = async (sha: string, secret: string) => {
    const outside = join(base, "outside")
    await fsp.mkdir(join(outside, sha.slice(2, 4)), { recursive: true })
    await fsp.writeFile(join(outside, sha.slice(2, 4), sha), secret)
    return outside
  }

  it("refuses a symlinked first-level fan-out directory (read and write)", async () => {
    const store = await makeStore()
    const secret = "outside secret one"
    const sha = sha256(secret)
    const outside = await plantOutside(sha, secret)
    await fsp.symlink(outside, join(root, sha.slice(0, 2)))

    const e = await failure(store.open(sha))
    expect(e._tag).toBe("StorageError")
    expect(e.message).toContain("is a symbolic link, expected a directory")
    expect((await failure(store.stat(sha)))._tag).toBe("StorageError")
    expect(store.path(sha)).toBeUndefined()
    // A put of other bytes with the same fan-out must not write through the link either.
    const before = await fsp.readdir(join(outside, sha.slice(2, 4)))
    expect((await failure(store.put(chunks(Buffer.from(secret)))))._tag).toBe("StorageError")
    expect(await fsp.readdir(join(outside, sha.slice(2, 4)))).toEqual(before)
    expect((await failure(store.remove(sha)))._tag).toBe("StorageError")
    expect((await failure(store.tombstone(sha)))._tag).toBe("StorageError")
    expect(await fsp.readFile(join(outside, sha.slice(2, 4), sha), "utf8")).toBe(secret)
  })

  it("refuses a symlinked second-level fan-out directory", async () => {
    const store = await makeStore()
    const secret = "outside secret two"
    const sha = sha256(secret)
    const outside = await plantOutside(sha, secret)
    await fsp.mkdir(join(root, sha.slice(0, 2)))
    await fsp.symlink(join(outside, sha.slice(2, 4)), join(root, sha.slice(0, 2), sha.slice(2, 4)))

    expect((await failure(store.open(sha)))._tag).toBe("StorageError")
    expect((await failure(store.open(sha, { start: 0, end: 3 })))._tag).toBe("StorageError")
    expect(store.path(sha)).toBeUndefined()
  })

  it("refuses a symlink at the artifact's own path", async () => {
    const store = await makeStore()
    const secret = "outside secret three"
    const sha = sha256(secret)
    await fsp.writeFile(join(base, "secret.txt"), secret)
    await fsp.mkdir(join(root, sha.slice(0, 2), sha.slice(2, 4)), { recursive: true })
    await fsp.symlink(join(base, "secret.txt"), finalPath(sha))

    const e = await failure(store.open(sha))
    expect(e._tag).toBe("StorageError")
    expect(e.message).toContain("is a symbolic link")
    expect((await failure(store.stat(sha)))._tag).toBe("StorageError")
    expect(store.path(sha)).toBeUndefined()
    // Storing the same bytes does not write through the link.
    expect((await failure(store.put(chunks(Buffer.from(secret)))))._tag).toBe("StorageError")
    expect(await fsp.readFile(join(base, "secret.txt"), "utf8")).toBe(secret)
  })

  it("does not hang on a FIFO planted at the artifact's path", async (ctx) => {
    const store = await makeStore()
    const sha = sha256("fifo")
    await fsp.mkdir(join(root, sha.slice(0, 2), sha.slice(2, 4)), { recursive: true })
    try {
      execFileSync("mkfifo", [finalPath(sha)], { stdio: "ignore" })
    } catch {
      ctx.skip("mkfifo is not available here")
    }
    const e = await failure(store.open(sha).pipe(Effect.timeoutFail({ duration: Duration.seconds(2), onTimeout: () => "hung" as const })))
    expect(e).toMatchObject({ _tag: "StorageError" })
    expect((e as StorageError).message).toContain("is a special file")
  })
})

describe("digest validation", () => {
  const bad = ["../../etc/passwd", "A".repeat(64), "a".repeat(63), "a".repeat(65), `${"a".repeat(62)}/x`, ""]

  it.each(bad)("BadDigest for %j everywhere, before touching the filesystem", async (value) => {
    const store = await makeStore()
    const ops: Array<Effect.Effect<unknown, { readonly _tag: string }>> = [
      store.stat(value),
      store.open(value),
      store.remove(value),
      store.tombstone(value),
      store.restore(value),
      store.purgeTombstone(value),
      store.put(chunks(Buffer.from("x")), { sha256: value })
    ]
    for (const op of ops) expect(await failure(op)).toMatchObject({ _tag: "BadDigest", value })
    expect(store.path(value)).toBeUndefined()
    expect(await visibleFiles()).toEqual([])
    expect(await tmpEntries()).toEqual([])
  })
})

describe("removal", () => {
  it("remove deletes the artifact and is idempotent", async () => {
    const store = await makeStore()
    const { sha256: sha } = await run(store.put(chunks(Buffer.from("to be removed"))))
    await run(store.remove(sha))
    expect(await run(store.stat(sha))).toBeUndefined()
    expect(await exists(finalPath(sha))).toBe(false)
    await run(store.remove(sha))
    await run(store.remove(sha256("never stored")))
  })

  it("tombstone, restore, tombstone again, purge", async () => {
    const store: ArtifactStorageShape = await makeStore()
    const bytes = Buffer.from("an orphan, maybe")
    const { sha256: sha } = await run(store.put(chunks(bytes)))

    expect(await run(store.tombstone(sha))).toBe(true)
    expect(await run(store.stat(sha))).toBeUndefined()
    expect((await failure(store.open(sha)))._tag).toBe("NotStored")
    expect(store.path(sha)).toBeUndefined()
    expect(await run(store.tombstones)).toEqual([sha])

    // The commit failed: put it back.
    expect(await run(store.restore(sha))).toBe(true)
    expect(Buffer.compare(await readAll(await run(store.open(sha))), bytes)).toBe(0)
    expect(await run(store.tombstones)).toEqual([])

    // The commit succeeded: purge.
    expect(await run(store.tombstone(sha))).toBe(true)
    await run(store.purgeTombstone(sha))
    expect(await run(store.tombstones)).toEqual([])
    expect(await tmpEntries()).toEqual([])
    expect(await run(store.restore(sha))).toBe(false)
    expect(await run(store.stat(sha))).toBeUndefined()
    await run(store.purgeTombstone(sha)) // idempotent

    // Nothing to tombstone.
    expect(await run(store.tombstone(sha))).toBe(false)
    expect(await run(store.tombstone(sha256("never stored")))).toBe(false)
  })
})

describe("start-up", () => {
  it("removes upload temp files older than an hour, and only those", async () => {
    const tmp = join(root, "tmp")
    await fsp.mkdir(tmp, { recursive: true })
    const longAgo = new Date(Date.now() - 2 * 3600_000)
    const tomb = `tomb-${sha256("tombstoned long ago")}`
    for (const name of ["put-old", "put-fresh", tomb, "unrelated-old"]) await fsp.writeFile(join(tmp, name), name)
    for (const name of ["put-old", tomb, "unrelated-old"]) await fsp.utimes(join(tmp, name), longAgo, longAgo)

    const store = await makeStore()
    expect((await tmpEntries()).sort()).toEqual(["put-fresh", tomb, "unrelated-old"].sort())
    expect(await run(store.tombstones)).toEqual([sha256("tombstoned long ago")])
  })

  it("fails with a StorageError when the root cannot be a directory", async () => {
    await fsp.writeFile(root, "a file where the store should be")
    const e = await failure(LocalArtifactStorage.make(root))
    expect(e._tag).toBe("StorageError")
  })
})
