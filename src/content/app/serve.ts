/**
 * `GET|HEAD /content/{base_path}/{relative_path}`: find the file in the routing table, answer the
 * conditional and range headers, make sure an on-demand file is stored, and send it from memory
 * (small files, `body-cache.ts`) or stream it from the artifact store (by digest: nothing from the
 * request ever becomes a filesystem path).
 *
 * Everything that can be answered from the routing table is: HEAD, 304 and 416 never fetch an
 * on-demand file nor open a stored one. With CAIRN_CONTENT_REDIRECT (an object store), a GET of a
 * stored artifact is answered with a 302 to a presigned URL of it instead of its bytes; generated
 * files (a manifest, index pages) are still served here.
 *
 * Nothing a distribution serves ever goes missing under it (DESIGN.md §19: the distribution holds
 * its publication, which holds the rest), but two things can be gone by the time a request looks:
 * the bytes of a file that orphans.cleanup demoted (`reclaim`: they are fetched again, as for an
 * on-demand remote), and, under a route a moment old, a publication the distribution has just moved
 * away from and that was reclaimed since (the request routes again after the notification barrier).
 * Either way the request is answered once more, never with a 404 or a 500 for a file that is served.
 *
 * A guarded distribution's request (`guard-check.ts`) is checked as soon as its route is known and
 * before anything else is looked at: the file list (a refused request learns nothing of which files
 * exist), the etag, 304, HEAD, ranges, the shared body cache, an on-demand fetch, a redirect. Its
 * answers are `cache-control: private, no-cache`: no shared HTTP cache may keep them, and a
 * client's own cache asks again (and is checked again) before using what it kept.
 *
 * This is a plain Node request handler, not an HttpApi route: the listener hands it content
 * requests before the Effect app sees them (`src/api/listener.ts`). A request for a small file whose
 * publication is loaded and whose bytes are cached — the steady state — is answered synchronously,
 * with no fiber, no router, no middleware and no I/O: that per-request machinery cost ~20x what the
 * answer itself costs. Only the rare steps (waiting for the first routing load, loading a
 * publication, an on-demand fetch, reading a file) run as Effects, on the layer's runtime.
 */
import { Cause, Effect, Exit, Runtime } from "effect"
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http"
import { pipeline } from "node:stream/promises"
import { CairnConfig } from "../../config/config.js"
import { DbError } from "../../db/client.js"
import { ArtifactStorage, type ByteRange, NotStored } from "../storage.js"
import { makeBodyCache } from "./body-cache.js"
import { GuardRefusal, guardRefusal, signedExpiry } from "./guard-check.js"
import { etagOf, noneMatch, rangeRequest } from "./http.js"
import { countResponse } from "./metrics.js"
import { OnDemand, UpstreamUnavailable } from "./on-demand.js"
import { contentSegments } from "./paths.js"
import { makeBodyReader } from "./read-body.js"
import { negotiate } from "./negotiate.js"
import { type FileEntry, NOT_CURRENT, PublicationGone, type PublicationFiles, type Route, RoutingTable } from "./routing-table.js"

/** The stored bytes of a file are not there (demoted, or reclaimed under a route a moment old). */
const bytesGone = (e: unknown) => e instanceof NotStored || (e as NodeJS.ErrnoException | undefined)?.code === "ENOENT"

/** What a request found: its route, the file (the variant `accept` chose), and whether there was a choice. */
interface Located {
  readonly route: Route
  readonly file: FileEntry
  readonly negotiated: boolean
}

export type ContentRequestHandler = (req: IncomingMessage, res: ServerResponse) => void

/** A unit's content-type (a generated file has its own: `FileEntry.mediaType`). */
const FILE_TYPE = "application/octet-stream"

