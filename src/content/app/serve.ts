/**
 * `GET|HEAD /content/{base_path}/{relative_path}`: find the file in the routing table, answer the
 * conditional and range headers, make sure an on-demand file is stored, and stream it from the
 * artifact store (by digest: nothing from the request ever becomes a filesystem path).
 *
 * Everything that can be answered from the routing table is: HEAD, 304 and 416 never fetch an
 * on-demand file nor open a stored one.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { ArtifactStorage } from "../storage.js"
import { etagOf, noneMatch, rangeRequest } from "./http.js"
import { countResponse } from "./metrics.js"
import { OnDemand } from "./on-demand.js"
import { contentSegments } from "./paths.js"
import { MANIFEST_PATH, RoutingTable } from "./routing-table.js"

/** The contract's error body. */
const failure = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status, headers })

const notFound = (message: string) => failure(404, "not_found", message)

export const makeContentHandler = Effect.gen(function*() {
  const table = yield* RoutingTable
  const onDemand = yield* OnDemand
  const storage = yield* ArtifactStorage

  const serve = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const segments = contentSegments(request.url)
      if (segments === undefined) return notFound("not a valid content path")
      const route = yield* table.route(segments)
      if (route === undefined) return notFound("nothing is served at this path")
      if (route.publicationId === null) return notFound(`the distribution at ${route.basePath} serves no publication yet`)
      const file = (yield* table.publication(route.publicationId)).get(route.relativePath)
      if (file === undefined) return notFound(`${route.basePath} has no file ${route.relativePath}`)

      const etag = etagOf(file.sha256)
      const headers: Record<string, string> = {
        etag,
        "accept-ranges": "bytes",
        "content-type": route.relativePath === MANIFEST_PATH ? "text/plain; charset=utf-8" : "application/octet-stream"
      }
      if (noneMatch(request.headers["if-none-match"], etag)) return HttpServerResponse.empty({ status: 304, headers })

      const wanted = rangeRequest(request.headers["range"], request.headers["if-range"], etag, file.size)
      if (wanted._tag === "Unsatisfiable") {
        return failure(416, "range_not_satisfiable", `the range is outside the file's ${file.size} bytes`, {
          ...headers,
          "content-range": `bytes */${file.size}`
        })
      }
      const range = wanted._tag === "Partial" ? wanted.range : undefined
      const status = range === undefined ? 200 : 206
      headers["content-length"] = String(range === undefined ? file.size : range.end - range.start + 1)
      if (range !== undefined) headers["content-range"] = `bytes ${range.start}-${range.end}/${file.size}`
      if (request.method === "HEAD") return HttpServerResponse.empty({ status, headers })

      yield* onDemand.ensureStored(file)
      // The server pipes the stream into the response and destroys it if the client goes away.
      const body = yield* storage.open(file.sha256, range)
      return HttpServerResponse.raw(body, { status, headers })
    }).pipe(
      Effect.catchTags({
        UpstreamUnavailable: (e) => Effect.succeed(failure(502, "bad_gateway", e.message)),
        DbError: (e) =>
          Effect.as(
            Effect.logWarning(`content app: database error: ${e.message}`),
            failure(503, "unavailable", "the database is unavailable")
          )
      }),
      // The store failed, or lost a file the database says it holds: not the client's doing.
      Effect.catchAll((e) =>
        Effect.as(Effect.logError(`content app: ${e.message}`), failure(500, "internal", "the file could not be read"))
      )
    )

  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.tap(serve(request), (response) =>
      countResponse(
        request.method,
        response.status,
        request.method === "HEAD" ? 0 : Number(response.headers["content-length"] ?? 0)
      )))
})
