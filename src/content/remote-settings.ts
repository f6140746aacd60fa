/**
 * A remote's network settings: proxy, TLS (CA, client certificate), basic auth, extra headers,
 * timeouts, retries and rate limit. What the API takes, how it is checked (every problem as a
 * sentence for the 400), how it is stored in a remote revision (secrets sealed, `./secrets.ts`)
 * and how it is shown (secrets never: only whether they are set).
 *
 * Secret: `password`, `client_key`, the credentials of `proxy_url`, and the VALUES of `headers`
 * (all of them: extra headers on a remote are nearly always credentials, API keys and tokens
 * whose names vary by vendor, and a list of "secret names" would leak the ones it forgot). The
 * API shows `has_password`, `has_client_key`, `has_proxy_credentials` and `header_names`.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto"
import { Either } from "effect"
import { type Keyring, open, seal, type SealContext, type SecretsUnavailable } from "./secrets.js"

/** Every network setting, with secrets in the clear and `proxy_url` with its credentials. */
export interface RemoteSettings {
  readonly proxy_url: string | null
  readonly ca_cert: string | null
  readonly client_cert: string | null
  readonly client_key: string | null
  readonly username: string | null
  readonly password: string | null
  readonly headers: Readonly<Record<string, string>> | null
  readonly connect_timeout_ms: number | null
  readonly total_timeout_ms: number | null
  readonly max_retries: number | null
  readonly rate_limit: number | null
}

export const SETTING_NAMES = [
  "proxy_url",
  "ca_cert",
  "client_cert",
  "client_key",
  "username",
  "password",
  "headers",
  "connect_timeout_ms",
  "total_timeout_ms",
  "max_retries",
  "rate_limit"
] as const satisfies ReadonlyArray<keyof RemoteSettings>

export const NO_SETTINGS: RemoteSettings = {
  proxy_url: null,
  ca_cert: null,
  client_cert: null,
  client_key: null,
  username: null,
  password: null,
  headers: null,
  connect_timeout_ms: null,
  total_timeout_ms: null,
  max_retries: null,
  rate_limit: null
}

/** The settings among `fields` (absent ones: null). */
export const settingsOf = (fields: Record<string, unknown>): RemoteSettings => {
  const out: Record<string, unknown> = { ...NO_SETTINGS }
  for (const k of SETTING_NAMES) if (fields[k] !== undefined) out[k] = fields[k]
  return out as unknown as RemoteSettings
}

// ---- checks ---------------------------------------------------------------------------------------

/** Limits the API also documents (src/api/named-groups.ts). */
export const LIMITS = {
  connectTimeoutMs: { min: 1, max: 3_600_000 },
  totalTimeoutMs: { min: 1, max: 7 * 86_400_000 },
  maxRetries: { min: 0, max: 20 },
  rateLimit: { max: 100_000 },
  headers: 64,
  headerValue: 8192
} as const

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/**
 * Headers cairn sets itself or that belong to the connection: a remote may not set them.
 * `proxy-authorization` comes from `proxy_url`'s credentials, `accept-encoding` must stay
 * `identity` (sizes and digests are those of the bytes on the server).
 */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-connection",
  "proxy-authorization",
  "accept-encoding",
  "range",
  "expect"
])

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** The certificates of a PEM bundle, or a problem (never quoting the text). */
const certificates = (field: string, pem: string): Either.Either<Array<X509Certificate>, string> => {
  if (/PRIVATE KEY-----/.test(pem)) {
    return Either.left(`${field} contains a private key; it must hold certificates only (a client's key goes in client_key)`)
  }
  const blocks = pem.match(CERT_BLOCK) ?? []
  if (blocks.length === 0) return Either.left(`${field} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`)
  const out: Array<X509Certificate> = []
  for (let i = 0; i < blocks.length; i++) {
    try {
      out.push(new X509Certificate(blocks[i]!))
    } catch {
      return Either.left(`${field}: certificate ${i + 1} of ${blocks.length} does not parse as an X.509 certificate`)
    }
  }
  return Either.right(out)
}

const privateKey = (pem: string): Either.Either<KeyObject, string> => {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return Either.left("client_key is not a PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" block)")
  // PKCS#8 "ENCRYPTED PRIVATE KEY", or a traditional key with "Proc-Type: 4,ENCRYPTED".
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    return Either.left("client_key is encrypted with a passphrase; give it unencrypted (it is sealed at rest with CAIRN_SECRET_KEY)")
  }
  try {
    return Either.right(createPrivateKey({ key: pem, format: "pem" }))
  } catch {
    return Either.left("client_key does not parse as a PEM private key")
  }
}