export const makeContentHandler = Effect.gen(function*() {
  const table = yield* RoutingTable
  const onDemand = yield* OnDemand
  const storage = yield* ArtifactStorage
  const config = yield* CairnConfig
  const runtime = yield* Effect.runtime<never>()
  const cache = makeBodyCache(config.contentCacheBytes)
  /** CAIRN_CONTENT_REDIRECT: stored artifacts (not generated files) are answered with a 302 to the store. */
  const redirectSeconds = config.contentRedirectSeconds

  /** Run one of the rare steps; a failure rejects with its error (or defect) as is. */
  const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
    Runtime.runPromiseExit(runtime)(effect).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    })
  const log = (effect: Effect.Effect<void>) => void Runtime.runFork(runtime)(effect)

  const readBody = makeBodyReader(storage, run)

  const reply = (req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body?: Buffer) => {
    countResponse(req.method!, status, req.method === "HEAD" ? 0 : Number(headers["content-length"] ?? 0))
    if (res.destroyed) return
    res.writeHead(status, headers)
    res.end(req.method === "HEAD" ? undefined : body)
  }

  /** The contract's error body. */
  const failure = (req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string, headers: OutgoingHttpHeaders = {}) => {
    const body = Buffer.from(JSON.stringify({ error: { code, message } }))
    reply(req, res, status, { ...headers, "content-type": "application/json", "content-length": body.length }, body)
  }

  const notFound = (req: IncomingMessage, res: ServerResponse, message: string) => failure(req, res, 404, "not_found", message)

  /**
   * How long a redirect's presigned URL lives: CAIRN_CONTENT_REDIRECT_SECONDS, but never past the
   * expiry of the signed URL it answers (the store's URL would otherwise outlive cairn's).
   */
  const presignedSeconds = (route: Route, req: IncomingMessage): number => {
    const expires = route.guard?.type === "signed" ? signedExpiry(req.url ?? "") : undefined
    if (expires === undefined) return redirectSeconds!
    return Math.max(1, Math.min(redirectSeconds!, Math.ceil(expires - Date.now() / 1000)))
  }

  /** Why `route` leads to no file for this request (nothing there, refused, nothing published yet), if it does not. */
  const routeProblem = (req: IncomingMessage, route: Route | undefined): GuardRefusal | string | undefined => {
    if (route === undefined) return "nothing is served at this path"
    if (route.guard !== undefined) {
      const refused = guardRefusal(route.guard, route, req, Date.now())
      if (refused !== undefined) return refused
    }
    if (route.publicationId === null) return `the distribution at ${route.basePath} serves no publication yet`
    return undefined
  }

  const fileIn = (req: IncomingMessage, route: Route, files: PublicationFiles): Located | string => {
    const file = files.get(route.relativePath)
    if (file === undefined) return `${route.basePath} has no file ${route.relativePath}`
    return { route, file: negotiate(file, req.headers.accept), negotiated: file.variants !== undefined }
  }

  type Found = Located | GuardRefusal | string

  /**
   * `locate` from memory alone: undefined when it would have to wait (the table stale or not
   * loaded, the publication not loaded). The steady state, answered without a promise.
   */
  const locateNow = (req: IncomingMessage, segments: ReadonlyArray<string>): Found | undefined => {
    const route = table.routeNow(segments)
    if (route === NOT_CURRENT) return undefined
    const problem = routeProblem(req, route)
    if (problem !== undefined) return problem
    const files = table.cachedPublication(route!.publicationId!)
    return files === undefined ? undefined : fileIn(req, route!, files)
  }

  /**
   * The file at `segments`, or why there is none, or why this request may not have it. With
   * `recheck`, the routing table first catches up with every distribution change committed before
   * now (see `routing-table.ts`).
   */
  const locate = async (req: IncomingMessage, segments: ReadonlyArray<string>, recheck: boolean): Promise<Found> => {
    const now = recheck ? NOT_CURRENT : table.routeNow(segments)
    const route = now === NOT_CURRENT ? await run(table.route(segments, recheck)) : now
    const problem = routeProblem(req, route)
    if (problem !== undefined) return problem
    const files = table.cachedPublication(route!.publicationId!) ?? await run(table.publication(route!.publicationId!))
    return fileIn(req, route!, files)
  }

  /** `now`: what `locateNow` found, if it found anything. */
  const serve = async (req: IncomingMessage, res: ServerResponse, segments: ReadonlyArray<string>, now: Found | undefined): Promise<void> => {
    // A miss or a refusal is checked again against every change committed before the request: the
    // client may have just been told that the distribution it asks for was set, or its guard changed.
    let found: Found = now ?? await locate(req, segments, false).catch((e) => (e instanceof PublicationGone ? "gone" : Promise.reject(e)))
    if (typeof found === "string" || found instanceof GuardRefusal) found = await locate(req, segments, true)
    if (typeof found === "string") return notFound(req, res, found)
    if (found instanceof GuardRefusal) return failure(req, res, found.status, found.code, found.message, found.headers)
    return answerFound(req, res, segments, found)
  }

  /** `answer`, and once more after routing again if the file's bytes turn out to be gone. */
  const answerFound = (req: IncomingMessage, res: ServerResponse, segments: ReadonlyArray<string>, first: Located): void | Promise<void> => {
    let answered: void | Promise<void>
    try {
      answered = answer(req, res, first)
    } catch (e) {
      answered = Promise.reject(e)
    }
    return answered?.catch(async (e) => {
      if (!bytesGone(e) || res.headersSent) throw e
      // Route again, after every change committed before now; the bytes of a file still served
      // were demoted: fetch them again (the on-demand path).
      const again = await locate(req, segments, true)
      if (typeof again === "string") return notFound(req, res, again)
      if (again instanceof GuardRefusal) return failure(req, res, again.status, again.code, again.message, again.headers)
      if (again.file === first.file) again.file.stored = false
      return answer(req, res, again)
    })
  }

  /** Answers synchronously when it can (a small file whose bytes are cached), else with a promise. */
  const answer = (req: IncomingMessage, res: ServerResponse, { route, file, negotiated }: Located): void | Promise<void> => {
    const etag = etagOf(file.sha256)
    const headers: OutgoingHttpHeaders = {
      etag,
      "accept-ranges": "bytes",
      "content-type": file.mediaType ?? FILE_TYPE
    }
    // A path with alternatives (negotiate.ts) answers by `accept`: caches must key on it.
    if (negotiated) headers["vary"] = "accept"
    if (route.guard !== undefined) headers["cache-control"] = "private, no-cache"
    if (noneMatch(req.headers["if-none-match"], etag)) return reply(req, res, 304, headers)

    const wanted = rangeRequest(req.headers["range"], req.headers["if-range"] as string | undefined, etag, file.size)
    if (wanted._tag === "Unsatisfiable") {
      return failure(req, res, 416, "range_not_satisfiable", `the range is outside the file's ${file.size} bytes`, {
        ...headers,
        "content-range": `bytes */${file.size}`
      })
    }
    const range = wanted._tag === "Partial" ? wanted.range : undefined
    const status = range === undefined ? 200 : 206
    headers["content-length"] = range === undefined ? file.size : range.end - range.start + 1
    if (range !== undefined) headers["content-range"] = `bytes ${range.start}-${range.end}/${file.size}`
    if (req.method === "HEAD") return reply(req, res, status, headers)
    const cached = file.stored && (redirectSeconds === undefined || file.contentId === undefined) && file.size <= cache.maxEntryBytes
    return cached ? sendCached(req, res, file, status, headers, range) : send(req, res, route, file, status, headers, range)
  }

  /** A small file's body from the cache: synchronously when it is there. */
  const sendCached = (req: IncomingMessage, res: ServerResponse, file: FileEntry, status: number, headers: OutgoingHttpHeaders, range: ByteRange | undefined) => {
    const loaded = cache.load(file.sha256, () => readBody(file.sha256, file.size))
    const respond = (body: Buffer) => reply(req, res, status, headers, range === undefined ? body : body.subarray(range.start, range.end + 1))
    return Buffer.isBuffer(loaded) ? respond(loaded) : (loaded as Promise<Buffer>).then(respond)
  }

  /** The body of a GET that is not a cached small file: fetched on demand, redirected, read or streamed. */
  const send = async (
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    file: FileEntry,
    status: number,
    headers: OutgoingHttpHeaders,
    range: ByteRange | undefined
  ): Promise<void> => {
    if (!file.stored) await run(onDemand.ensureStored(file))
    const etag = headers["etag"] as string
    if (redirectSeconds !== undefined && file.contentId !== undefined) {
      // The object store serves the bytes (ranges too: the client sends its Range again to the
      // location). The URL is signed here, with no round trip; it must not outlive its signature
      // in a cache.
      const location = await run(storage.presignedUrl(file.sha256, presignedSeconds(route, req)))
      if (location !== undefined) {
        return reply(req, res, 302, { location, etag, "cache-control": "no-store", "content-length": 0 })
      }
    }
    if (file.size <= cache.maxEntryBytes) return sendCached(req, res, file, status, headers, range)
    const stream = await run(storage.open(file.sha256, range))
    if (res.destroyed) return void stream.destroy()
    countResponse(req.method!, status, Number(headers["content-length"]))
    res.writeHead(status, headers)
    // Backpressure: the file is read as fast as the client takes it; if the client goes away,
    // the pipeline destroys the file stream (closing its descriptor).
    await pipeline(stream, res).catch(() => undefined)
  }

  /** What a failed step answers: the contract's error body, or a cut connection once the headers are out. */
  const fail = (req: IncomingMessage, res: ServerResponse, e: unknown) => {
    if (res.headersSent) return void res.destroy()
    if (e instanceof UpstreamUnavailable) return failure(req, res, 502, "bad_gateway", e.message)
    if (e instanceof DbError) {
      log(Effect.logWarning(`content app: database error: ${e.message}`))
      return failure(req, res, 503, "unavailable", "the database is unavailable", { "retry-after": "2" })
    }
    // The store failed, or lost a file the database says it holds: not the client's doing.
    log(Effect.logError(`content app: ${e instanceof Error ? e.message : String(e)}`))
    failure(req, res, 500, "internal", "the file could not be read")
  }

  const handler: ContentRequestHandler = (req, res) => {
    const segments = contentSegments(req.url ?? "")
    if (segments === undefined) return notFound(req, res, "not a valid content path")
    // The steady state (a file found from memory) is answered here, without a promise if its bytes
    // are cached; everything else (misses, refusals, loads) goes through `serve`.
    const now = locateNow(req, segments)
    const done = typeof now === "object" && !(now instanceof GuardRefusal) ? answerFound(req, res, segments, now) : serve(req, res, segments, now)
    done?.catch((e) => fail(req, res, e))
  }
  return handler
})
