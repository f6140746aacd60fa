/**
 * The local-filesystem artifact store.
 *
 * Layout under the root:
 *
 *   <root>/<aa>/<bb>/<sha256>   the artifacts (aa, bb: the digest's first two hex pairs), mode 0444
 *   <root>/tmp/put-<base>-<n>   uploads in progress (<base>: random per store instance)
 *   <root>/tmp/tomb-<sha256>    tombstones: names of one empty file, each the mark of a cleanup
 *                               removing that artifact (see `tombstone` in ./storage.ts)
 *   <root>/tmp/tomb-mark        that empty file: every tombstone is a hard link to it
 *
 * `tmp` lives inside the root so that every rename out of it stays on one filesystem and is
 * atomic; "tmp" cannot collide with a fan-out directory because it is not hex.
 *
 * Crash safety: an upload is written to a temp file and fsynced, then hard-linked (or renamed)
 * to its final name, so a name only ever points at complete, durable bytes: after a crash an
 * artifact is either complete at its final name or absent. The name itself is durable once its
 * directory is fsynced: `put` does that at once, `stage` leaves it to the `persist` of the
 * caller's batch, which runs before anything commits a row for those names (a name that a crash
 * takes away was referenced by nothing). A fan-out directory is made durable (its parent fsynced)
 * when it is made. A temp file may survive a crash and is removed by the next `sweep` (at start,
 * and by every orphan cleanup) once it is an hour old (an upload in progress keeps touching its
 * mtime).
 *
 * Metadata calls (lstat of the fan-out directories and of an artifact, mkdir of a fan-out
 * directory) are synchronous: on a local filesystem they answer from the dentry cache in
 * microseconds, while an asynchronous call costs a round trip through libuv's thread pool (and a
 * sync made five of them per file). Writes, links, renames, unlinks and fsyncs stay asynchronous.
 *
 * Symlinks: nothing in the store is ever expected to be a symlink. Digests are validated before
 * any path is built; the two fan-out directories are checked with lstat to be real directories,
 * and the artifact itself is opened with O_NOFOLLOW, so a symlink planted in the store makes the
 * operation fail with a StorageError ("the artifact store is damaged") rather than read or
 * write outside it. (Someone who can plant symlinks here can also replace artifacts; the point
 * is that the store never becomes a window onto the rest of the filesystem.)
 */
import { Duration, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import { join, resolve } from "node:path"
import type { Readable } from "node:stream"
import {
  ArtifactStorage,
  type ArtifactStorageShape,
  BadRange,
  type ByteRange,
  checkSha256,
  isSha256,
  NotStored,
  type PutExpectations,
  StorageError
} from "./storage.js"
import { checkExpectations, checkRange, readVerified } from "./storage-verify.js"

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, W_OK } = fs.constants

/** Temp files of uploads that died with their process are swept once this old. */
const STALE_TEMP_AGE = Duration.hours(1)

const TEMP_PREFIX = "put-"
const TOMB_PREFIX = "tomb-"
/** Not a digest, so never listed as a tombstone; not a put's prefix, so never swept. */
const TOMB_MARK = "tomb-mark"

const codeOf = (e: unknown): string | undefined => {
  const code = (e as { code?: unknown } | null | undefined)?.code
  return typeof code === "string" ? code : undefined
}

/**
 * An OS error as a StorageError. The two conditions an operator most needs to recognise get a
 * plain sentence; the OS message (which names the path) follows in parentheses.
 */
export const toStorageError = (cause: unknown, doing?: string): StorageError => {
  if (cause instanceof StorageError) return cause
  const code = codeOf(cause)
  const os = cause instanceof Error ? cause.message : String(cause)
  // EPERM too: it is what an immutable (chattr +i) or otherwise locked-down directory gives root.
  const message = code === "EROFS" || code === "EACCES" || code === "EPERM"
    ? `the artifact store is read-only (${os})`
    : code === "ENOSPC" || code === "EDQUOT"
    ? `the artifact store is full (${os})`
    : `artifact store: ${doing ? `${doing}: ` : ""}${os}`
  return new StorageError({ message, code, cause })
}

/** One filesystem step as an Effect; errors thrown as StorageError (anomalies) pass through. */
const io = <A>(doing: string, f: () => Promise<A>): Effect.Effect<A, StorageError> =>
  Effect.tryPromise({ try: f, catch: (e) => toStorageError(e, doing) })

