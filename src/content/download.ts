/**
 * Downloads from a remote, on undici's dispatchers used directly (keep-alive connection pools; a
 * proxy, a CA, a client certificate when the remote has them: `./remote-access.ts` builds them),
 * with a callback handler per request instead of `fetch` and its web streams, which cost more CPU
 * than the rest of a small file's download.
 *
 * Upstreams misbehave: connections reset, responses stall, bodies end early, CDNs answer 503 or 429
 * for a while. Those faults are retried, with exponential backoff and jitter, a bounded number of
 * times. Faults that another try would only repeat fail at once: a 4xx other than 429, a body larger
 * than expected (the upstream's content is wrong; we stop reading it), a bad redirect, a TLS
 * certificate that does not verify, a proxy refusing the credentials. A digest mismatch is the
 * sink's to report, and since it is not one of our own failures it is not retried either.
 *
 * Redirects are followed by hand so that each hop is counted and its scheme checked: a remote must
 * not be able to point us at `file:` or anything else than HTTP. A remote's credentials (basic
 * auth, its extra headers) go only to the origin of the remote's URL, never to a redirect target
 * elsewhere. Every request (each hop, each attempt) first waits for the remote's rate limit.
 *
 * Interrupting a download aborts its request, which closes its connection.
 */
import type { IncomingHttpHeaders } from "node:http"
import { Cause, Data, Duration, Effect, Either, Schedule } from "effect"
import { Agent, type Dispatcher } from "undici"
import type { DbError } from "../db/client.js"
import { checkRemoteUrl, checkUrl, RemoteUrlError, shownUrl } from "./policy/urls.js"

// The URL policy, where its users have always found it.
export { checkRemoteUrl, RemoteUrlError, resolveRelative } from "./policy/urls.js"

export type DownloadFailureReason =
  /** A status other than 200 (after redirects). */
  | "http"
  /** The connection failed, reset, or the body could not be read. */
  | "network"
  /** No connection, no response headers or no body bytes in time, or the whole request too long. */
  | "timeout"
  /** The body ended before its Content-Length, or before the expected size. */
  | "truncated"
  /** More bytes than the expected size (or `maxBytes`); reading stopped there. */
  | "too_large"
  /** Too many redirects, or a redirect without a usable Location. */
  | "redirect"
  /** The body is not what it must be (a manifest that is not UTF-8). */
  | "content"
  /** TLS failed: the server's certificate does not verify, or it refused ours. */
  | "tls"
  /** The proxy refused the request (407: its credentials) or could not reach the upstream. */
  | "proxy"