/** `proxy_url` split into the URL shown (no credentials) and its credentials (`user:password`, as written). */
export const splitProxyUrl = (proxyUrl: string): { readonly url: string; readonly credentials: string | null } => {
  const u = new URL(proxyUrl)
  const credentials = u.username === "" && u.password === "" ? null : `${u.username}:${u.password}`
  u.username = ""
  u.password = ""
  return { url: u.href, credentials }
}

/** The proxy URL with its credentials put back. */
export const joinProxyUrl = (url: string, credentials: string | null): string => {
  if (credentials === null) return url
  const u = new URL(url)
  const at = credentials.indexOf(":")
  u.username = at < 0 ? credentials : credentials.slice(0, at)
  u.password = at < 0 ? "" : credentials.slice(at + 1)
  return u.href
}

const proxyProblem = (proxyUrl: string): string | undefined => {
  let u: URL
  try {
    u = new URL(proxyUrl)
  } catch {
    return "proxy_url is not a valid URL"
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `proxy_url must be an http:// or https:// URL, not ${u.protocol}`
  if (u.hostname === "") return "proxy_url has no host"
  if ((u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    return "proxy_url must be only scheme, credentials, host and port (no path, query or fragment)"
  }
  return undefined
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** Every problem with `s` (empty: fine). Sentences name the field, never a secret's value. */
export const settingsProblems = (s: RemoteSettings): Array<string> => {
  const problems: Array<string> = []
  if (s.proxy_url !== null) {
    const p = proxyProblem(s.proxy_url)
    if (p !== undefined) problems.push(p)
  }
  if (s.ca_cert !== null) {
    const c = certificates("ca_cert", s.ca_cert)
    if (Either.isLeft(c)) problems.push(c.left)
  }
  if ((s.client_cert === null) !== (s.client_key === null)) {
    problems.push(s.client_cert === null ? "client_key needs client_cert too" : "client_cert needs client_key too")
  } else if (s.client_cert !== null && s.client_key !== null) {
    const c = certificates("client_cert", s.client_cert)
    const k = privateKey(s.client_key)
    if (Either.isLeft(c)) problems.push(c.left)
    if (Either.isLeft(k)) problems.push(k.left)
    if (Either.isRight(c) && Either.isRight(k) && !c.right[0]!.checkPrivateKey(k.right)) {
      problems.push("client_key is not the private key of client_cert (the first certificate of client_cert must be the client's)")
    }
  }
  if (s.username !== null && (s.username.includes(":") || CONTROL.test(s.username))) {
    problems.push("username must not contain ':' or control characters (basic auth)")
  }
  if (s.password !== null && s.username === null) problems.push("password needs username too (basic auth)")
  if (s.headers !== null) {
    const names = Object.keys(s.headers)
    if (names.length > LIMITS.headers) problems.push(`headers: at most ${LIMITS.headers} headers`)
    const seen = new Set<string>()
    for (const name of names) {
      const lower = name.toLowerCase()
      const value = s.headers[name]
      if (!TOKEN.test(name)) problems.push(`headers: ${JSON.stringify(name.slice(0, 100))} is not a valid header name`)
      else if (RESERVED_HEADERS.has(lower)) problems.push(`headers: ${lower} is set by cairn and cannot be given`)
      else if (lower === "authorization" && s.username !== null) problems.push("headers: authorization cannot be given together with username/password")
      else if (seen.has(lower)) problems.push(`headers: ${lower} is given twice`)
      seen.add(lower)
      if (typeof value !== "string" || /[\r\n\0]/.test(value) || value.length > LIMITS.headerValue) {
        problems.push(`headers: the value of ${lower} must be a string of at most ${LIMITS.headerValue} characters without CR, LF or NUL`)
      }
    }
  }
  const int = (name: string, v: number | null, min: number, max: number) => {
    if (v !== null && !(Number.isInteger(v) && v >= min && v <= max)) problems.push(`${name} must be a whole number from ${min} to ${max}`)
  }
  int("connect_timeout_ms", s.connect_timeout_ms, LIMITS.connectTimeoutMs.min, LIMITS.connectTimeoutMs.max)
  int("total_timeout_ms", s.total_timeout_ms, LIMITS.totalTimeoutMs.min, LIMITS.totalTimeoutMs.max)
  int("max_retries", s.max_retries, LIMITS.maxRetries.min, LIMITS.maxRetries.max)
  if (s.rate_limit !== null && !(Number.isFinite(s.rate_limit) && s.rate_limit > 0 && s.rate_limit <= LIMITS.rateLimit.max)) {
    problems.push(`rate_limit must be a number of requests per second above 0 and at most ${LIMITS.rateLimit.max}`)
  }
  return problems
}

// ---- storage --------------------------------------------------------------------------------------

/** The columns of `remote_revisions` that hold the settings. */
export interface StoredSettings {
  readonly proxy_url: string | null
  readonly ca_cert: string | null
  readonly client_cert: string | null
  readonly username: string | null
  readonly header_names: ReadonlyArray<string>
  readonly connect_timeout_ms: number | null
  readonly total_timeout_ms: number | null
  readonly max_retries: number | null
  readonly rate_limit: number | null
  readonly secret_fields: ReadonlyArray<string>
  readonly secrets: string | null
}

/** What a revision's sealed secrets hold. */
interface Secrets {
  password?: string
  client_key?: string
  proxy_credentials?: string
  headers?: Record<string, string>
}

/** Where a revision's secrets belong: its sealing context. */
export interface RevisionIdentity {
  readonly remoteId: string
  readonly revisionId: string
  readonly url: string
}

const sealContext = (id: RevisionIdentity, stored: Pick<StoredSettings, "proxy_url" | "ca_cert" | "client_cert">): SealContext => ({
  ...id,
  proxyUrl: stored.proxy_url,
  caCert: stored.ca_cert,
  clientCert: stored.client_cert
})

/** The columns for `s` (checked already), the secrets sealed with the keyring's first key. */
export const storeSettings = (ring: Keyring, id: RevisionIdentity, s: RemoteSettings): StoredSettings => {
  const proxy = s.proxy_url === null ? null : splitProxyUrl(s.proxy_url)
  const secrets: Secrets = {}
  if (s.password !== null) secrets.password = s.password
  if (s.client_key !== null) secrets.client_key = s.client_key
  if (proxy?.credentials != null) secrets.proxy_credentials = proxy.credentials
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(s.headers ?? {})) headers[k.toLowerCase()] = v
  if (Object.keys(headers).length > 0) secrets.headers = headers
  const columns = {
    proxy_url: proxy?.url ?? null,
    ca_cert: s.ca_cert,
    client_cert: s.client_cert,
    username: s.username,
    header_names: Object.keys(headers).sort(),
    connect_timeout_ms: s.connect_timeout_ms,
    total_timeout_ms: s.total_timeout_ms,
    max_retries: s.max_retries,
    rate_limit: s.rate_limit,
    secret_fields: (["password", "client_key", "proxy_credentials"] as const).filter((f) => secrets[f] !== undefined)
  }
  const any = Object.keys(secrets).length > 0
  return { ...columns, secrets: any ? seal(ring, JSON.stringify(secrets), sealContext(id, columns)) : null }
}

/** The settings of a stored revision, secrets opened; fails (naming the key, not the secret) if they cannot be. */
export const openSettings = (
  ring: Keyring,
  id: RevisionIdentity,
  stored: StoredSettings
): Either.Either<RemoteSettings, SecretsUnavailable> =>
  Either.map(
    stored.secrets === null ? Either.right("{}") : open(ring, stored.secrets, sealContext(id, stored)),
    (text) => {
      const secrets = JSON.parse(text) as Secrets
      return {
        proxy_url: stored.proxy_url === null ? null : joinProxyUrl(stored.proxy_url, secrets.proxy_credentials ?? null),
        ca_cert: stored.ca_cert,
        client_cert: stored.client_cert,
        client_key: secrets.client_key ?? null,
        username: stored.username,
        password: secrets.password ?? null,
        headers: secrets.headers ?? null,
        connect_timeout_ms: stored.connect_timeout_ms,
        total_timeout_ms: stored.total_timeout_ms,
        max_retries: stored.max_retries,
        rate_limit: stored.rate_limit
      }
    }
  )

/** The API's view of stored settings: everything but the secrets, and whether each is set. */
export const settingsView = (stored: StoredSettings) => ({
  proxy_url: stored.proxy_url,
  has_proxy_credentials: stored.secret_fields.includes("proxy_credentials"),
  ca_cert: stored.ca_cert,
  client_cert: stored.client_cert,
  has_client_key: stored.secret_fields.includes("client_key"),
  username: stored.username,
  has_password: stored.secret_fields.includes("password"),
  header_names: [...stored.header_names],
  connect_timeout_ms: stored.connect_timeout_ms,
  total_timeout_ms: stored.total_timeout_ms,
  max_retries: stored.max_retries,
  // double precision comes back from pg as a number
  rate_limit: stored.rate_limit === null ? null : Number(stored.rate_limit)
})

/** The SQL column list of the settings, in `StoredSettings`'s order. */
export const STORED_COLUMNS = [
  "proxy_url",
  "ca_cert",
  "client_cert",
  "username",
  "header_names",
  "connect_timeout_ms",
  "total_timeout_ms",
  "max_retries",
  "rate_limit",
  "secret_fields",
  "secrets"
] as const satisfies ReadonlyArray<keyof StoredSettings>
