/**
 * Reading a distribution's core metadata from the file itself: a wheel's
 * `{name}-{version}.dist-info/METADATA` (a zip), an sdist's `{name}-{version}/PKG-INFO` (a
 * `.tar.gz`, or a zip for old `.zip` sdists). It answers the parsed metadata, the metadata file's
 * bytes (PEP 658 serves them beside the distribution) and the parsed file name, after checking that
 * the metadata's Name and Version are the file name's.
 *
 * Where the bytes come from: a `ByteSource`, i.e. a size and a way to open a stream of any byte
 * range. `fileSource` opens a local file; `artifactSource` uses the artifact store's ranged `open`,
 * which the local backend serves from the file and an object store with a ranged GET. Nothing is
 * ever copied to a temporary file:
 * - a zip is read the way its format is meant to be read: the end record (the last 64 KiB at
 *   most), the central directory, then one entry's local header and data. yauzl's many small reads
 *   of the central directory are served from a 256 KiB window read at once, so a wheel costs an
 *   object store about four ranged GETs whatever its size;
 * - a `.tar.gz` has no index: it is streamed from the start through gunzip and a tar parser until
 *   `PKG-INFO` comes by, then the streams are closed.
 *
 * Nothing is extracted and at most `maxMetadataBytes` are held in memory. Hostile archives are
 * refused with an `InvalidDistribution` saying why: a metadata entry larger than the limit (by its
 * declared size, or by its actual bytes, since a zip may lie), more entries than `maxEntries`, more
 * than `maxScannedBytes` decompressed from a `.tar.gz` before `PKG-INFO` (a gzip bomb), entry names
 * that are absolute, contain `..` or a backslash (for a zip every entry is checked; for a tar the
 * entries read before `PKG-INFO`), a `PKG-INFO` that is a link, several candidate metadata files.
 * A failure of the source itself (I/O, a storage error) is a `SourceReadError` instead, so a caller
 * can tell "this file is bad" from "we could not read it".
 *
 * This is not an integrity check of every byte: a wheel's central directory is read in full, but
 * only the metadata entry's data; a `.tar.gz` is read up to `PKG-INFO`, so damage after it goes
 * unseen. The file's sha256 (verified on upload and download) is what guards its integrity.
 */
import { createReadStream } from "node:fs"
import { stat } from "node:fs/promises"
import { PassThrough, Readable, Transform } from "node:stream"
import { createGunzip } from "node:zlib"
import { Data, Effect, Either } from "effect"
import { extract as tarExtract } from "tar-stream"
import yauzl from "yauzl"
import type { ArtifactStorageShape } from "../../../content/storage.js"
import { type CoreMetadata, parseCoreMetadata } from "./metadata.js"
import { type DistributionFilename, normalizeProjectName, parseDistributionFilename } from "./names.js"
import { quoteText, sameVersion } from "./pep440.js"

// ---------------------------------------------------------------------------------------------
// Byte sources
// ---------------------------------------------------------------------------------------------

/** Random access to the bytes of a stored file. */
export interface ByteSource {
  readonly size: number
  /** A stream of the bytes from `start` (inclusive) to `end` (exclusive), `0 <= start <= end <= size`. */
  readonly open: (start: number, end: number) => Promise<Readable>
}

/** A local file (its size taken now: stored files are immutable). */
export const fileSource = async (path: string): Promise<ByteSource> => {
  const { size } = await stat(path)
  return {
    size,
    open: async (start, end) => end <= start ? Readable.from([]) : createReadStream(path, { start, end: end - 1 })
  }
}

/** A stored artifact, read with the store's ranged `open` (a ranged GET on an object store). */
export const artifactSource = (storage: ArtifactStorageShape, sha256: string, size: number): ByteSource => ({
  size,
  open: (start, end) =>
    end <= start ? Promise.resolve(Readable.from([])) : Effect.runPromise(storage.open(sha256, { start, end: end - 1 }))
})

