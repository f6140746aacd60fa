/**
 * The artifact store: content-addressed blobs, named by the sha256 hex digest of their bytes.
 *
 * This module is the backend-neutral half: the service interface, its errors and the digest
 * check. The backends live beside it: the local filesystem (./storage-local.ts) and S3-protocol
 * object stores (./storage-s3.ts). Callers only ever see `ArtifactStorage`; test/storage-contract.ts
 * runs the same tests against both.
 *
 * Every method that takes a digest validates it before doing anything else, so a caller passing
 * user input ("../../etc/passwd") gets a `BadDigest` and never a path built from it.
 */
import { Context, Data, Effect } from "effect"
import type { Readable } from "node:stream"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * The store itself failed (I/O error, read-only or full disk, something that should not be
 * there; an object store that is unreachable, overloaded or refuses the credentials). `message`
 * is meant for operators: the common causes get a plain sentence, the rest the OS or server
 * message (which names the path or key). It never contains credentials.
 */
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly message: string
  /** The errno code (EROFS, ENOSPC, ...) or the object store's error code (SlowDown, AccessDenied, ...). */
  readonly code?: string | undefined
  readonly cause?: unknown
}> {}

/** The bytes did not hash to the digest the caller announced. Nothing was stored. */
export class DigestMismatch extends Data.TaggedError("DigestMismatch")<{
  readonly expected: string
  readonly actual: string
}> {
  override get message() {
    return `content digest mismatch: expected sha256 ${this.expected}, got ${this.actual}`
  }
}

/**
 * The byte count was not the size the caller announced. Nothing was stored. When more bytes
 * arrived than announced, reading stops at the first chunk past the announced size, so `actual`
 * is then a lower bound.
 */
export class SizeMismatch extends Data.TaggedError("SizeMismatch")<{
  readonly expected: number
  readonly actual: number
}> {
  override get message() {
    return this.actual > this.expected
      ? `content size mismatch: expected ${this.expected} bytes, got at least ${this.actual}`
      : `content size mismatch: expected ${this.expected} bytes, got ${this.actual}`
  }
}

/** More than `maxSize` bytes arrived (or were announced). Reading stopped; nothing was stored. */
export class TooLarge extends Data.TaggedError("TooLarge")<{
  readonly limit: number
}> {
  override get message() {
    return `content larger than the limit of ${this.limit} bytes`
  }
}

/**
 * The source stream of a `put` failed (the uploading client went away, the upstream download
 * broke). Kept apart from `StorageError` so that callers can answer "your upload broke" rather
 * than "our disk broke". Nothing was stored.
 */
