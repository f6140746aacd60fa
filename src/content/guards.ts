/**
 * Content guards: who may read a distribution's content (DESIGN.md §12, "Content guards").
 *
 * A guard is a field of a distribution revision, copy-on-write like the base path:
 *
 * - `{ type: "token", tokens }`: a content request must carry one of the tokens, as
 *   `authorization: Bearer <token>` or as the password of `authorization: Basic`. The revision
 *   stores each token's SHA-256 digest, never the token: the database, its backups and the API
 *   (which shows `token_count`) hold nothing a request could present.
 * - `{ type: "signed" }`: a content request must carry `?expires=<unix seconds>&signature=<hex>`,
 *   an HMAC-SHA256 (`signature`) made by `POST /api/v1/distributions/{name}/sign`. The key is
 *   32 random bytes drawn when the guard is given and stored in the revision: every API and content
 *   process reads the same row, so the key is the same cluster-wide with nothing to configure;
 *   giving the guard again (PATCH) draws a new key, which is how a key is rotated (every URL signed
 *   with the old one stops working); any other change of the distribution carries it over.
 *
 * This module is the part both sides share: the shapes (request, stored, shown), the digests and
 * the MAC. The content app's side (reading the request) is `app/guard-check.ts`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"

/** What a create or PATCH gives. */
export type GuardInput =
  | { readonly type: "token"; readonly tokens: ReadonlyArray<string> }
  | { readonly type: "signed" }

/** What `distribution_revisions.guard` holds (jsonb). Never returned by the API. */
export type StoredGuard =
  | { readonly type: "token"; readonly sha256: ReadonlyArray<string> }
  | { readonly type: "signed"; readonly key: string }

/** What the API shows: that a guard is set, never its secrets. */
export type GuardView =
  | { readonly type: "token"; readonly token_count: number }
  | { readonly type: "signed" }

/** A stored guard ready for the content app's per-request check (decoded once, when routes load). */
export type ContentGuard =
  | { readonly type: "token"; readonly digests: ReadonlyArray<Buffer> }
  | { readonly type: "signed"; readonly key: Buffer; readonly distributionId: string }

export const MAX_GUARD_TOKENS = 100
/** Visible ASCII without spaces: what fits a bearer header and a basic password unchanged. */
export const GUARD_TOKEN = /^[\x21-\x7e]{1,1024}$/
/** The longest lifetime of a signed URL: a year. */
export const MAX_SIGNED_SECONDS = 365 * 24 * 3600

export const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/** Why `input` is not a guard cairn accepts (the API's schema says the same), or undefined. */
export const guardProblem = (input: GuardInput): string | undefined => {
  if (input.type === "signed") return undefined
  if (input.tokens.length === 0 || input.tokens.length > MAX_GUARD_TOKENS) {
    return `a token guard needs 1 to ${MAX_GUARD_TOKENS} tokens`
  }
  if (!input.tokens.every((t) => GUARD_TOKEN.test(t))) return "a guard token is 1 to 1024 visible ASCII characters, without spaces"
  return undefined
}

/** The stored form of a guard given by a request: token digests, or a new random key. */
export const storeGuard = (input: GuardInput): StoredGuard =>
  input.type === "token"
    ? { type: "token", sha256: [...new Set(input.tokens.map((t) => tokenDigest(t).toString("hex")))] }
    : { type: "signed", key: randomBytes(32).toString("hex") }

/** The stored form as the API shows it. A token given twice counts once. */
export const guardView = (stored: StoredGuard | null): GuardView | null =>
  stored === null ? null : stored.type === "token" ? { type: "token", token_count: stored.sha256.length } : { type: "signed" }

export const contentGuard = (distributionId: string, stored: StoredGuard | null): ContentGuard | undefined => {
  if (stored === null) return undefined
  return stored.type === "token"
    ? { type: "token", digests: stored.sha256.map((d) => Buffer.from(d, "hex")) }
    : { type: "signed", key: Buffer.from(stored.key, "hex"), distributionId }
}

/**
 * Is `presented` one of the tokens? Its digest is compared with every stored digest, with no early
 * exit: the time taken says nothing about the token (its length included) nor about which matched.
 */
export const tokenMatches = (digests: ReadonlyArray<Buffer>, presented: string): boolean => {
  const p = tokenDigest(presented)
  let ok = false
  for (const d of digests) ok = timingSafeEqual(p, d) || ok
  return ok
}

/**
 * The MAC of a signed URL: the distribution (its stable id, so a URL of one distribution never
 * opens another, and survives a change of base path), the expiry, and the relative path as the
 * content app derives it from a request (split on `/`, each segment percent-decoded once: the same
 * file always has the same path, however the URL encodes it). Fields are separated by newlines,
 * which none of them can contain (ids and numbers; the path policy refuses control characters).
 */
export const signatureOf = (key: Buffer, distributionId: string, relativePath: string, expires: number): Buffer =>
  createHmac("sha256", key).update(`cairn-content-v1\n${distributionId}\n${expires}\n${relativePath}`, "utf8").digest()

/** `/content/<base path>/<relative path, each segment percent-encoded>?expires=..&signature=..` */
export const signedPath = (basePath: string, relativePath: string, expires: number, signature: Buffer): string =>
  `/content/${basePath}/${relativePath.split("/").map(encodeURIComponent).join("/")}?expires=${expires}&signature=${signature.toString("hex")}`