/** Bytes already in memory (small files, tests). */
export const bufferSource = (bytes: Uint8Array): ByteSource => ({
  size: bytes.length,
  open: async (start, end) => Readable.from([Buffer.from(bytes.subarray(start, end))])
})

// ---------------------------------------------------------------------------------------------
// Errors and limits
// ---------------------------------------------------------------------------------------------

export type InvalidDistributionReason =
  | "bad_filename"
  | "not_zip"
  | "not_gzip"
  | "not_tar"
  | "corrupt"
  | "unsafe_path"
  | "too_many_entries"
  | "scan_limit"
  | "no_metadata"
  | "several_metadata"
  | "metadata_too_large"
  | "unsupported_entry"
  | "bad_metadata"
  | "name_mismatch"
  | "version_mismatch"

/** The file is not a valid distribution; `reason` classifies, `detail` explains. */
export class InvalidDistribution extends Data.TaggedError("InvalidDistribution")<{
  readonly filename: string
  readonly reason: InvalidDistributionReason
  readonly detail: string
}> {
  override get message() {
    return `${quoteText(this.filename)} is not a valid distribution: ${this.detail}`
  }
}

/** Reading the bytes failed (the source, not the content). */
export class SourceReadError extends Data.TaggedError("SourceReadError")<{
  readonly filename: string
  readonly cause: unknown
}> {
  override get message() {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `reading ${quoteText(this.filename)} failed: ${why}`
  }
}

export interface ReadLimits {
  /** The largest metadata file read (declared and actual size). Default 16 MiB. */
  readonly maxMetadataBytes?: number | undefined
  /** The most archive entries looked at. Default 200,000. */
  readonly maxEntries?: number | undefined
  /** The most bytes decompressed from a `.tar.gz` while looking for PKG-INFO. Default 2 GiB. */
  readonly maxScannedBytes?: number | undefined
}

export const DEFAULT_LIMITS = {
  maxMetadataBytes: 16 * 1024 * 1024,
  maxEntries: 200_000,
  maxScannedBytes: 2 * 1024 * 1024 * 1024
} as const

export interface DistributionInfo {
  readonly filename: DistributionFilename
  readonly metadata: CoreMetadata
  /** The metadata file's bytes, exactly as stored in the archive. */
  readonly metadataBytes: Uint8Array
  /** Its path inside the archive. */
  readonly metadataPath: string
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

/** Marks an error of the byte source, so that it is not taken for a malformed archive. */
class SourceFailure extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original))
  }
}

/** Thrown inside the readers; carries the reason and detail of an InvalidDistribution. */
class Invalid extends Error {
  constructor(readonly reason: InvalidDistributionReason, readonly detail: string) {
    super(detail)
  }
}

interface Closable {
  destroy(e?: Error): unknown
  once(event: "close", listener: () => void): unknown
}

/** Closes what a read opened, also when the Effect running it is interrupted. */
class Resources {
  private readonly streams = new Set<Closable>()
  private closed = false
  add<S extends Closable>(s: S): S {
    if (this.closed) {
      s.destroy()
    } else {
      this.streams.add(s)
      s.once("close", () => this.streams.delete(s))
    }
    return s
  }
  closeAll() {
    this.closed = true
    for (const s of this.streams) s.destroy()
    this.streams.clear()
  }
}

/** All of a stream, failing with `tooLarge()` as soon as more than `max` bytes arrive. */
const readBounded = async (stream: AsyncIterable<Uint8Array>, max: number, tooLarge: () => Error): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  let total = 0
  for await (const chunk of stream) {
    total += chunk.length
    if (total > max) throw tooLarge()
    chunks.push(Buffer.from(chunk))
  }
  return Buffer.concat(chunks, total)
}

/** A stream from the source whose errors are marked as the source's. */
const openMarked = (source: ByteSource, res: Resources, start: number, end: number): Readable => {
  const out = res.add(new PassThrough())
  source.open(start, end).then(
    (s) => {
      res.add(s)
      s.on("error", (e) => out.destroy(new SourceFailure(e)))
      out.on("close", () => s.destroy())
      s.pipe(out)
    },
    (e) => out.destroy(new SourceFailure(e))
  )
  return out
}