/** `f`, its failure a StorageError saying what was being done (for several calls in one `io`). */
const named = async <A>(doing: string, f: () => Promise<A>): Promise<A> => {
  try {
    return await f()
  } catch (e) {
    throw toStorageError(e, doing)
  }
}

const describe = (st: fs.Stats) =>
  st.isSymbolicLink()
    ? "a symbolic link"
    : st.isDirectory()
    ? "a directory"
    : st.isFile()
    ? "a regular file"
    : "a special file"

const damaged = (p: string, st: fs.Stats, wanted: "directory" | "regular file") =>
  new StorageError({ message: `the artifact store is damaged: ${p} is ${describe(st)}, expected a ${wanted}` })

/** Synchronous: see "Metadata calls" in the header. */
const lstatOrUndefined = (p: string): fs.Stats | undefined => fs.lstatSync(p, { throwIfNoEntry: false })

/*
 * The put path uses plain descriptors and the callback API rather than FileHandle: a FileHandle is
 * a transferable object with its own bookkeeping, and a sync makes several per artifact (the temp
 * file, the directory to fsync), which showed up in profiles as a sizeable share of a sync's CPU.
 */
const cb = <A>(f: (done: (e: NodeJS.ErrnoException | null, a: A) => void) => void) =>
  new Promise<A>((resolve, reject) => f((e, a) => e ? reject(e) : resolve(a)))
const openFd = (p: string, flags: number, mode?: number) => cb<number>((done) => fs.open(p, flags, mode, done))
const fsyncFd = (fd: number) => cb<void>((done) => fs.fsync(fd, (e) => done(e, undefined)))
const closeFd = (fd: number) => cb<void>((done) => fs.close(fd, (e) => done(e, undefined)))
const writeFd = (fd: number, chunk: Uint8Array, offset: number) =>
  cb<number>((done) => fs.write(fd, chunk, offset, chunk.byteLength - offset, null, done))

