/**
 * The server's side of `Authorization` (`auth.ts`, which the API definition and so the client
 * import, and which therefore holds no server code): bearer tokens checked against
 * CAIRN_API_TOKENS.
 */
import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { CairnConfig } from "../config/config.js"
import { Authorization } from "./auth.js"
import { Unauthorized } from "./errors.js"

/**
 * Tokens are compared as SHA-256 digests with timingSafeEqual: constant time whatever the length
 * of the presented token, and every configured token is compared (no early exit on a match).
 */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const digest = (s: string) => createHash("sha256").update(s).digest()
    const tokens = config.apiTokens.map((t) => digest(Redacted.value(t)))
    if (tokens.length === 0) yield* Effect.logWarning("no CAIRN_API_TOKENS configured: the API is open to anyone who can reach it")
    return {
      // The platform hands over the header minus its first 7 characters, whatever they were: the
      // scheme is checked here ("Token: <token>" is not "Bearer <token>").
      bearer: (presented: Redacted.Redacted<string>) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          if (tokens.length === 0) return Effect.void
          const p = digest(Redacted.value(presented))
          let ok = false
          for (const t of tokens) ok = timingSafeEqual(p, t) || ok
          ok = ok && /^bearer /i.test(request.headers["authorization"] ?? "")
          return ok ? Effect.void : Effect.fail(new Unauthorized({ message: "a valid bearer token is required (authorization: Bearer <token>)" }))
        })
    }
  })
)