const WINDOW = 256 * 1024

/**
 * yauzl's view of a ByteSource: data streams are ranged opens; small reads (end record, central
 * directory headers, local headers) come from a window of up to 256 KiB read in one go.
 */
class SourceReader extends yauzl.RandomAccessReader {
  private window: { start: number; bytes: Buffer } | undefined
  constructor(private readonly source: ByteSource, private readonly res: Resources) {
    super()
  }
  override _readStreamForRange(start: number, end: number): Readable {
    return openMarked(this.source, this.res, start, end)
  }
  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
    if (length > WINDOW) return super.read(buffer, offset, length, position, callback)
    const w = this.window
    if (w !== undefined && position >= w.start && position + length <= w.start + w.bytes.length) {
      w.bytes.copy(buffer, offset, position - w.start, position - w.start + length)
      setImmediate(() => callback(null))
      return
    }
    const end = Math.min(this.source.size, position + WINDOW)
    const tooMany = () => new SourceFailure("the source sent more bytes than asked for")
    readBounded(openMarked(this.source, this.res, position, end), WINDOW, tooMany).then(
      (bytes) => {
        if (bytes.length < length) return callback(new Error("unexpected end of the zip file"))
        this.window = { start: position, bytes }
        bytes.copy(buffer, offset, 0, length)
        callback(null)
      },
      (e: Error) => callback(e)
    )
  }
  override close(callback: (err: Error | null) => void): void {
    callback(null)
  }
}

/** The entry names an unsafe path: absolute, with a ".." segment, a backslash or a NUL. */
const unsafePath = (name: string): boolean =>
  name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\") || name.includes("\0") ||
  name.split("/").includes("..")

/** Classify an error thrown by yauzl. */
const zipError = (e: unknown): unknown => {
  if (e instanceof SourceFailure || e instanceof Invalid) return e
  const message = e instanceof Error ? e.message : String(e)
  if (/end of central directory record signature not found/i.test(message)) return new Invalid("not_zip", "not a zip archive (or a truncated one)")
  if (/^(invalid characters in fileName|absolute path|invalid relative path)/.test(message)) {
    return new Invalid("unsafe_path", `the archive has an unsafe entry name (${message})`)
  }
  return new Invalid("corrupt", `the zip archive is corrupt (${message})`)
}

type Wanted = "wheel" | "sdist"

const readFromZip = async (
  source: ByteSource,
  wanted: Wanted,
  limits: Required<ReadLimits>,
  res: Resources
): Promise<{ path: string; bytes: Buffer }> => {
  const zip = await yauzl.fromRandomAccessReaderPromise(new SourceReader(source, res), source.size, {
    lazyEntries: true,
    autoClose: false,
    decodeStrings: true,
    validateEntrySizes: true,
    strictFileNames: true
  }).catch((e) => {
    throw zipError(e)
  })
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw new Invalid("too_many_entries", `the archive has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}`)
    }
    // Every entry name is checked (yauzl refuses unsafe ones); candidates are collected.
    const candidates: Array<yauzl.Entry> = []
    const distInfoDirs = new Set<string>()
    try {
      for await (const entry of zip.eachEntry()) {
        const name = entry.fileName
        if (wanted === "wheel") {
          const top = name.split("/")[0]!
          if (name.includes("/") && top.endsWith(".dist-info")) distInfoDirs.add(top)
          if (/^[^/]+\.dist-info\/METADATA$/.test(name)) candidates.push(entry)
        } else if (/^[^/]+\/PKG-INFO$/.test(name)) {
          candidates.push(entry)
        }
      }
    } catch (e) {
      throw zipError(e)
    }
    if (wanted === "wheel" && distInfoDirs.size > 1) {
      throw new Invalid("several_metadata", `the wheel has more than one .dist-info directory (${[...distInfoDirs].sort().join(", ")})`)
    }
    const what = wanted === "wheel" ? "a .dist-info/METADATA file" : "a top-level PKG-INFO file"
    if (candidates.length === 0) throw new Invalid("no_metadata", `the archive has no ${what}`)
    if (candidates.length > 1) {
      const names = candidates.map((c) => c.fileName).join(", ")
      throw new Invalid("several_metadata", `the archive has more than one candidate for ${what} (${names})`)
    }
    const entry = candidates[0]!
    if (entry.uncompressedSize > limits.maxMetadataBytes) {
      throw new Invalid("metadata_too_large", `${entry.fileName} is ${entry.uncompressedSize} bytes, more than the limit of ${limits.maxMetadataBytes}`)
    }
    if (!entry.canDecodeFileData()) {
      throw new Invalid("unsupported_entry", `${entry.fileName} is encrypted or compressed with an unsupported method (${entry.compressionMethod})`)
    }
    let stream: Readable
    try {
      stream = res.add(await zip.openReadStreamPromise(entry))
    } catch (e) {
      throw zipError(e)
    }
    const bytes = await readBounded(stream, limits.maxMetadataBytes, () =>
      new Invalid("metadata_too_large", `${entry.fileName} is larger than the limit of ${limits.maxMetadataBytes} bytes`)).catch((e) => {
        throw zipError(e)
      })
    return { path: entry.fileName, bytes }
  } finally {
    zip.close()
  }
}

