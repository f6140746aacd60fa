/**
 * Downloads from a remote, on Node's global `fetch` (undici).
 *
 * Upstreams misbehave: connections reset, responses stall, bodies end early, CDNs answer 503 or 429
 * for a while. Those faults are retried, with exponential backoff and jitter, a bounded number of
 * times. Faults that another try would only repeat fail at once: a 4xx other than 429, a body larger
 * than expected (the upstream's content is wrong; we stop reading it), a bad redirect. A digest
 * mismatch is the sink's to report, and since it is not one of our own failures it is not retried
 * either.
 *
 * Redirects are followed by hand so that each hop is counted and its scheme checked: a remote must
 * not be able to point us at `file:` or anything else than HTTP.
 *
 * Every attempt owns an AbortController that is aborted when the attempt ends, whichever way:
 * interrupting a download closes its connection.
 */
import { Cause, Data, Duration, Effect, Either, Schedule } from "effect"
import { checkRemoteUrl, checkUrl, RemoteUrlError, shownUrl } from "./policy/urls.js"

// The URL policy, where its users have always found it.
export { checkRemoteUrl, RemoteUrlError, resolveRelative } from "./policy/urls.js"

export type DownloadFailureReason =
  /** A status other than 200 (after redirects). */
  | "http"
  /** The connection failed, reset, or the body could not be read. */
  | "network"
  /** No response headers, or no body bytes, within `timeoutMs`. */
  | "timeout"
  /** The body ended before its Content-Length, or before the expected size. */
  | "truncated"
  /** More bytes than the expected size (or `maxBytes`); reading stopped there. */
  | "too_large"
  /** Too many redirects, or a redirect without a usable Location. */
  | "redirect"
  /** The body is not what it must be (a manifest that is not UTF-8). */
  | "content"

/** A download that failed for good: after its last attempt, or at once for faults not worth retrying. */
export class DownloadError extends Data.TaggedError("DownloadError")<{
  /** "GET <url> failed after <n> attempts: <why>". */
  readonly message: string
  readonly url: string
  readonly relativePath?: string | undefined
  readonly attempts: number
  readonly reason: DownloadFailureReason
  /** The HTTP status, when `reason` is "http". */
  readonly status?: number | undefined
  readonly cause?: unknown
}> {}

/** One attempt's failure; the retry loop decides on `retryable`, then it becomes a DownloadError. */
class AttemptFailure extends Data.TaggedError("AttemptFailure")<{
  readonly reason: DownloadFailureReason
  readonly detail: string
  readonly retryable: boolean
  readonly status?: number | undefined
  /** From a Retry-After header: the next attempt waits at least this long (up to the backoff cap). */
  readonly retryAfterMs?: number | undefined
  readonly cause?: unknown
}> {}

export interface RetryOptions {
  /**
   * Connecting and receiving the response headers must take at most this long, and so must every
   * wait for the next bytes of the body (an idle timeout: a large file may take as long as it needs
   * while bytes keep arriving).
   */
  readonly timeoutMs: number
  /** Retries after the first attempt; a download makes at most `retries + 1` requests. */
  readonly retries: number
  /** Redirects followed per attempt; one more is a failure. */
  readonly maxRedirects: number
  /** The first backoff delay; it doubles on each retry, with ±20% jitter. Default 500 ms. */
  readonly backoffMs?: number
  /** The longest backoff delay, also the cap on a server's Retry-After. Default 30 s. */
  readonly maxBackoffMs?: number
}

export interface DownloadOptions extends RetryOptions {
  /** The manifest's relative path of the file, carried into DownloadError. */
  readonly relativePath?: string
}

export interface FetchTextOptions extends Partial<RetryOptions> {
  readonly timeoutMs: number
  /** A larger body fails (without being read past this size). */
  readonly maxBytes: number
}

/** Without Retry-After, a server that keeps failing gets at most this long between our attempts. */
const DEFAULT_BACKOFF_MS = 500
const DEFAULT_MAX_BACKOFF_MS = 30_000
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const HEADERS = {
  "user-agent": "cairn",
  // undici decodes gzip/br/deflate bodies on the fly and has no switch to turn that off; the
  // manifest's sizes and digests are those of the bytes on the server, so ask for those.
  "accept-encoding": "identity"
}

/** "fetch failed (ECONNRESET: read ECONNRESET)": undici puts the useful part on the cause. */
const describe = (cause: unknown): string => {
  const e = cause as { message?: unknown; code?: unknown; cause?: unknown } | undefined
  const inner = e?.cause as { message?: unknown; code?: unknown } | undefined
  const msg = typeof e?.message === "string" ? e.message : String(cause)
  if (inner && (typeof inner.code === "string" || typeof inner.message === "string")) {
    const detail = [inner.code, inner.message].filter((x) => typeof x === "string" && x !== "").join(": ")
    return `${msg} (${detail})`
  }
  return typeof e?.code === "string" ? `${msg} (${e.code})` : msg
}

