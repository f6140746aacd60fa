/**
 * `Retry-After` on the refusals that ask the client to come back: 429 (its long-polls are at the
 * per-client limit; one answers within a minute at most, usually sooner) and 503 (the database is
 * away; the server reconnects by itself). A pre-response handler, because the server writes the
 * response (errors included, encoded with the contract's body) before a serve middleware returns.
 * (The content app, outside the HttpApi app, sets its own on its 503.)
 */
import { HttpApp, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"

const RETRY_AFTER_SECONDS: Partial<Record<number, string>> = { 429: "1", 503: "2" }

export const withRetryAfter = (app: HttpApp.Default): HttpApp.Default =>
  HttpApp.withPreResponseHandler(app, (_request, response) => {
    const seconds = RETRY_AFTER_SECONDS[response.status]
    return Effect.succeed(seconds === undefined ? response : HttpServerResponse.setHeader(response, "retry-after", seconds))
  })
