/**
 * The server's side of `Authorization` (`auth.ts`, which the API definition and so the client
 * import, and which therefore holds no server code): bearer tokens checked against
 * CAIRN_API_TOKENS, and their scope against the request's method.
 */
import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { CairnConfig } from "../config/config.js"
import { Authorization } from "./auth.js"
import { Forbidden, Unauthorized } from "./errors.js"

/** What a `:read` token may do: read. Long-polls are GETs. */
const READING = new Set(["GET", "HEAD"])

/**
 * Tokens are compared as SHA-256 digests with timingSafeEqual: constant time whatever the length
 * of the presented token, and every configured token is compared (no early exit on a match, and
 * the scope is gathered without branching on which one matched).
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const digest = (s: string) => createHash("sha256").update(s).digest()
    const tokens = config.apiTokens.map((t) => ({ digest: digest(Redacted.value(t.token)), all: t.scope === "all" }))
    if (tokens.length === 0) yield* Effect.logWarning("no CAIRN_API_TOKENS configured: the API is open to anyone who can reach it")
    return {
      // The platform hands over the header minus its first 7 characters, whatever they were: the
      // scheme is checked here ("Token: <token>" is not "Bearer <token>").
      bearer: (presented: Redacted.Redacted<string>) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request): Effect.Effect<void, Unauthorized | Forbidden> => {
          if (tokens.length === 0) return Effect.void
          const p = digest(Redacted.value(presented))
          let known = false
          let mayWrite = false
          for (const t of tokens) {
            const same = timingSafeEqual(p, t.digest)
            known = same || known
            mayWrite = (same && t.all) || mayWrite
          }
          if (!known || !/^bearer /i.test(request.headers["authorization"] ?? "")) {
            return Effect.fail(new Unauthorized({ message: "a valid bearer token is required (authorization: Bearer <token>)" }))
          }
          if (mayWrite || READING.has(request.method)) return Effect.void
          return Effect.fail(new Forbidden({ message: `this token may only read (GET); ${request.method} needs a token without :read` }))
        })
    }
  })
)
