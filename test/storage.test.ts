/**
 * The artifact store: the contract suite (test/storage-contract.ts) against every backend, the
 * local filesystem (a fresh mkdtemp directory per test) and a real S3-protocol server (s3rver, a
 * fresh key prefix per test; test/support/s3.ts says what it does not check). No database.
 *
 * Then what only the local backend has: files, modes, symlinks, errno codes. The tests run as root
 * in CI, where permission bits do not stop writes, so store failures are provoked with things root
 * cannot get past: a file where a directory must be, and an immutable (chattr +i) directory. The
 * object store's own failures (unreachable, overloaded, refusing credentials) are in
 * test/storage-s3.test.ts.
 */
import { Duration, Effect, Exit, Scope } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { S3ArtifactStorage } from "../src/content/storage-s3.js"
import { toStorageError, LocalArtifactStorage } from "../src/content/storage-local.js"
import { StorageError } from "../src/content/storage.js"
import { type Backend, chunks, failure, readAll, run, sha256, storageContract } from "./storage-contract.js"
import { putRaw, type S3Server, startS3, storedObjects } from "./support/s3.js"

// ---------------------------------------------------------------------------------------------
// The backends
// ---------------------------------------------------------------------------------------------

/** The files of a local store outside tmp, by digest. */
const filesOf = async (root: string): Promise<Array<string>> => {
  const out: Array<string> = []
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (d === root && e.name === "tmp") continue
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(e.name)
    }
  }
  await walk(root)
  return out
}

const local: Backend = {
  name: "local",
  fresh: async () => {
    const base = await fsp.mkdtemp(join(os.tmpdir(), "cairn-storage-"))
    const root = join(base, "store")
    return {
      make: LocalArtifactStorage.make(root),
      layer: LocalArtifactStorage.layer(root),
      visible: () => filesOf(root),
      temporaries: async () => (await fsp.readdir(join(root, "tmp"))).filter((n) => !n.startsWith("tomb-")),
      damage: async (sha, bytes) => {
        await fsp.mkdir(join(root, sha.slice(0, 2), sha.slice(2, 4)), { recursive: true })
        await fsp.writeFile(join(root, sha.slice(0, 2), sha.slice(2, 4), sha), bytes)
      },
      close: () => fsp.rm(base, { recursive: true, force: true })
    }
  }
}

let s3: S3Server
let prefixes = 0
const s3Backend: Backend = {
  name: "s3",
  fresh: async () => {
    const prefix = `store-${prefixes++}/`
    const options = s3.options(prefix)
    const keys = () => [...storedObjects(s3, prefix).keys()].map((k) => k.slice(prefix.length))
    return {
      make: S3ArtifactStorage.make(options),
      layer: S3ArtifactStorage.layer(options),
      visible: async () => keys().filter((k) => !k.startsWith("tmp/")).map((k) => k.split("/").at(-1)!),
      temporaries: async () => keys().filter((k) => k.startsWith("tmp/") && !k.startsWith("tmp/tomb-")),
      damage: (sha, bytes) => putRaw(s3, `${prefix}${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`, bytes),
      close: async () => undefined
    }
  }
}

beforeAll(async () => {
  s3 = await startS3()
})
afterAll(async () => {
  await s3?.close()
})

storageContract(local)
storageContract(s3Backend)

// ---------------------------------------------------------------------------------------------
// The local backend's own
// ---------------------------------------------------------------------------------------------

let base: string
let root: string
const cleanups: Array<() => Promise<void>> = []
const scopes: Array<Scope.CloseableScope> = []

beforeEach(async () => {
  base = await fsp.mkdtemp(join(os.tmpdir(), "cairn-storage-"))
  root = join(base, "store")
})

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  for (const s of scopes.splice(0)) await Effect.runPromise(Scope.close(s, Exit.void))
  await fsp.rm(base, { recursive: true, force: true })
})

const makeStore = async () => {
  const scope = await Effect.runPromise(Scope.make())
  scopes.push(scope)
  return Effect.runPromise(Scope.extend(LocalArtifactStorage.make(root), scope))
}

const finalPath = (sha: string) => join(root, sha.slice(0, 2), sha.slice(2, 4), sha)
const tmpEntries = () => fsp.readdir(join(root, "tmp"))
const visibleFiles = async () => (await filesOf(root)).map(finalPath)