/** Retry-After: delay-seconds or an HTTP date. */
const retryAfterMs = (header: string | null): number | undefined => {
  if (header === null) return undefined
  const trimmed = header.trim()
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

const contentLength = (res: Response): number | undefined => {
  // A length of the encoded bytes says nothing about the decoded ones we count.
  const encoding = res.headers.get("content-encoding")
  if (encoding !== null && encoding.trim().toLowerCase() !== "identity") return undefined
  const h = res.headers.get("content-length")
  if (h === null || !/^[0-9]+$/.test(h.trim())) return undefined
  const n = Number(h.trim())
  return Number.isSafeInteger(n) ? n : undefined
}

/** The response's body is of no use (a redirect, an error page): drop it without reading it. */
const discard = (res: Response) => {
  res.body?.cancel().catch(() => undefined)
}

/**
 * One GET, up to its response headers. Plain callbacks rather than a race with a timer fiber: this
 * runs once per file of a sync, and the timer and abort signal Effect would add cost more than the
 * request's own bookkeeping. Interrupting it (or the timeout) aborts `ac`, which closes the
 * connection; `ac` also carries the body read, which outlives this effect.
 */
const fetchOnce = (url: URL, ac: AbortController, timeoutMs: number) =>
  Effect.async<Response, AttemptFailure>((resume) => {
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      ac.abort()
    }, timeoutMs)
    fetch(url, { signal: ac.signal, redirect: "manual", headers: HEADERS }).then(
      (res) => {
        clearTimeout(timer)
        resume(Effect.succeed(res))
      },
      (cause) => {
        clearTimeout(timer)
        resume(Effect.fail(
          timedOut
            ? new AttemptFailure({ reason: "timeout", detail: `no response within ${timeoutMs} ms`, retryable: true })
            : new AttemptFailure({ reason: "network", detail: describe(cause), retryable: true, cause })
        ))
      }
    )
    return Effect.sync(() => {
      clearTimeout(timer)
      ac.abort()
    })
  })

/** GET `start`, following up to `maxRedirects` redirects; succeeds with a 200 response only. */
const follow = (start: URL, ac: AbortController, opts: RetryOptions) =>
  Effect.gen(function*() {
    let url = start
    for (let hop = 0;; hop++) {
      const res = yield* fetchOnce(url, ac, opts.timeoutMs)
      const via = hop === 0 ? "" : ` (from ${shownUrl(url)} after ${hop} redirect${hop === 1 ? "" : "s"})`
      if (REDIRECTS.has(res.status)) {
        discard(res)
        if (hop >= opts.maxRedirects) {
          return yield* new AttemptFailure({
            reason: "redirect",
            detail: `too many redirects (more than ${opts.maxRedirects})`,
            retryable: false
          })
        }
        const location = res.headers.get("location")
        let next: URL | undefined
        try {
          next = location === null ? undefined : new URL(location, url)
        } catch {
          next = undefined
        }
        if (next === undefined) {
          return yield* new AttemptFailure({
            reason: "redirect",
            detail: `HTTP ${res.status} without a valid Location${via}`,
            retryable: false
          })
        }
        const checked = checkUrl(next)
        if (Either.isLeft(checked)) {
          return yield* new AttemptFailure({
            reason: "redirect",
            detail: `redirected to a URL cairn does not fetch: ${checked.left.message}`,
            retryable: false
          })
        }
        url = next
        continue
      }
      if (res.status === 200) return res
      discard(res)
      const status = res.status
      return yield* new AttemptFailure({
        reason: "http",
        detail: `HTTP ${status}${via}`,
        status,
        retryable: status >= 500 || status === 429,
        retryAfterMs: status === 429 || status === 503 ? retryAfterMs(res.headers.get("retry-after")) : undefined
      })
    }
  })

interface Limits {
  /** The body must be exactly this long. */
  readonly exact?: number | undefined
  /** The body may be at most this long. */
  readonly max?: number | undefined
}

interface BodyState {
  started: boolean
  /** The body was read to its end and had the right length. */
  completed: boolean
  bytes: number
  /** Why reading the body failed, whatever the sink made of the exception. */
  failure: AttemptFailure | undefined
}

/**
 * The body as a single-use AsyncIterable that counts bytes, fails (before handing them over) on
 * the first chunk past the limit, fails at the end on a short body, and fails when no bytes arrive
 * for `idleMs`. Its failures are recorded in `state`: the sink may wrap them in its own errors.
 */