/** A download that failed for good: after its last attempt, or at once for faults not worth retrying. */
export class DownloadError extends Data.TaggedError("DownloadError")<{
  /** "GET <url> failed after <n> attempts: <why>". */
  readonly message: string
  readonly url: string
  readonly relativePath?: string | undefined
  readonly attempts: number
  readonly reason: DownloadFailureReason
  /** The HTTP status, when `reason` is "http" (or a proxy's, when "proxy"). */
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

/**
 * How to reach a remote: the dispatcher (connection pools; its proxy and TLS settings), the
 * headers that go to the remote's origin only, the whole-request limit and the rate limit.
 */
export interface Route {
  readonly dispatcher: Dispatcher
  /** The origin of the remote's URL: `headers` are sent to it and to nothing else. */
  readonly origin: string
  /** Basic auth and the remote's extra headers. */
  readonly headers: Readonly<Record<string, string>>
  /** Longest time of one request, from sending it to its last byte; undefined: none. */
  readonly totalTimeoutMs?: number | undefined
  /** Waits until one more request may start (the remote's rate limit); undefined: at once. */
  readonly pace?: Effect.Effect<void, DbError> | undefined
}

export interface RetryOptions {
  /**
   * Receiving the response headers must take at most this long, and so must every wait for the
   * next bytes of the body (an idle timeout: a large file may take as long as it needs while bytes
   * keep arriving). Connecting has its own timeout, the dispatcher's.
   */
  readonly timeoutMs: number
  /** Retries after the first attempt; a download makes at most `retries + 1` requests. */
  readonly retries: number
  /** Redirects followed per attempt; one more is a failure. */
  readonly maxRedirects: number
  /** The first backoff delay; it doubles on each retry, with ±20% jitter. Default 500 ms. */
  readonly backoffMs?: number | undefined
  /** The longest backoff delay, also the cap on a server's Retry-After. Default 30 s. */
  readonly maxBackoffMs?: number | undefined
  /** The remote's route; default: a shared keep-alive agent, no extra headers, no limits. */
  readonly via?: Route | undefined
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
const BASE_HEADERS: Readonly<Record<string, string>> = {
  "user-agent": "cairn",
  // The manifest's sizes and digests are those of the bytes on the server: ask for those.
  "accept-encoding": "identity"
}
/** Buffered body bytes above which the socket is paused (the sink is slower than the network). */
export const PAUSE_AT = 1 << 20
const RESUME_AT = 256 << 10
/** An error or redirect body longer than this is not drained for keep-alive: the connection is closed. */
const DRAIN_MAX = 64 << 10

let sharedAgent: Agent | undefined
/** A keep-alive agent for downloads without a remote's route (tests, scripts). */
export const defaultRoute = (): Route => ({ dispatcher: (sharedAgent ??= new Agent()), origin: "", headers: {} })

/** Why an attempt aborted its own request. */
class Abort extends Error {
  constructor(readonly why: "interrupted" | "total" | "done") {
    super(why)
  }
}

/**
 * One request: a callback handler that records the response head, queues body chunks for the
 * reader (pausing the socket when too many wait) and records how it ended. Events after an error
 * are ignored (a proxy wrapper may report an error and still deliver the rest of the response).
 *
 * It never pauses when the upstream may close the connection next: on the chunk that completes a
 * Content-Length, or at all for a body that ends when the connection does (neither a length nor
 * chunked). undici 7's HTTP/1 parser, paused when the connection's end arrives with nothing left
 * to read, fails an assertion in a socket event handler, which nothing can catch: the process dies
 * (fixed in undici 8, which needs Node 22). Such a body is bounded by `limit` instead: the chunk
 * that passes it is the last one queued (the reader fails on it) and the request is aborted.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private abortReason: Error | undefined
  status = 0
  headers: IncomingHttpHeaders = {}
  private chunks: Array<Buffer> = []
  private buffered = 0
  ended = false
  error: Error | undefined
  private discarding = false
  private discarded = 0
  /** Called once: the head arrived (undefined) or the request failed first. */
  onHead: ((error: Error | undefined) => void) | undefined
  private wake: (() => void) | undefined

  /** Body bytes still to come by the Content-Length; undefined: chunked, or until the connection closes. */
  private owed: number | undefined
  /** The body ends when the connection does. */
  private untilClose = false
  private received = 0

  /** `limit`: body bytes past which reading stops (the reader fails on them); undefined: none. */
  constructor(private readonly limit: number | undefined) {}

  onRequestStart(controller: Dispatcher.DispatchController) {
    this.controller = controller
    if (this.abortReason !== undefined) controller.abort(this.abortReason)
  }
  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders) {
    if (this.error !== undefined) return
    this.status = statusCode
    this.headers = headers
    // The framing as undici's parser reads it: Content-Length in bytes on the wire, whatever the encoding.
    const length = header(headers, "content-length")?.trim()
    this.owed = length !== undefined && /^[0-9]+$/.test(length) ? Number(length) : undefined
    this.untilClose = this.owed === undefined && !/chunked/i.test(header(headers, "transfer-encoding") ?? "")
    const h = this.onHead
    this.onHead = undefined
    h?.(undefined)
  }
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer) {
    if (this.error !== undefined) return
    if (this.discarding) {
      this.discarded += chunk.byteLength
      if (this.discarded > DRAIN_MAX) this.abort(new Abort("done"))
      return
    }
    this.chunks.push(chunk)
    this.buffered += chunk.byteLength
    this.received += chunk.byteLength
    if (this.owed !== undefined) this.owed -= chunk.byteLength
    if (this.untilClose) {
      if (this.limit !== undefined && this.received > this.limit) this.abort(new Abort("done"))
    } else if (this.buffered >= PAUSE_AT && this.owed !== 0) controller.pause()
    this.notify()
  }
  onResponseEnd() {
    if (this.error !== undefined) return
    this.ended = true
    this.notify()
  }
  onResponseError(_c: Dispatcher.DispatchController | undefined, err: Error) {
    if (this.error !== undefined || this.ended) return
    this.error = err
    const h = this.onHead
    this.onHead = undefined
    h?.(err)
    this.notify()
  }
  private notify() {
    const w = this.wake
    this.wake = undefined
    w?.()
  }
  /** Abort the request (now, or as soon as it is sent). */
  abort(reason: Error) {
    if (this.ended || this.error !== undefined) return
    if (this.controller !== undefined) this.controller.abort(reason)
    else {
      // Not on a connection yet: it is aborted when it gets one; nobody waits for it meanwhile.
      this.abortReason = reason
      this.onResponseError(undefined, reason)
    }
  }
  /** Read no more of this body: drain a short one so that its connection can be reused. */
  discard() {
    this.chunks = []
    this.buffered = 0
    this.discarding = true
    if (this.controller?.paused) this.controller.resume()
  }
  /** The next body chunk; undefined at the end; throws the request's error. */
  async read(): Promise<Buffer | undefined> {
    for (;;) {
      const c = this.chunks.shift()
      if (c !== undefined) {
        this.buffered -= c.byteLength
        if (this.buffered < RESUME_AT && this.controller?.paused) this.controller.resume()
        return c
      }
      if (this.error !== undefined) throw this.error
      if (this.ended) return undefined
      await new Promise<void>((resolve) => (this.wake = resolve))
    }
  }
}