export class SourceError extends Data.TaggedError("SourceError")<{
  readonly cause: unknown
}> {
  override get message() {
    return `reading the content failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** No artifact with this digest is stored. */
export class NotStored extends Data.TaggedError("NotStored")<{
  readonly sha256: string
}> {
  override get message() {
    return `artifact ${this.sha256} is not stored`
  }
}

/** A digest argument that is not 64 lowercase hex characters. */
export class BadDigest extends Data.TaggedError("BadDigest")<{
  readonly value: string
}> {
  override get message() {
    // The value may be anything a client sent: keep log lines bounded.
    const shown = this.value.length > 80 ? `${this.value.slice(0, 80)}...` : this.value
    return `not a sha256 hex digest: ${JSON.stringify(shown)}`
  }
}

/**
 * A byte range that cannot be served: negative or non-integer bounds, start after end, or a start
 * at or past the end of the artifact (HTTP's "416 Range Not Satisfiable"). An end past the last
 * byte is not an error; it is clamped, as HTTP does.
 */
export class BadRange extends Data.TaggedError("BadRange")<{
  readonly start: number
  readonly end: number
  /** The artifact's size, when the range was checked against it. */
  readonly size?: number | undefined
}> {
  override get message() {
    return `unsatisfiable byte range ${this.start}-${this.end}${this.size === undefined ? "" : ` of ${this.size} bytes`}`
  }
}

// ---------------------------------------------------------------------------------------------
// Digests
// ---------------------------------------------------------------------------------------------

const DIGEST = /^[0-9a-f]{64}$/

export const isSha256 = (s: unknown): s is string => typeof s === "string" && DIGEST.test(s)

/** The digest, or a `BadDigest`. Run before anything builds a name from it. */
export const checkSha256 = (s: string): Effect.Effect<string, BadDigest> =>
  isSha256(s) ? Effect.succeed(s) : Effect.fail(new BadDigest({ value: String(s) }))

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** Bytes to store: an async iterable of chunks, e.g. an HTTP request or `fs.createReadStream`. */
export type ArtifactSource = AsyncIterable<Uint8Array> | NodeJS.ReadableStream

export interface PutExpectations {
  /** Fail with `DigestMismatch` unless the bytes hash to this (lowercase hex) digest. */
  readonly sha256?: string | undefined
  /** Fail with `SizeMismatch` unless exactly this many bytes arrive. */
  readonly size?: number | undefined
  /** Fail with `TooLarge`, as soon as it is exceeded, if more than this many bytes arrive. */
  readonly maxSize?: number | undefined
}

export interface PutResult {
  readonly sha256: string
  readonly size: number
  /** False when an artifact with this digest was already stored (the new copy was dropped). */
  readonly created: boolean
}

/** An inclusive byte range, as in HTTP's `Range: bytes=start-end`. */
export interface ByteRange {
  readonly start: number
  readonly end: number
}

export interface ArtifactStorageShape {
  /**
   * Store the bytes of `source`, streaming (never holding the whole artifact in memory). The
   * artifact becomes visible under its digest only once it is complete, durable and matches
   * `expected`; on any failure or interruption nothing is left behind. Storing bytes that are
   * already stored keeps the existing copy and answers `created: false`.
   *
   * Note for callers: `created: false` says the bytes were there at that moment. It does not
   * protect them against an orphan cleanup running concurrently; whatever makes the artifact
   * referenced must be ordered against cleanup (the cleanup's lock).
   */
  readonly put: (
    source: ArtifactSource,
    expected?: PutExpectations
  ) => Effect.Effect<PutResult, StorageError | DigestMismatch | SizeMismatch | TooLarge | SourceError | BadDigest>

  /**
   * `put` for callers that store many artifacts and then make them referenced in one transaction
   * (a sync's batch): the bytes are complete, verified and visible under their digest when it
   * succeeds, exactly as with `put`, but their name is not yet durable: a crash of the machine may
   * take it away again (the artifact is then absent, never partial). `persist` makes the names of
   * a whole batch durable at once; it must return before anything that makes them referenced
   * commits. Interrupted or failed, it leaves nothing behind, as `put` does.
   */
  readonly stage: (
    source: ArtifactSource,
    expected?: PutExpectations
  ) => Effect.Effect<PutResult, StorageError | DigestMismatch | SizeMismatch | TooLarge | SourceError | BadDigest>

  /**
   * Make the names of these artifacts durable, whoever staged them (a `created: false` of `stage`
   * may have found another process's staged copy). Digests not stored are skipped: whoever adopts
   * them finds them absent. A backend whose writes are durable when they succeed does nothing.
   */
  readonly persist: (sha256s: ReadonlyArray<string>) => Effect.Effect<void, StorageError | BadDigest>

  /** The size of a stored artifact, or undefined if it is not stored. */
  readonly stat: (sha256: string) => Effect.Effect<{ readonly size: number } | undefined, StorageError | BadDigest>

  /**
   * A stream of the artifact's bytes (or of the inclusive `range` of them). The caller must
   * consume or destroy it: it holds an open file (or connection) until then.
   */
  readonly open: (
    sha256: string,
    range?: ByteRange
  ) => Effect.Effect<Readable, StorageError | NotStored | BadDigest | BadRange>

  /**
   * A local filesystem path holding the artifact, for sendfile-style serving; undefined when the
   * artifact is not stored there, the digest is malformed, or the backend has no local files
   * (object stores). A path is only returned after checking that neither it nor its directories
   * are symlinks, but the caller opens it later: serving untrusted stores should prefer `open`.
   */
  readonly path: (sha256: string) => string | undefined

  /**
   * Where a client may fetch the artifact itself for `seconds` (a presigned URL of an object
   * store), or undefined when the backend has no such address (local files). The URL is made
   * without asking the store whether the artifact is there.
   */
  readonly presignedUrl: (sha256: string, seconds: number) => Effect.Effect<string | undefined, StorageError | BadDigest>

  /** Remove a stored artifact. Removing one that is not stored succeeds. */
  readonly remove: (sha256: string) => Effect.Effect<void, StorageError | BadDigest>

  /**
   * Two-phase removal for the orphan cleanup (the protocol is in ../content/cleanup.ts and
   * ./artifacts.ts). `tombstone` records, durably, that the artifact is about to be removed; the
   * bytes stay where they are and stay visible. Then the cleanup deletes the row and commits, and
   * either `purgeTombstone` (the row is gone: delete the bytes, then the tombstone) or `restore`
   * (the row is still there: drop the tombstone, keep the bytes).
   *
   * Nothing is moved or hidden before the database has decided, so no reader ever finds a row
   * whose bytes are away; the tombstone only makes a crash between the commit and the purge
   * recoverable: `tombstones` lists what is left, and start-up (or the next cleanup) decides each
   * one by the database, as above.
   */
  readonly tombstone: (sha256: string) => Effect.Effect<void, StorageError | BadDigest>
  /** Drop the tombstone and keep the bytes. Restoring without a tombstone succeeds. */
  readonly restore: (sha256: string) => Effect.Effect<void, StorageError | BadDigest>
  /** Delete the artifact's bytes, then its tombstone. Purging what is absent succeeds. */
  readonly purgeTombstone: (sha256: string) => Effect.Effect<void, StorageError | BadDigest>
  /** The digests that currently have a tombstone (left over from an interrupted cleanup). */
  readonly tombstones: Effect.Effect<ReadonlyArray<string>, StorageError>

  /**
   * Delete what interrupted `put`s left behind (temporary files or objects, unfinished multipart
   * uploads) once it is old enough that no `put` in progress can own it. Answers how many went.
   * Run at start and by every orphan cleanup.
   */
  readonly sweep: Effect.Effect<number, StorageError>

  /** Whether the store can be used right now (for health checks): the cause if not. */
  readonly check: Effect.Effect<void, StorageError>
}

export class ArtifactStorage extends Context.Tag("cairn/ArtifactStorage")<ArtifactStorage, ArtifactStorageShape>() {}