const bodyOf = (
  res: Response,
  ac: AbortController,
  state: BodyState,
  limits: Limits,
  length: number | undefined,
  idleMs: number
): AsyncIterable<Uint8Array> => {
  const fail = (f: AttemptFailure): never => {
    state.failure = f
    throw f
  }
  async function* chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    if (res.body === null) {
      if ((limits.exact ?? 0) > 0) fail(new AttemptFailure({ reason: "truncated", detail: "empty response", retryable: true }))
      state.completed = true
      return
    }
    const reader = res.body.getReader()
    // One idle timer, re-armed per read (refresh() is far cheaper than a new timer per chunk).
    let idle = false
    let timer: NodeJS.Timeout | undefined
    try {
      for (;;) {
        if (timer === undefined) {
          timer = setTimeout(() => {
            idle = true
            ac.abort()
          }, idleMs)
        } else timer.refresh()
        let r: Awaited<ReturnType<typeof reader.read>>
        try {
          r = await reader.read()
        } catch (cause) {
          if (idle) {
            return fail(new AttemptFailure({
              reason: "timeout",
              detail: `no data for ${idleMs} ms after ${state.bytes} bytes`,
              retryable: true
            }))
          }
          // Aborted from our side: the attempt is over (interrupted, or the sink already failed).
          if (ac.signal.aborted) throw cause
          return fail(new AttemptFailure({
            // A connection closed short of the Content-Length shows up here too (undici: "terminated").
            reason: "network",
            detail: `${describe(cause)} after ${state.bytes}${length === undefined ? "" : ` of ${length}`} bytes`,
            retryable: true,
            cause
          }))
        }
        if (r.done) break
        state.bytes += r.value.byteLength
        if (limits.exact !== undefined && state.bytes > limits.exact) {
          fail(new AttemptFailure({
            reason: "too_large",
            detail: `more than the expected ${limits.exact} bytes`,
            retryable: false
          }))
        }
        if (limits.max !== undefined && state.bytes > limits.max) {
          fail(new AttemptFailure({ reason: "too_large", detail: `larger than ${limits.max} bytes`, retryable: false }))
        }
        yield r.value
      }
      if (length !== undefined && state.bytes < length) {
        fail(new AttemptFailure({
          reason: "truncated",
          detail: `body ended after ${state.bytes} of ${length} bytes`,
          retryable: true
        }))
      }
      if (limits.exact !== undefined && state.bytes < limits.exact) {
        fail(new AttemptFailure({
          reason: "truncated",
          detail: `body is ${state.bytes} bytes, expected ${limits.exact}`,
          retryable: true
        }))
      }
      state.completed = true
    } finally {
      clearTimeout(timer)
      // Stopped early (a failure above, or the sink broke off): close the connection, read no more.
      if (!state.completed) reader.cancel().catch(() => undefined)
      else reader.releaseLock()
    }
  }
  return {
    [Symbol.asyncIterator]: () => {
      if (state.started) throw new Error("a download's body can be read only once")
      state.started = true
      return chunks()
    }
  }
}

/** One attempt: request, checks on the headers, the body through the sink. */
const attempt = <A, E, R>(
  start: URL,
  limits: Limits,
  sink: (body: AsyncIterable<Uint8Array>) => Effect.Effect<A, E, R>,
  opts: RetryOptions
): Effect.Effect<A, E | AttemptFailure, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => new AbortController()),
    (ac) =>
      Effect.gen(function*() {
        const res = yield* follow(start, ac, opts)
        const length = contentLength(res)
        if (length !== undefined) {
          // The headers already say the body is wrong: fail before reading any of it.
          const limit = limits.exact ?? limits.max
          if (limit !== undefined && length > limit) {
            return yield* new AttemptFailure({
              reason: "too_large",
              detail: limits.exact !== undefined
                ? `Content-Length ${length}, expected ${limits.exact} bytes`
                : `Content-Length ${length}, larger than ${limit} bytes`,
              retryable: false
            })
          }
          if (limits.exact !== undefined && length < limits.exact) {
            return yield* new AttemptFailure({
              reason: "truncated",
              detail: `Content-Length ${length}, expected ${limits.exact} bytes`,
              retryable: true
            })
          }
        }
        const state: BodyState = { started: false, completed: false, bytes: 0, failure: undefined }
        const body = bodyOf(res, ac, state, limits, length, opts.timeoutMs)
        const out = yield* sink(body).pipe(
          // However the sink reported it (its own error, a defect), a failure of the body is ours.
          Effect.catchAllCause((cause): Effect.Effect<never, E | AttemptFailure> =>
            state.failure !== undefined && !Cause.isInterruptedOnly(cause)
              ? Effect.fail(state.failure)
              : Effect.failCause(cause)
          )
        )
        if (!state.completed) {
          // The size checks run at the end of the body: a sink that stops early would skip them.
          return yield* Effect.dieMessage(`download sink for ${shownUrl(start)} returned without reading the whole body`)
        }
        return out
      }),
    // An attempt that read its body to the end has nothing left to close: aborting it anyway would
    // only build an AbortError (with its stack) per file.
    (ac, exit) => exit._tag === "Success" ? Effect.void : Effect.sync(() => ac.abort())
  )