const readFromTarGz = async (
  source: ByteSource,
  limits: Required<ReadLimits>,
  res: Resources
): Promise<{ path: string; bytes: Buffer }> => {
  // The first error of each stage, to say which one failed when the tar parser reports it.
  let failure: unknown
  const note = (wrap: (e: Error) => unknown) => (e: Error) => {
    failure ??= wrap(e)
  }
  const raw = openMarked(source, res, 0, source.size)
  const gunzip = res.add(createGunzip())
  let scanned = 0
  const counter = res.add(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        scanned += chunk.length
        if (scanned > limits.maxScannedBytes) {
          return cb(new Invalid("scan_limit", `more than ${limits.maxScannedBytes} bytes decompressed before finding PKG-INFO`))
        }
        cb(null, chunk)
      }
    })
  )
  const tar = res.add(tarExtract())
  raw.on("error", note((e) => e))
  gunzip.on("error", note((e) => e instanceof SourceFailure ? e : new Invalid("not_gzip", `not a valid gzip stream (${e.message})`)))
  counter.on("error", note((e) => e))
  const tarError = (e: unknown) =>
    e instanceof SourceFailure || e instanceof Invalid
      ? e
      : new Invalid("not_tar", `not a valid tar archive (${e instanceof Error ? e.message : String(e)})`)
  tar.on("error", note(tarError))
  // Each stage's failure ends the next one, so that the tar iteration below stops.
  raw.on("error", (e) => gunzip.destroy(e))
  gunzip.on("error", (e) => counter.destroy(e))
  counter.on("error", (e) => tar.destroy(e))
  raw.pipe(gunzip).pipe(counter).pipe(tar)
  let entries = 0
  try {
    for await (const entry of tar) {
      const name = entry.header.name.replace(/^(\.\/)+/, "")
      if (++entries > limits.maxEntries) throw new Invalid("too_many_entries", `the archive has more than ${limits.maxEntries} entries`)
      if (unsafePath(name)) throw new Invalid("unsafe_path", `the archive has an unsafe entry name (${quoteText(entry.header.name)})`)
      if (/^[^/]+\/PKG-INFO$/.test(name)) {
        if (entry.header.type !== "file" && entry.header.type !== "contiguous-file") {
          throw new Invalid("unsupported_entry", `${name} is a ${entry.header.type}, not a file`)
        }
        if (entry.header.size > limits.maxMetadataBytes) {
          throw new Invalid("metadata_too_large", `${name} is ${entry.header.size} bytes, more than the limit of ${limits.maxMetadataBytes}`)
        }
        const bytes = await readBounded(entry as AsyncIterable<Uint8Array>, limits.maxMetadataBytes, () =>
          new Invalid("metadata_too_large", `${name} is larger than the limit of ${limits.maxMetadataBytes} bytes`))
        return { path: name, bytes }
      }
      entry.resume()
    }
  } catch (e) {
    throw failure ?? tarError(e)
  }
  if (failure !== undefined) throw failure
  throw new Invalid("no_metadata", "the archive has no top-level PKG-INFO file")
}

