/**
 * The contract's error body for what the platform would otherwise answer its own way: Schema
 * decode failures, unreadable or refused bodies, unknown routes. Also where every request's body,
 * if an endpoint reads one, goes through `limitBody` (JSON only, size and depth limits, strict
 * UTF-8).
 */
import { HttpApiBuilder, HttpApiError, HttpApp, HttpMethod, HttpServerError, HttpServerRequest } from "@effect/platform"
import { Cause, type Context, Effect, Redacted } from "effect"
import { CairnConfig } from "../config/config.js"
import { Authorization } from "./auth.js"
import { CairnApi } from "./definition.js"
import { BadRequest, NotFoundError } from "./errors.js"
import { limitBody } from "./request-body.js"

/**
 * The contract's error for a failure of the platform's. (The router's static error type is
 * `never`; these arrive at run time.) An unknown route under /api/v1 needs a token like any other
 * (401 before 404).
 */
const toContractError = (e: unknown, auth: Context.Tag.Service<Authorization>): Effect.Effect<never, unknown> => {
  if (e instanceof HttpApiError.HttpApiDecodeError) {
    const issues = e.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }))
    // Keyed by client-chosen node names: no prototype.
    const nodes: Record<string, Array<string>> = Object.create(null)
    for (const i of e.issues) {
      if (i.path[0] === "nodes" && i.path.length > 1) {
        ;(nodes[String(i.path[1])] ??= []).push(`${i.path.slice(2).map(String).join(".") || "node"}: ${i.message}`)
      }
    }
    const first = issues[0]
    return Effect.fail(new BadRequest({
      message: first ? `invalid request: ${first.path ? `${first.path}: ` : ""}${first.message}` : e.message,
      details: Object.keys(nodes).length > 0 ? { issues, nodes } : { issues }
    }))
  }
  if (HttpServerError.isServerError(e) && e._tag === "RequestError") {
    return Effect.fail(new BadRequest({ message: `the request body could not be read as JSON${e.description ? `: ${e.description}` : ""}` }))
  }
  if (HttpServerError.isServerError(e) && e._tag === "RouteNotFound") {
    const notFound = Effect.fail(new NotFoundError({ message: `no route for ${e.request.method} ${e.request.url}` }))
    const path = e.request.url.split("?")[0]!
    if (path !== "/api/v1" && !path.startsWith("/api/v1/")) return notFound
    // What HttpApiSecurity.bearer hands the Authorization middleware.
    const token = Redacted.make((e.request.headers["authorization"] ?? "").slice("Bearer ".length))
    // The check's one requirement, the request, is in this request's context.
    return Effect.zipRight(auth.bearer(token) as Effect.Effect<void, unknown>, notFound)
  }
  return Effect.fail(e)
}

/** The middleware: bodies through `limitBody`, every failure with the contract's body. */
export const ContractErrors = HttpApiBuilder.middleware(
  CairnApi,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const auth = yield* Authorization
    return (app: HttpApp.Default) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        HttpMethod.hasBody(request.method)
          ? Effect.provideService(app, HttpServerRequest.HttpServerRequest, limitBody(request, config.bodyMaxBytes))
          : app).pipe(
          Effect.catchAllCause(
            // Some of these arrive as defects (an unreadable or refused body), so look at the whole cause.
            (cause) => Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : toContractError(Cause.squash(cause), auth)
          )
        ) as unknown as typeof app
  })
)