/** Exponential backoff with jitter, capped; a Retry-After (also capped) lengthens a delay. */
const retrySchedule = (opts: RetryOptions) => {
  const max = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS
  return Schedule.exponential(Duration.millis(opts.backoffMs ?? DEFAULT_BACKOFF_MS), 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(opts.retries)),
    Schedule.passthrough,
    Schedule.modifyDelay((e: unknown, delay) => {
      const after = e instanceof AttemptFailure ? e.retryAfterMs ?? 0 : 0
      return Duration.millis(Math.min(max, Math.max(Duration.toMillis(delay), after)))
    })
  )
}

const isAttemptFailure = (e: unknown): e is AttemptFailure => e instanceof AttemptFailure

/** GET with redirects, retries and the body limits; the body goes through `sink`. */
const get = <A, E, R>(
  url: string,
  limits: Limits,
  sink: (body: AsyncIterable<Uint8Array>) => Effect.Effect<A, E, R>,
  opts: RetryOptions,
  relativePath: string | undefined
): Effect.Effect<A, E | DownloadError | RemoteUrlError, R> =>
  Effect.gen(function*() {
    const start = yield* checkRemoteUrl(url)
    let attempts = 0
    const once = Effect.suspend(() => {
      attempts++
      return attempt(start, limits, sink, opts)
    }).pipe(
      Effect.tapError((e) =>
        isAttemptFailure(e) && e.retryable
          ? Effect.logDebug(`GET ${shownUrl(start)} attempt ${attempts} failed: ${e.detail}`)
          : Effect.void
      )
    )
    return yield* once.pipe(
      Effect.retry({ schedule: retrySchedule(opts), while: (e) => isAttemptFailure(e) && e.retryable }),
      Effect.catchIf(isAttemptFailure, (f) =>
        Effect.fail(
          new DownloadError({
            message: `GET ${shownUrl(start)} failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${f.detail}`,
            url: shownUrl(start),
            relativePath,
            attempts,
            reason: f.reason,
            status: f.status,
            cause: f.cause
          })
        ))
      // No annotateLogs({ url }): the one log line here names the URL already, and annotating
      // costs a FiberRef update per file of a sync.
    ) as Effect.Effect<A, E | DownloadError, R>
  })

/**
 * Download `url`, a file of `expected.size` bytes, into `sink`. The sink gets the body as an
 * AsyncIterable it must read to its end (it stores the bytes and checks `expected.sha256`: the
 * bytes are hashed once, where they are written). The iterable fails as soon as more than
 * `expected.size` bytes arrive, and at its end if fewer did. On a retryable fault the sink is
 * called again, with a fresh body: it must discard what it got from a failed attempt.
 *
 * Sink errors are not retried and come out as they are, except those caused by the body failing,
 * which become this download's (retried) faults.
 */
export const download = <A, E, R>(
  url: string,
  expected: { readonly size: number; readonly sha256: string },
  sink: (body: AsyncIterable<Uint8Array>) => Effect.Effect<A, E, R>,
  opts: DownloadOptions
): Effect.Effect<A, E | DownloadError | RemoteUrlError, R> =>
  get(url, { exact: expected.size }, sink, opts, opts.relativePath)

/** A text document (a manifest), UTF-8, at most `maxBytes`, with the same retries as `download`. */
export const fetchText = (url: string, opts: FetchTextOptions): Effect.Effect<string, DownloadError | RemoteUrlError> =>
  get(
    url,
    { max: opts.maxBytes },
    (body) =>
      Effect.tryPromise({
        try: async () => {
          const parts: Array<Uint8Array> = []
          for await (const chunk of body) parts.push(chunk)
          return Buffer.concat(parts)
        },
        // Only the body's own failures can get here, and `attempt` substitutes those.
        catch: (cause) => new AttemptFailure({ reason: "network", detail: describe(cause), retryable: true, cause })
      }).pipe(
        Effect.flatMap((bytes) =>
          Effect.try({
            try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
            catch: () => new AttemptFailure({ reason: "content", detail: "the body is not valid UTF-8", retryable: false })
          })
        )
      ),
    {
      timeoutMs: opts.timeoutMs,
      retries: opts.retries ?? 3,
      maxRedirects: opts.maxRedirects ?? 5,
      backoffMs: opts.backoffMs,
      maxBackoffMs: opts.maxBackoffMs
    },
    undefined
  ) as Effect.Effect<string, DownloadError | RemoteUrlError>