/** A wheel's `.dist-info` directory must belong to the file's project (pip refuses it otherwise). */
const checkDistInfoDir = (path: string, project: string) => {
  const dir = path.slice(0, -"/METADATA".length).slice(0, -".dist-info".length)
  const cut = dir.lastIndexOf("-")
  const name = cut < 0 ? dir : dir.slice(0, cut)
  if (normalizeProjectName(name) !== project) {
    throw new Invalid("name_mismatch", `the .dist-info directory ${quoteText(path.split("/")[0]!)} is not project ${quoteText(project)}'s`)
  }
}

// ---------------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------------

/**
 * Read and check the core metadata of the distribution `filename` (its name decides the format:
 * `.whl`, `.tar.gz`, `.zip`).
 */
export const readDistribution = (
  filename: string,
  source: ByteSource,
  limits?: ReadLimits
): Effect.Effect<DistributionInfo, InvalidDistribution | SourceReadError> => {
  const parsed = parseDistributionFilename(filename)
  if (Either.isLeft(parsed)) {
    return Effect.fail(new InvalidDistribution({ filename, reason: "bad_filename", detail: parsed.left.reason }))
  }
  const name = parsed.right
  const l: Required<ReadLimits> = {
    maxMetadataBytes: limits?.maxMetadataBytes ?? DEFAULT_LIMITS.maxMetadataBytes,
    maxEntries: limits?.maxEntries ?? DEFAULT_LIMITS.maxEntries,
    maxScannedBytes: limits?.maxScannedBytes ?? DEFAULT_LIMITS.maxScannedBytes
  }
  return Effect.tryPromise<DistributionInfo, unknown>({
    try: async (signal) => {
      const res = new Resources()
      const abort = () => res.closeAll()
      signal.addEventListener("abort", abort)
      try {
        const found = name.packagetype === "bdist_wheel"
          ? await readFromZip(source, "wheel", l, res)
          : filename.endsWith(".zip")
          ? await readFromZip(source, "sdist", l, res)
          : await readFromTarGz(source, l, res)
        if (name.packagetype === "bdist_wheel") checkDistInfoDir(found.path, name.project)
        const metadata = parseCoreMetadata(found.bytes)
        if (Either.isLeft(metadata)) throw new Invalid("bad_metadata", `${found.path}: ${metadata.left.reason}`)
        const m = metadata.right
        if (normalizeProjectName(m.name) !== name.project) {
          throw new Invalid("name_mismatch", `${found.path} says Name ${quoteText(m.name)}, the file name says ${quoteText(name.project)}`)
        }
        if (!sameVersion(m.version, name.version)) {
          throw new Invalid("version_mismatch", `${found.path} says Version ${quoteText(m.version)}, the file name says ${quoteText(name.version)}`)
        }
        return { filename: name, metadata: m, metadataBytes: new Uint8Array(found.bytes), metadataPath: found.path }
      } finally {
        signal.removeEventListener("abort", abort)
        res.closeAll()
      }
    },
    catch: (e) => e
  }).pipe(
    Effect.catchAll((e): Effect.Effect<never, InvalidDistribution | SourceReadError> =>
      e instanceof Invalid
        ? Effect.fail(new InvalidDistribution({ filename, reason: e.reason, detail: e.detail }))
        : e instanceof SourceFailure
        ? Effect.fail(new SourceReadError({ filename, cause: e.original }))
        : Effect.die(e)
    )
  )
}
