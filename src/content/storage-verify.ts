/**
 * What every backend's `put` and `open` check the same way: the caller's expectations and byte
 * ranges, and the bytes of a `put`'s source, hashed and counted chunk by chunk as they are handed
 * to the backend's writer (`readVerified`). A backend makes its bytes visible only after
 * `readVerified` succeeded, so the checks here are what "nothing is ever visible under a digest
 * its bytes do not match" rests on.
 */
import { Cause, Effect } from "effect"
import { createHash } from "node:crypto"
import {
  type ArtifactSource,
  BadRange,
  type ByteRange,
  checkSha256,
  DigestMismatch,
  type PutExpectations,
  SizeMismatch,
  SourceError,
  TooLarge
} from "./storage.js"

export const isNonNegativeInt = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

/**
 * Check `put`'s expectations before reading a byte: a malformed digest is a `BadDigest`, an
 * announced size over `maxSize` a `TooLarge`; sizes that are not whole numbers are the caller's bug.
 */
export const checkExpectations = (expected: PutExpectations | undefined) =>
  Effect.gen(function*() {
    const { sha256: wantSha, size: wantSize, maxSize } = expected ?? {}
    if (wantSha !== undefined) yield* checkSha256(wantSha)
    if (wantSize !== undefined && !isNonNegativeInt(wantSize)) {
      return yield* Effect.dieMessage(`put: expected size must be a non-negative integer, got ${wantSize}`)
    }
    if (maxSize !== undefined && !isNonNegativeInt(maxSize)) {
      return yield* Effect.dieMessage(`put: maxSize must be a non-negative integer, got ${maxSize}`)
    }
    // Announced too large: refuse before reading a byte.
    if (wantSize !== undefined && maxSize !== undefined && wantSize > maxSize) {
      return yield* new TooLarge({ limit: maxSize })
    }
  })

/** A `BadRange` unless `range` has whole, non-negative bounds in order (its end is clamped later). */
export const checkRange = (range: ByteRange | undefined): Effect.Effect<void, BadRange> =>
  range !== undefined && !(isNonNegativeInt(range.start) && isNonNegativeInt(range.end) && range.start <= range.end)
    ? Effect.fail(new BadRange({ start: range.start, end: range.end }))
    : Effect.void

/**
 * Read `source` to its end, handing each chunk to `write` as it arrives (never gathering them: a
 * slow source's bytes are to be in the store while it streams), and answer the digest and size of
 * what was read once they match `expected`. Reading stops at the first chunk past `maxSize` or
 * past the announced size; on any failure or interruption the source is told to stop.
 */
export const readVerified = <E>(
  source: ArtifactSource,
  expected: PutExpectations | undefined,
  write: (chunk: Uint8Array) => Effect.Effect<void, E>
): Effect.Effect<{ readonly sha256: string; readonly size: number }, E | SourceError | TooLarge | SizeMismatch | DigestMismatch> =>
  Effect.gen(function*() {
    const { sha256: wantSha, size: wantSize, maxSize } = expected ?? {}
    const hash = createHash("sha256")
    let size = 0
    const it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()

    const pump = Effect.gen(function*() {
      for (;;) {
        const r = yield* Effect.tryPromise({ try: () => it.next(), catch: (cause) => new SourceError({ cause }) })
        if (r.done) return
        const chunk = r.value
        if (!(chunk instanceof Uint8Array)) {
          return yield* Effect.dieMessage(
            `put: the source yielded ${typeof chunk === "string" ? "text (was setEncoding called?)" : typeof chunk}, not bytes`
          )
        }
        size += chunk.byteLength
        if (maxSize !== undefined && size > maxSize) return yield* new TooLarge({ limit: maxSize })
        if (wantSize !== undefined && size > wantSize) {
          return yield* new SizeMismatch({ expected: wantSize, actual: size })
        }
        hash.update(chunk)
        yield* write(chunk)
      }
    })

    yield* pump.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (exit._tag === "Success") return
          // Stop the source. `return()` is how an iterator is told we are done, and a stream's
          // iterator destroys the stream on it (unless the caller asked it not to, e.g. to still
          // answer 413 on the connection). It is queued behind a pending `next()`, though, so when
          // we were interrupted mid-read a stream is destroyed directly. Neither is awaited: a
          // stuck source must not hold us.
          void Promise.resolve()
            .then(() => it.return?.())
            .catch(() => undefined)
          const destroy = (source as { destroy?: unknown }).destroy
          if (Cause.isInterrupted(exit.cause) && typeof destroy === "function") destroy.call(source)
        })
      )
    )

    const sha256 = hash.digest("hex")
    if (wantSize !== undefined && size !== wantSize) return yield* new SizeMismatch({ expected: wantSize, actual: size })
    if (wantSha !== undefined && sha256 !== wantSha) return yield* new DigestMismatch({ expected: wantSha, actual: sha256 })
    return { sha256, size }
  })