const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name]
  return Array.isArray(v) ? v[0] : v
}

/** Retry-After: delay-seconds or an HTTP date. */
const retryAfterMs = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

const contentLength = (h: IncomingHttpHeaders): number | undefined => {
  // A length of encoded bytes would say nothing about the decoded ones; we never decode, but a
  // server that ignored our accept-encoding sends bytes that are not the file's.
  const encoding = header(h, "content-encoding")
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") return undefined
  const v = header(h, "content-length")
  if (v === undefined || !/^[0-9]+$/.test(v.trim())) return undefined
  const n = Number(v.trim())
  return Number.isSafeInteger(n) ? n : undefined
}

const codeOf = (e: unknown): string | undefined => {
  const c = (e as { code?: unknown } | null | undefined)?.code
  return typeof c === "string" ? c : undefined
}

/** "connect ECONNREFUSED 127.0.0.1:80 (ECONNREFUSED)": the message, then the code when it adds one. */
const describe = (cause: unknown): string => {
  const msg = cause instanceof Error ? cause.message : String(cause)
  const code = codeOf(cause)
  return code !== undefined && !msg.includes(code) ? `${msg} (${code})` : msg
}

/** TLS failures a retry would only repeat: the certificate does not verify, or the server refused ours. */
const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_OSSL_)/

