/**
 * The content app's side of content guards (src/content/guards.ts): does a request carry what its
 * distribution's guard asks for? Decided from the request and the route alone (the guard travels
 * with the routing table), so a guarded request costs no database query, like any other.
 *
 * - token: `authorization: Bearer <token>`, or `Basic` with the token as the password (what pip and
 *   browsers send for `https://user:token@host/...`). Missing or wrong: 401 with a
 *   `www-authenticate` challenge for both schemes.
 * - signed: `?expires=<unix seconds>&signature=<hex>` whose MAC covers this distribution, this
 *   relative path and that expiry, with `expires` still in the future by the server's clock.
 *   Anything else: 403 (there is nothing a client could add to the request: it needs another URL).
 *   Each parameter must appear once, so that no two parsers can read different values from one URL.
 */
import { timingSafeEqual } from "node:crypto"
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http"
import { type ContentGuard, signatureOf, tokenMatches } from "../guards.js"
import type { Route } from "./routing-table.js"

export class GuardRefusal {
  constructor(
    readonly status: 401 | 403,
    readonly code: "unauthorized" | "forbidden",
    readonly message: string,
    readonly headers: OutgoingHttpHeaders = {}
  ) {}
}

const EXPIRES = /^\d{1,15}$/
const SIGNATURE = /^[0-9a-fA-F]{64}$/

/** The token a request presents: a bearer token, or a basic password. */
const presentedToken = (authorization: string | undefined): string | undefined => {
  if (authorization === undefined) return undefined
  const space = authorization.indexOf(" ")
  if (space < 0) return undefined
  const scheme = authorization.slice(0, space).toLowerCase()
  const credentials = authorization.slice(space + 1).trim()
  if (scheme === "bearer") return credentials
  if (scheme !== "basic") return undefined
  const decoded = Buffer.from(credentials, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon < 0 ? undefined : decoded.slice(colon + 1)
}

const challenge = (route: Route, error?: string) =>
  `Bearer realm="${route.basePath}"${error === undefined ? "" : `, error="${error}"`}, Basic realm="${route.basePath}"`

const checkToken = (digests: ReadonlyArray<Buffer>, route: Route, req: IncomingMessage): GuardRefusal | undefined => {
  const token = presentedToken(req.headers["authorization"])
  if (token === undefined) {
    return new GuardRefusal(401, "unauthorized", `the content at ${route.basePath} needs a token: authorization: Bearer <token>, or basic auth with the token as the password`, {
      "www-authenticate": challenge(route)
    })
  }
  if (tokenMatches(digests, token)) return undefined
  return new GuardRefusal(401, "unauthorized", `the token is not one of those that may read ${route.basePath}`, {
    "www-authenticate": challenge(route, "invalid_token")
  })
}

/** The `expires` and `signature` of a request's query, each exactly once, else undefined. */
const signedParams = (url: string): { expires: string; signature: string } | undefined => {
  const q = url.indexOf("?")
  if (q < 0) return undefined
  const hash = url.indexOf("#", q)
  const params = new URLSearchParams(url.slice(q + 1, hash < 0 ? undefined : hash))
  const expires = params.getAll("expires")
  const signature = params.getAll("signature")
  return expires.length === 1 && signature.length === 1 ? { expires: expires[0]!, signature: signature[0]! } : undefined
}

/** The expiry (unix seconds) a request's signed URL carries, unchecked; undefined without one. */
export const signedExpiry = (url: string): number | undefined => {
  const p = signedParams(url)
  return p === undefined || !EXPIRES.test(p.expires) ? undefined : Number(p.expires)
}

const checkSignature = (key: Buffer, distributionId: string, route: Route, req: IncomingMessage, nowMs: number): GuardRefusal | undefined => {
  const p = signedParams(req.url ?? "")
  if (p === undefined) {
    return new GuardRefusal(403, "forbidden", `the content at ${route.basePath} is served to signed URLs only (expires and signature, each once)`)
  }
  if (!EXPIRES.test(p.expires) || !SIGNATURE.test(p.signature)) {
    return new GuardRefusal(403, "forbidden", "the signed URL is malformed: expires must be unix seconds and signature 64 hexadecimal digits")
  }
  const expires = Number(p.expires)
  const expected = signatureOf(key, distributionId, route.relativePath, expires)
  if (!timingSafeEqual(expected, Buffer.from(p.signature, "hex"))) {
    return new GuardRefusal(403, "forbidden", "the signature does not match this path and expiry")
  }
  if (expires * 1000 <= nowMs) {
    return new GuardRefusal(403, "forbidden", `the signed URL expired at ${new Date(expires * 1000).toISOString()}`)
  }
  return undefined
}

/** Why `req` may not read `route` (guarded by `guard`), or undefined when it may. */
export const guardRefusal = (guard: ContentGuard, route: Route, req: IncomingMessage, nowMs: number): GuardRefusal | undefined =>
  guard.type === "token" ? checkToken(guard.digests, route, req) : checkSignature(guard.key, guard.distributionId, route, req, nowMs)