describe("local files", () => {
  it("stores read-only files at their fan-out path, hands out that path, and keeps the first copy's inode", async () => {
    const store = await makeStore()
    const bytes = Buffer.from("a file on disk")
    const r = await run(store.put(chunks(bytes)))
    expect(store.path(r.sha256)).toBe(finalPath(r.sha256))
    expect(Buffer.compare(await fsp.readFile(finalPath(r.sha256)), bytes)).toBe(0)
    expect((await fsp.stat(finalPath(r.sha256))).mode & 0o777).toBe(0o444)
    const inodeBefore = (await fsp.stat(finalPath(r.sha256))).ino
    expect((await run(store.put(chunks(bytes)))).created).toBe(false)
    expect((await fsp.stat(finalPath(r.sha256))).ino).toBe(inodeBefore)
    expect(await tmpEntries()).toEqual([])
  })

  it("a tombstone is a hard link to one empty file in tmp, the artifact stays in place until purged", async () => {
    const store = await makeStore()
    const { sha256: sha } = await run(store.put(chunks(Buffer.from("tombstoned on disk"))))
    await run(store.tombstone(sha))
    expect((await tmpEntries()).sort()).toEqual(["tomb-mark", `tomb-${sha}`].sort())
    const tomb = await fsp.lstat(join(root, "tmp", `tomb-${sha}`))
    expect(tomb.size).toBe(0)
    expect(tomb.ino).toBe((await fsp.lstat(join(root, "tmp", "tomb-mark"))).ino)
    expect(store.path(sha)).toBe(finalPath(sha))
    await run(store.purgeTombstone(sha))
    expect(await tmpEntries()).toEqual(["tomb-mark"])
    expect(await visibleFiles()).toEqual([])
  })

  it("a tombstone is written when the empty file its links share is gone or is not a file", async () => {
    const store = await makeStore()
    const { sha256: a } = await run(store.put(chunks(Buffer.from("first"))))
    const { sha256: b } = await run(store.put(chunks(Buffer.from("second"))))
    await run(store.tombstone(a))
    await fsp.unlink(join(root, "tmp", "tomb-mark"))
    await run(store.tombstone(b)) // the mark is made again
    expect([...(await run(store.tombstones))].sort()).toEqual([a, b].sort())
    await run(store.restore(a))
    await run(store.restore(b))
    await fsp.unlink(join(root, "tmp", "tomb-mark"))
    await fsp.mkdir(join(root, "tmp", "tomb-mark")) // links to it fail (EPERM): a file of its own
    await run(store.tombstone(a))
    expect(await run(store.tombstones)).toEqual([a])
    expect((await fsp.lstat(join(root, "tmp", `tomb-${a}`))).isFile()).toBe(true)
  })

  it("check fails when tmp is not a directory", async () => {
    const store = await makeStore()
    await fsp.rm(join(root, "tmp"), { recursive: true })
    await fsp.writeFile(join(root, "tmp"), "not a directory")
    const e = await failure(store.check)
    expect(e.message).toContain("expected a directory")
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

describe("start-up", () => {
  it("sweeps upload temp files older than an hour, and only those, at start and on demand", async () => {
    const tmp = join(root, "tmp")
    await fsp.mkdir(tmp, { recursive: true })
    const longAgo = new Date(Date.now() - 2 * 3600_000)
    const tomb = `tomb-${sha256("tombstoned long ago")}`
    for (const name of ["put-old", "put-fresh", tomb, "unrelated-old"]) await fsp.writeFile(join(tmp, name), name)
    for (const name of ["put-old", tomb, "unrelated-old"]) await fsp.utimes(join(tmp, name), longAgo, longAgo)

    const store = await makeStore()
    expect((await tmpEntries()).sort()).toEqual(["put-fresh", tomb, "unrelated-old"].sort())
    expect(await run(store.tombstones)).toEqual([sha256("tombstoned long ago")])

    // Later, by an orphan cleanup's sweep.
    await fsp.utimes(join(tmp, "put-fresh"), longAgo, longAgo)
    expect(await run(store.sweep)).toBe(1)
    expect((await tmpEntries()).sort()).toEqual([tomb, "unrelated-old"].sort())
  })

  it("fails with a StorageError when the root cannot be a directory", async () => {
    await fsp.writeFile(root, "a file where the store should be")
    const e = await failure(LocalArtifactStorage.make(root))
    expect(e._tag).toBe("StorageError")
  })
})
