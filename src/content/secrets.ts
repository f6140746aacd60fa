/**
 * Remote secrets at rest: passwords, client keys, proxy credentials and header values, sealed
 * with a key from CAIRN_SECRET_KEY before they are written to a remote revision, opened only by
 * the process that uses them (a worker about to sync, the content app about to fetch on demand,
 * the API server writing the next revision).
 *
 * - Sealing is AES-256-GCM (authenticated) with a fresh 96-bit nonce per blob. The key is derived
 *   from each CAIRN_SECRET_KEY entry with HKDF-SHA256; the key id is another HKDF output of the
 *   same entry (it names the key without revealing it). The blob is
 *   `v1.<key id>.<nonce>.<ciphertext+tag>` (base64url), so a reader knows which key to use.
 * - The additional authenticated data binds a blob to the revision it belongs to and to where its
 *   secrets are sent (remote id, revision id, URL, proxy, CA and client certificate): a blob copied
 *   into another row, or a row whose URL was edited behind cairn's back, fails to open instead of
 *   sending the secrets elsewhere.
 * - Rotation: CAIRN_SECRET_KEY may list several keys, comma separated. The first seals; any of
 *   them opens (by key id). Every new revision (a PATCH, even of another field) is sealed with the
 *   first key; an old key can be dropped once every remote has a revision sealed with a newer one
 *   and no queued task holds an older revision.
 * - Without CAIRN_SECRET_KEY, secrets are stored in the clear (`plain:<json>`); the start-up log
 *   says so. Clear blobs are still read after a key is configured.
 *
 * What this does and does not protect is in DESIGN.md ("Remote secrets").
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import { Data, Effect, Either, Layer, Redacted } from "effect"
import { CairnConfig } from "../config/config.js"

/** Opening a sealed blob failed; the message names the key id and the reason, never the secret. */
export class SecretsUnavailable extends Data.TaggedError("SecretsUnavailable")<{ readonly message: string }> {}

export interface SecretKey {
  /** 16 hex characters that name the key (derived from it; reveal nothing about it). */
  readonly id: string
  readonly key: Buffer
}

/** The keys of CAIRN_SECRET_KEY, the first of which seals. Empty: secrets are stored in the clear. */
export interface Keyring {
  readonly keys: ReadonlyArray<SecretKey>
}

/** The shortest accepted key (characters). `openssl rand -base64 32` gives 44. */
export const MIN_KEY_LENGTH = 32

const SALT = Buffer.from("cairn remote secrets")

/** One CAIRN_SECRET_KEY entry as a key and its id. */
export const deriveKey = (material: string): SecretKey => {
  const ikm = Buffer.from(material, "utf8")
  const key = Buffer.from(hkdfSync("sha256", ikm, SALT, "cairn aes-256-gcm v1", 32))
  const id = Buffer.from(hkdfSync("sha256", ikm, SALT, "cairn key id v1", 8)).toString("hex")
  return { id, key }
}

const rings = new WeakMap<ReadonlyArray<Redacted.Redacted<string>>, Keyring>()

/** The keyring of CAIRN_SECRET_KEY's entries (already checked for length by the config), derived once per list. */
export const keyringOf = (entries: ReadonlyArray<Redacted.Redacted<string>>): Keyring => {
  let ring = rings.get(entries)
  if (ring === undefined) rings.set(entries, ring = { keys: entries.map((e) => deriveKey(Redacted.value(e))) })
  return ring
}

/** What a sealed blob is bound to (its additional authenticated data). */
export interface SealContext {
  readonly remoteId: string
  readonly revisionId: string
  readonly url: string
  readonly proxyUrl: string | null
  readonly caCert: string | null
  readonly clientCert: string | null
}

const aadOf = (c: SealContext) =>
  Buffer.from(JSON.stringify(["cairn remote secrets v1", c.remoteId, c.revisionId, c.url, c.proxyUrl, c.caCert, c.clientCert]))

const PLAIN = "plain:"
const V1 = "v1."

/** Seal `plain` (a JSON text) with the first key, or keep it in the clear without one. */
export const seal = (ring: Keyring, plain: string, context: SealContext): string => {
  const key = ring.keys[0]
  if (key === undefined) return PLAIN + plain
  const nonce = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", key.key, nonce)
  cipher.setAAD(aadOf(context))
  const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()])
  return `${V1}${key.id}.${nonce.toString("base64url")}.${body.toString("base64url")}`
}

/** The key id a blob was sealed with; undefined for a clear one. */
export const sealedWith = (blob: string): string | undefined =>
  blob.startsWith(V1) ? blob.slice(V1.length).split(".")[0] : undefined

/** Open a blob written by `seal`: its JSON text, or why it cannot be opened (never the secret). */
export const open = (ring: Keyring, blob: string, context: SealContext): Either.Either<string, SecretsUnavailable> => {
  if (blob.startsWith(PLAIN)) return Either.right(blob.slice(PLAIN.length))
  const parts = blob.startsWith(V1) ? blob.slice(V1.length).split(".") : []
  if (parts.length !== 3) return Either.left(new SecretsUnavailable({ message: "its secrets are stored in a form this cairn does not read" }))
  const [id, nonceText, bodyText] = parts as [string, string, string]
  const key = ring.keys.find((k) => k.id === id)
  if (key === undefined) {
    return Either.left(new SecretsUnavailable({
      message: ring.keys.length === 0
        ? `its secrets are encrypted with key ${id}, and CAIRN_SECRET_KEY is not set in this process`
        : `its secrets are encrypted with key ${id}, which is not among the keys of CAIRN_SECRET_KEY (${ring.keys.map((k) => k.id).join(", ")})`
    }))
  }
  try {
    const nonce = Buffer.from(nonceText, "base64url")
    const body = Buffer.from(bodyText, "base64url")
    if (nonce.length !== 12 || body.length < 16) throw new Error("short")
    const decipher = createDecipheriv("aes-256-gcm", key.key, nonce)
    decipher.setAAD(aadOf(context))
    decipher.setAuthTag(body.subarray(body.length - 16))
    return Either.right(Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString("utf8"))
  } catch {
    return Either.left(new SecretsUnavailable({
      message: `its secrets do not open with key ${id}: they were altered, or moved to another remote or revision`
    }))
  }
}

/**
 * The start-up log line about remote secrets: sealed with which key, or stored in the clear (a
 * warning, so that an operator who meant to set CAIRN_SECRET_KEY sees it).
 */
export const SecretsNoticeLive = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const ring = keyringOf(config.secretKeys)
    if (ring.keys.length === 0) {
      yield* Effect.logWarning(
        "CAIRN_SECRET_KEY is not set: remote secrets (passwords, client keys, proxy credentials, header values) are stored in the database in the clear"
      )
    } else {
      yield* Effect.logInfo(
        `remote secrets are sealed with key ${ring.keys[0]!.id}${ring.keys.length > 1 ? ` (and opened with ${ring.keys.slice(1).map((k) => k.id).join(", ")} too)` : ""}`
      )
    }
  })
)