/** fsync a directory so that entries just created, renamed or linked in it survive a crash. */
const syncDir = async (dir: string) => {
  const fd = await openFd(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
  try {
    await fsyncFd(fd)
  } catch (e) {
    // Some filesystems cannot fsync a directory; they have nothing better to offer either.
    const code = codeOf(e)
    if (code !== "EINVAL" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw e
  } finally {
    await closeFd(fd)
  }
}

/**
 * Make `dir` (one level below `parent`) exist as a real directory; a symlink there is an error.
 * A directory made here has its parent fsynced at once, before anything is placed in it: another
 * process may find it and place (and persist) a name in it, and that process cannot know the
 * directory is new. Fan-out directories are made once per store (65,792 of them at most), so this
 * is a cost of a young store only.
 */
const ensureDir = async (parent: string, dir: string) => {
  // Nearly always there already: one lstat, rather than a mkdir failing with EEXIST (an error
  // object with its stack, per artifact) and then the lstat anyway.
  const seen = lstatOrUndefined(dir)
  if (seen !== undefined) {
    if (!seen.isDirectory()) throw damaged(dir, seen, "directory")
    return
  }
  try {
    fs.mkdirSync(dir)
    await syncDir(parent)
    return
  } catch (e) {
    if (codeOf(e) !== "EEXIST") throw e
  }
  const st = fs.lstatSync(dir)
  if (!st.isDirectory()) throw damaged(dir, st, "directory")
}

/** At most this many directory fsyncs of one `persist` at once (each holds a thread of libuv's pool). */
const PERSIST_CONCURRENCY = 4

/** Write the whole chunk (a write may be short). */
const writeAll = async (fd: number, chunk: Uint8Array) => {
  let off = 0
  while (off < chunk.byteLength) off += await writeFd(fd, chunk, off)
}

interface TempFile {
  readonly name: string
  readonly fd: number
  closed: boolean
}

export const makeLocalArtifactStorage = (rootArg: string): Effect.Effect<ArtifactStorageShape, StorageError> =>
  Effect.gen(function*() {
    const root = resolve(rootArg)
    const tmp = join(root, "tmp")

    const dirsOf = (sha: string) => {
      const d1 = join(root, sha.slice(0, 2))
      const d2 = join(d1, sha.slice(2, 4))
      return { d1, d2, file: join(d2, sha) }
    }
    const tombOf = (sha: string) => join(tmp, TOMB_PREFIX + sha)

    /**
     * Whether both fan-out directories of `sha` exist. Anything other than a real directory at
     * either name (above all a symlink, which could lead outside the root) is an error.
     */
    const dirsPresent = (sha: string) => {
      const { d1, d2 } = dirsOf(sha)
      for (const d of [d1, d2]) {
        const st = lstatOrUndefined(d)
        if (st === undefined) return false
        if (!st.isDirectory()) throw damaged(d, st, "directory")
      }
      return true
    }

    // --- start-up ------------------------------------------------------------------------------

    yield* io(`creating the store at ${root}`, async () => {
      await fsp.mkdir(root, { recursive: true })
      const st = await fsp.lstat(root)
      if (!st.isDirectory() && !st.isSymbolicLink()) throw damaged(root, st, "directory")
      await ensureDir(root, tmp)
    })

    // Only our own upload temp files: tombstones must wait for a decision based on the database
    // (see `tombstones`).
    const sweep: ArtifactStorageShape["sweep"] = Effect.gen(function*() {
      const stale = yield* io("cleaning stale temporary files", async () => {
        const cutoff = Date.now() - Duration.toMillis(STALE_TEMP_AGE)
        let removed = 0
        const failed: Array<string> = []
        for (const name of await fsp.readdir(tmp)) {
          if (!name.startsWith(TEMP_PREFIX)) continue
          const p = join(tmp, name)
          try {
            const st = await fsp.lstat(p)
            if (st.mtimeMs < cutoff) {
              await fsp.unlink(p)
              removed += 1
            }
          } catch (e) {
            if (codeOf(e) !== "ENOENT") failed.push(`${name}: ${(e as Error).message}`)
          }
        }
        return { removed, failed }
      })
      if (stale.removed > 0) {
        yield* Effect.logInfo(`artifact store: removed ${stale.removed} stale temporary file(s)`).pipe(
          Effect.annotateLogs({ root })
        )
      }
      for (const f of stale.failed) yield* Effect.logWarning(`artifact store: could not remove stale temporary file ${f}`)
      return stale.removed
    })
    yield* sweep

    const check: ArtifactStorageShape["check"] = io("checking the store", async () => {
      const st = await fsp.lstat(tmp)
      if (!st.isDirectory()) throw damaged(tmp, st, "directory")
      await fsp.access(tmp, W_OK)
    })

    // --- put -----------------------------------------------------------------------------------

    /**
     * Give the verified, fsynced temp file its final name (durable once `persist` fsynced its
     * directory). A hard link refuses to replace an existing name, which is exactly "keep the copy
     * already there"; the temp name is unlinked by the caller's release either way. On filesystems
     * without hard links we fall back to check-then-rename, where two simultaneous uploads of the
     * same bytes may both answer `created` (harmlessly: the bytes are identical).
     */
    const place = async (tempName: string, sha: string, size: number): Promise<"created" | "existing" | "repaired"> => {
      const { d1, d2, file } = dirsOf(sha)
      // Checked every time (no cache of "known good" directories): a symlink planted in the store
      // must never be followed, so the window between check and use stays as short as it can be.
      await ensureDir(root, d1)
      await ensureDir(d1, d2)

      const existing = async (): Promise<"existing" | "repaired" | undefined> => {
        const st = lstatOrUndefined(file)
        if (st === undefined) return undefined
        if (!st.isFile()) throw damaged(file, st, "regular file")
        if (st.size === size) return "existing"
        // A file of the wrong size under this digest was damaged (or put there by hand); the
        // bytes we hold are verified, so they replace it, atomically.
        await fsp.rename(tempName, file)
        return "repaired"
      }

      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fsp.link(tempName, file)
          return "created"
        } catch (e) {
          const code = codeOf(e)
          if (code === "EEXIST") {
            const r = await existing()
            if (r !== undefined) return r
            continue // removed between our link and our look: try again
          }
          if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EMLINK") break
          throw e
        }
      }
      const r = await existing()
      if (r !== undefined) return r
      await fsp.rename(tempName, file)
      return "created"
    }

    // Temp names: unique per store instance and upload, without asking for random bytes per file.
    const tempBase = join(tmp, `${TEMP_PREFIX}${randomBytes(9).toString("hex")}-`)
    let tempSeq = 0

    const stage: ArtifactStorageShape["stage"] = (source, expected?: PutExpectations) =>
      Effect.gen(function*() {
        yield* checkExpectations(expected)
        return yield* Effect.acquireUseRelease(
          io("creating a temporary file", async (): Promise<TempFile> => {
            const name = `${tempBase}${++tempSeq}`
            const fd = await openFd(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o444)
            return { name, fd, closed: false }
          }),
          (temp) =>
            Effect.gen(function*() {
              const { sha256, size } = yield* readVerified(
                source,
                expected,
                (chunk) => io("writing a temporary file", () => writeAll(temp.fd, chunk))
              )
              // One step (one fiber suspension per file, not three), each call named in its error.
              const outcome = yield* io("storing the artifact", async () => {
                // The bytes are durable before any name points at them.
                await named("flushing a temporary file", () => fsyncFd(temp.fd))
                temp.closed = true
                await named("closing a temporary file", () => closeFd(temp.fd))
                return place(temp.name, sha256, size)
              })
              if (outcome === "repaired") {
                yield* Effect.logWarning(`artifact store: replaced a damaged copy of ${sha256} (wrong size)`)
              }
              return { sha256, size, created: outcome !== "existing" }
            }),
          // Always: the temp name must not outlive the put. After a successful link it is the
          // second name of the stored file; after a rename it is already gone (ENOENT).
          (temp) =>
            Effect.promise(async () => {
              if (!temp.closed) await closeFd(temp.fd).catch(() => undefined)
              await fsp.unlink(temp.name).catch(() => undefined)
            })
        )
      })

    /** fsync `dir`; one that is not there (an artifact removed meanwhile) has nothing to keep. */
    const syncIfPresent = (dir: string) =>
      syncDir(dir).catch((e) => {
        if (codeOf(e) !== "ENOENT") throw e
      })

    // Each artifact's directory, whoever placed the name there (a `created: false` found another
    // store's name, maybe not yet durable). The fan-out directories above it were made durable when
    // they were made (`ensureDir`). Not checked for symlinks: an fsync changes nothing, wherever it
    // lands.
    const persist: ArtifactStorageShape["persist"] = (sha256s) =>
      Effect.gen(function*() {
        yield* Effect.forEach(sha256s, checkSha256, { discard: true })
        const dirs = new Set<string>()
        for (const sha of sha256s) dirs.add(dirsOf(sha).d2)
        yield* Effect.forEach(
          dirs,
          (dir) => io("making stored artifacts durable", () => syncIfPresent(dir)),
          { concurrency: PERSIST_CONCURRENCY, discard: true }
        )
      })

    const put: ArtifactStorageShape["put"] = (source, expected) =>
      Effect.flatMap(stage(source, expected), (r) => Effect.as(persist([r.sha256]), r))

    // --- reading -------------------------------------------------------------------------------

    const stat: ArtifactStorageShape["stat"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () =>
        io("looking up an artifact", async () => {
          if (!dirsPresent(sha)) return undefined
          const { file } = dirsOf(sha)
          const st = lstatOrUndefined(file)
          if (st === undefined) return undefined
          if (!st.isFile()) throw damaged(file, st, "regular file")
          return { size: st.size }
        }))

    const open: ArtifactStorageShape["open"] = (sha, range?: ByteRange) =>
      Effect.gen(function*() {
        yield* checkSha256(sha)
        yield* checkRange(range)
        // Uninterruptible: an interruption between opening the file and handing out its stream
        // would leak the descriptor. Opening a file is quick.
        return yield* Effect.uninterruptible(
          Effect.tryPromise({
            try: async (): Promise<Readable> => {
              if (!dirsPresent(sha)) throw new NotStored({ sha256: sha })
              const { file } = dirsOf(sha)
              let fh: fsp.FileHandle
              try {
                // O_NOFOLLOW: a symlink at the final name fails (ELOOP) instead of being followed.
                // O_NONBLOCK: a FIFO planted there must not hang the open; no effect on files.
                fh = await fsp.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
              } catch (e) {
                if (codeOf(e) === "ENOENT") throw new NotStored({ sha256: sha })
                if (codeOf(e) === "ELOOP") {
                  throw new StorageError({
                    message: `the artifact store is damaged: ${file} is a symbolic link, expected a regular file`,
                    code: "ELOOP",
                    cause: e
                  })
                }
                throw e
              }
              try {
                const st = await fh.stat()
                if (!st.isFile()) throw damaged(file, st, "regular file")
                if (range === undefined) return fs.createReadStream("", { fd: fh, autoClose: true })
                if (range.start >= st.size) throw new BadRange({ start: range.start, end: range.end, size: st.size })
                const end = Math.min(range.end, st.size - 1)
                return fs.createReadStream("", { fd: fh, start: range.start, end, autoClose: true })
              } catch (e) {
                await fh.close().catch(() => undefined)
                throw e
              }
            },
            catch: (e) =>
              e instanceof NotStored || e instanceof BadRange || e instanceof StorageError
                ? e
                : toStorageError(e, "opening an artifact")
          })
        )
      })

    const path: ArtifactStorageShape["path"] = (sha) => {
      if (!isSha256(sha)) return undefined
      const { d1, d2, file } = dirsOf(sha)
      try {
        // Synchronous, but three lstats of hot dentries; the point is to hand out no path that
        // leads through a symlink.
        for (const d of [d1, d2]) {
          if (fs.lstatSync(d, { throwIfNoEntry: false })?.isDirectory() !== true) return undefined
        }
        return fs.lstatSync(file, { throwIfNoEntry: false })?.isFile() === true ? file : undefined
      } catch {
        return undefined
      }
    }

    // --- removal -------------------------------------------------------------------------------

    // No directory fsync on removals: one undone by a crash resurrects bytes whose row is gone,
    // which wastes their space but can mislead nobody (only rows make an artifact visible).
    const remove: ArtifactStorageShape["remove"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () =>
        io("removing an artifact", async () => {
          if (!dirsPresent(sha)) return
          const { file } = dirsOf(sha)
          const st = lstatOrUndefined(file)
          if (st === undefined) return
          if (st.isDirectory()) throw damaged(file, st, "regular file")
          try {
            await fsp.unlink(file) // a symlink is removed itself, never its target
          } catch (e) {
            if (codeOf(e) !== "ENOENT") throw e
          }
        }))

    // A tombstone is a name in tmp; the artifact stays in place until `purgeTombstone`. The
    // fan-out directories are checked all the same: a damaged store is reported before a cleanup
    // deletes the row. No fsync: a tombstone lost to a crash leaves bytes without a row (a leak of
    // space, never a row without bytes), as an unlink undone by a crash does.
    //
    // The name is a hard link to one empty file (`tomb-mark`), not a file of its own: a link only
    // adds a directory entry, where creating a file allocates an inode, which on ext4 under load
    // took 0.5-1.8 ms against 20-60 us for the link (a cleanup writes one tombstone per artifact
    // it deletes, bench:gc). Where links fail (the mark is gone, its link count is at the
    // filesystem's limit, no hard links) the tombstone is an empty file of its own, as before.
    const tombMark = join(tmp, TOMB_MARK)
    const newTombFile = async (p: string) => closeFd(await openFd(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o444))
    const linkTomb = async (sha: string) => {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          return await fsp.link(tombMark, tombOf(sha))
        } catch (e) {
          const code = codeOf(e)
          if (code === "EEXIST") return
          if (code !== "ENOENT" || attempt > 0) break
          await newTombFile(tombMark) // made on first use (or again, if it was removed)
        }
      }
      await newTombFile(tombOf(sha))
    }
    const tombstone: ArtifactStorageShape["tombstone"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () =>
        io("tombstoning an artifact", async () => {
          dirsPresent(sha)
          await linkTomb(sha)
        }))

    const unlinkTomb = (sha: string) =>
      fsp.unlink(tombOf(sha)).catch((e) => {
        if (codeOf(e) !== "ENOENT") throw e
      })

    const restore: ArtifactStorageShape["restore"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () => io("dropping a tombstone", () => unlinkTomb(sha)))

    // The bytes first: a tombstone outliving its bytes is harmless (purged again), the reverse
    // would be a leak nobody finds.
    const purgeTombstone: ArtifactStorageShape["purgeTombstone"] = (sha) =>
      Effect.zipRight(remove(sha), io("purging a tombstone", () => unlinkTomb(sha)))

    const tombstones: ArtifactStorageShape["tombstones"] = io("listing tombstones", async () =>
      (await fsp.readdir(tmp))
        .filter((n) => n.startsWith(TOMB_PREFIX))
        .map((n) => n.slice(TOMB_PREFIX.length))
        .filter(isSha256))

    const presignedUrl: ArtifactStorageShape["presignedUrl"] = (sha) => Effect.as(checkSha256(sha), undefined)

    return ArtifactStorage.of({
      put,
      stage,
      persist,
      stat,
      open,
      path,
      presignedUrl,
      remove,
      tombstone,
      restore,
      purgeTombstone,
      tombstones,
      sweep,
      check
    })
  })

export const LocalArtifactStorage = {
  make: makeLocalArtifactStorage,
  /** The store rooted at `root` (created if missing, with `<root>/tmp`). */
  layer: (root: string): Layer.Layer<ArtifactStorage, StorageError> =>
    Layer.effect(ArtifactStorage, makeLocalArtifactStorage(root))
} as const