/** A failure of the request (before or during the body) as an attempt's failure. */
const classify = (err: unknown, opts: { readonly idleMs: number; readonly totalMs: number | undefined; readonly bytes?: number; readonly length?: number | undefined }): AttemptFailure => {
  if (err instanceof Abort && err.why === "total") {
    return new AttemptFailure({ reason: "timeout", detail: `the request took longer than ${opts.totalMs} ms`, retryable: true })
  }
  const code = codeOf(err)
  const after = opts.bytes === undefined ? "" : ` after ${opts.bytes}${opts.length === undefined ? "" : ` of ${opts.length}`} bytes`
  switch (code) {
    case "UND_ERR_HEADERS_TIMEOUT":
      return new AttemptFailure({ reason: "timeout", detail: `no response within ${opts.idleMs} ms`, retryable: true })
    case "UND_ERR_BODY_TIMEOUT":
      return new AttemptFailure({ reason: "timeout", detail: `no data for ${opts.idleMs} ms after ${opts.bytes ?? 0} bytes`, retryable: true })
    case "UND_ERR_CONNECT_TIMEOUT":
      return new AttemptFailure({ reason: "timeout", detail: `could not connect in time (${describe(err)})`, retryable: true, cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  const proxy = /^Proxy response \((\d+)\)/.exec(message)
  if (proxy !== null || message.startsWith("Proxy Authentication Required")) {
    const status = proxy !== null ? Number(proxy[1]) : 407
    return new AttemptFailure({
      reason: "proxy",
      detail: status === 407 ? "the proxy refused the credentials (HTTP 407)" : `the proxy answered HTTP ${status} to CONNECT`,
      status,
      retryable: status >= 500 || status === 429
    })
  }
  if (code !== undefined && TLS_CODES.test(code)) {
    return new AttemptFailure({ reason: "tls", detail: `TLS: ${describe(err)}`, retryable: false, cause: err })
  }
  // A connection closed short of the Content-Length shows up here too (undici: "other side closed").
  return new AttemptFailure({ reason: "network", detail: `${describe(err)}${after}`, retryable: true, cause: err })
}

/** What one attempt holds: the request in flight (aborted when the attempt ends early), its total timer. */
interface AttemptState {
  current: Exchange | undefined
  timedOut: boolean
  timer: NodeJS.Timeout | undefined
}

/**
 * One GET, up to its response head. Plain callbacks rather than a race with a timer fiber: this
 * runs once per file of a sync. Interrupting it aborts the request.
 */
const requestHead = (url: URL, via: Route, state: AttemptState, idleMs: number, totalMs: number | undefined, limits: Limits) =>
  Effect.async<Exchange, AttemptFailure>((resume) => {
    const ex = new Exchange(limits.exact ?? limits.max)
    state.current = ex
    if (totalMs !== undefined && state.timer === undefined) {
      // From the first request of the attempt (not from the wait for the rate limit before it).
      state.timer = setTimeout(() => {
        state.timedOut = true
        state.current?.abort(new Abort("total"))
      }, totalMs)
    }
    ex.onHead = (err) => {
      if (err === undefined) resume(Effect.succeed(ex))
      else resume(Effect.fail(classify(state.timedOut ? new Abort("total") : err, { idleMs, totalMs })))
    }
    const base = limits.accept === undefined ? BASE_HEADERS : { ...BASE_HEADERS, accept: limits.accept }
    const headers = url.origin === via.origin ? { ...base, ...via.headers } : base
    try {
      via.dispatcher.dispatch(
        { origin: url.origin, path: url.pathname + url.search, method: "GET", headers, headersTimeout: idleMs, bodyTimeout: idleMs },
        ex
      )
    } catch (err) {
      ex.onResponseError(undefined, err as Error)
    }
    return Effect.sync(() => ex.abort(new Abort("interrupted")))
  })

/** GET `start`, following up to `maxRedirects` redirects; succeeds with a 200 response only, and the URL that gave it. */
const follow = (start: URL, via: Route, state: AttemptState, opts: RetryOptions, limits: Limits) =>
  Effect.gen(function*() {
    let url = start
    for (let hop = 0;; hop++) {
      if (via.pace !== undefined) yield* via.pace
      const ex = yield* requestHead(url, via, state, opts.timeoutMs, via.totalTimeoutMs, limits)
      const via_ = hop === 0 ? "" : ` (from ${shownUrl(url)} after ${hop} redirect${hop === 1 ? "" : "s"})`
      if (ex.status === 200) return { ex, url }
      ex.discard()
      if (REDIRECTS.has(ex.status)) {
        if (hop >= opts.maxRedirects) {
          return yield* new AttemptFailure({
            reason: "redirect",
            detail: `too many redirects (more than ${opts.maxRedirects})`,
            retryable: false
          })
        }
        const location = header(ex.headers, "location")
        let next: URL | undefined
        try {
          next = location === undefined ? undefined : new URL(location, url)
        } catch {
          next = undefined
        }
        if (next === undefined) {
          return yield* new AttemptFailure({
            reason: "redirect",
            detail: `HTTP ${ex.status} without a valid Location${via_}`,
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
      const status = ex.status
      return yield* new AttemptFailure({
        reason: "http",
        detail: `HTTP ${status}${via_}`,
        status,
        retryable: status >= 500 || status === 429,
        retryAfterMs: status === 429 || status === 503 ? retryAfterMs(header(ex.headers, "retry-after")) : undefined
      })
    }
  })

/** What is asked for, and what the body must be. */
interface Limits {
  /** The body must be exactly this long. */
  readonly exact?: number | undefined
  /** The body may be at most this long. */
  readonly max?: number | undefined
  /** The `accept` header to send (a document with several formats); none by default. */
  readonly accept?: string | undefined
}

/** The response a body belongs to: the URL that answered it (after redirects) and its content type. */
export interface ResponseHead {
  readonly url: string
  readonly contentType: string | undefined
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
 * the first chunk past the limit, and fails at the end on a short body. Its failures are recorded
 * in `state`: the sink may wrap them in its own errors.
 */
const bodyOf = (
  ex: Exchange,
  attempt: AttemptState,
  state: BodyState,
  limits: Limits,
  length: number | undefined,
  idleMs: number,
  totalMs: number | undefined
): AsyncIterable<Uint8Array> => {
  const fail = (f: AttemptFailure): never => {
    state.failure = f
    ex.abort(new Abort("done"))
    throw f
  }
  async function* chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for (;;) {
        let c: Buffer | undefined
        try {
          c = await ex.read()
        } catch (cause) {
          // Aborted from our side (interrupted, or the sink failed): the attempt is over.
          if (cause instanceof Abort && cause.why !== "total") throw cause
          return fail(classify(attempt.timedOut ? new Abort("total") : cause, { idleMs, totalMs, bytes: state.bytes, length }))
        }
        if (c === undefined) break
        state.bytes += c.byteLength
        if (limits.exact !== undefined && state.bytes > limits.exact) {
          fail(new AttemptFailure({ reason: "too_large", detail: `more than the expected ${limits.exact} bytes`, retryable: false }))
        }
        if (limits.max !== undefined && state.bytes > limits.max) {
          fail(new AttemptFailure({ reason: "too_large", detail: `larger than ${limits.max} bytes`, retryable: false }))
        }
        yield c
      }
      if (length !== undefined && state.bytes < length) {
        fail(new AttemptFailure({ reason: "truncated", detail: `body ended after ${state.bytes} of ${length} bytes`, retryable: true }))
      }
      if (limits.exact !== undefined && state.bytes < limits.exact) {
        fail(new AttemptFailure({ reason: "truncated", detail: `body is ${state.bytes} bytes, expected ${limits.exact}`, retryable: true }))
      }
      state.completed = true
    } finally {
      // Stopped early (a failure above, or the sink broke off): close the connection, read no more.
      if (!state.completed) ex.abort(new Abort("done"))
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
  via: Route,
  limits: Limits,
  sink: (body: AsyncIterable<Uint8Array>, head: ResponseHead) => Effect.Effect<A, E, R>,
  opts: RetryOptions
): Effect.Effect<A, E | AttemptFailure | DbError, R> =>
  Effect.acquireUseRelease(
    Effect.sync((): AttemptState => ({ current: undefined, timedOut: false, timer: undefined })),
    (state) =>
      Effect.gen(function*() {
        const { ex, url } = yield* follow(start, via, state, opts, limits)
        const length = contentLength(ex.headers)
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
        const body: BodyState = { started: false, completed: false, bytes: 0, failure: undefined }
        const head = { url: url.href, contentType: header(ex.headers, "content-type") }
        const out = yield* sink(bodyOf(ex, state, body, limits, length, opts.timeoutMs, via.totalTimeoutMs), head).pipe(
          // However the sink reported it (its own error, a defect), a failure of the body is ours.
          Effect.catchAllCause((cause): Effect.Effect<never, E | AttemptFailure> =>
            body.failure !== undefined && !Cause.isInterruptedOnly(cause)
              ? Effect.fail(body.failure)
              : Effect.failCause(cause)
          )
        )
        if (!body.completed) {
          // The size checks run at the end of the body: a sink that stops early would skip them.
          return yield* Effect.dieMessage(`download sink for ${shownUrl(start)} returned without reading the whole body`)
        }
        return out
      }),
    (state, exit) =>
      Effect.sync(() => {
        clearTimeout(state.timer)
        // A request read to its end has nothing to close (its connection goes back to the pool).
        if (exit._tag === "Failure") state.current?.abort(new Abort("interrupted"))
      })
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
  sink: (body: AsyncIterable<Uint8Array>, head: ResponseHead) => Effect.Effect<A, E, R>,
  opts: RetryOptions,
  relativePath: string | undefined
): Effect.Effect<A, E | DownloadError | RemoteUrlError | DbError, R> =>
  Effect.gen(function*() {
    const start = yield* checkRemoteUrl(url)
    const via = opts.via ?? defaultRoute()
    let attempts = 0
    const once = Effect.suspend(() => {
      attempts++
      return attempt(start, via, limits, sink, opts)
    }).pipe(
      Effect.tapError((e) =>
        isAttemptFailure(e) && e.retryable
          ? Effect.logDebug(`GET ${shownUrl(start)} attempt ${attempts} failed: ${e.detail}`)
          : Effect.void
      )
    )
    const retryable = (e: unknown): e is AttemptFailure => isAttemptFailure(e) && e.retryable
    // The retry schedule (and its driver) only once an attempt failed: nearly every download
    // succeeds at once, and a sync makes one per file. The schedule is handed that first failure
    // again, so it delays and counts exactly as a retry of the whole would.
    const retried = (first: AttemptFailure) => {
      let replay = true
      return Effect.suspend(() => {
        if (!replay) return once
        replay = false
        return Effect.fail(first)
      }).pipe(
        Effect.retry({ schedule: retrySchedule(opts), while: retryable })
      )
    }
    return yield* once.pipe(
      Effect.catchIf(retryable, retried),
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
    ) as Effect.Effect<A, E | DownloadError | DbError, R>
  })

/**
 * A file whose size the upstream does not announce (a simple index's HTML page lists digests, not
 * sizes) is read up to this many bytes; its digest still decides whether it is kept.
 */
export const UNSIZED_MAX_BYTES = 16 * 1024 * 1024 * 1024

/**
 * Download `url`, a file of `expected.size` bytes (or at most UNSIZED_MAX_BYTES when the size is
 * not known), into `sink`. The sink gets the body as an
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
  expected: { readonly size: number | undefined; readonly sha256: string },
  sink: (body: AsyncIterable<Uint8Array>) => Effect.Effect<A, E, R>,
  opts: DownloadOptions
): Effect.Effect<A, E | DownloadError | RemoteUrlError | DbError, R> =>
  get(url, expected.size === undefined ? { max: UNSIZED_MAX_BYTES } : { exact: expected.size }, sink, opts, opts.relativePath)

/** A fetched document: its bytes, and the response they came with. */
export interface FetchedDocument extends ResponseHead {
  readonly body: Uint8Array
}

/**
 * A document of at most `maxBytes` (an index page), with the same retries as `download`, asking
 * for the formats `accept` lists; its bytes as they came, the URL that answered and the content
 * type it declared, so that the caller parses what the server chose.
 */
export const fetchDocument = (
  url: string,
  opts: FetchTextOptions & { readonly accept?: string | undefined }
): Effect.Effect<FetchedDocument, DownloadError | RemoteUrlError | DbError> =>
  get(
    url,
    { max: opts.maxBytes, accept: opts.accept },
    (body, head) =>
      Effect.tryPromise({
        try: async () => {
          const parts: Array<Uint8Array> = []
          for await (const chunk of body) parts.push(chunk)
          return { ...head, body: new Uint8Array(Buffer.concat(parts)) }
        },
        // Only the body's own failures can get here, and `attempt` substitutes those.
        catch: (cause) => new AttemptFailure({ reason: "network", detail: describe(cause), retryable: true, cause })
      }),
    {
      timeoutMs: opts.timeoutMs,
      retries: opts.retries ?? 3,
      maxRedirects: opts.maxRedirects ?? 5,
      backoffMs: opts.backoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      via: opts.via
    },
    undefined
  ) as Effect.Effect<FetchedDocument, DownloadError | RemoteUrlError | DbError>

/** A text document (a manifest), UTF-8, at most `maxBytes`, with the same retries as `download`. */
export const fetchText = (url: string, opts: FetchTextOptions): Effect.Effect<string, DownloadError | RemoteUrlError | DbError> =>
  fetchDocument(url, opts).pipe(
    Effect.flatMap((doc) =>
      Effect.try({
        try: () => new TextDecoder("utf-8", { fatal: true }).decode(doc.body),
        catch: () =>
          new DownloadError({
            message: `GET ${shownUrl(new URL(doc.url))} failed after 1 attempt: the body is not valid UTF-8`,
            url: shownUrl(new URL(doc.url)),
            attempts: 1,
            reason: "content"
          })
      })
    )
  )
