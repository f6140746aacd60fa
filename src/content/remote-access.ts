/**
 * How a process reaches a remote: a remote revision's settings (`./remote-settings.ts`), secrets
 * opened with CAIRN_SECRET_KEY, turned into the downloader's options (`./download.ts`): the
 * dispatcher (keep-alive pools, proxy, CA, client certificate, connect timeout), the headers for
 * the remote's origin (basic auth, its extra headers), the whole-request timeout, retries and the
 * cluster-wide rate limit (`./remote-rate.ts`). Unset settings take the process's defaults
 * (CAIRN_DOWNLOAD_TIMEOUT_MS, CAIRN_DOWNLOAD_RETRIES).
 *
 * Used alike by the sync tasks (manifest and files) and the content app's on-demand fetches, so a
 * remote behaves the same wherever it is fetched from.
 *
 * Dispatchers are kept per set of connection settings (a digest of them), up to MAX_DISPATCHERS,
 * least recently used closed first: syncs and on-demand fetches of remotes with the same settings
 * share connections, and revisions are immutable so a kept dispatcher is never stale.
 */
import { createHash } from "node:crypto"
import { sql } from "drizzle-orm"
import { Data, Duration, Effect, Either } from "effect"
import { Agent, type Dispatcher, ProxyAgent } from "undici"
import { CairnConfig } from "../config/config.js"
import { Db, type DbError } from "../db/client.js"
import type { RetryOptions, Route } from "./download.js"
import { pace } from "./remote-rate.js"
import { openSettings, type RemoteSettings, STORED_COLUMNS, type StoredSettings } from "./remote-settings.js"
import { keyringOf } from "./secrets.js"

/** The remote revision cannot be used here: gone, or its secrets do not open. Never names a secret. */
export class RemoteUnavailable extends Data.TaggedError("RemoteUnavailable")<{ readonly message: string }> {}

export interface RemoteAccess {
  readonly remoteId: string
  readonly revisionId: string
  readonly name: string
  readonly url: string
  readonly policy: "immediate" | "on_demand"
  readonly downloadConcurrency: number
  /** For `download` and `fetchText` (redirects: 5). */
  readonly options: RetryOptions
}

const MAX_DISPATCHERS = 32
const dispatchers = new Map<string, Dispatcher>()

/** The connection settings' digest: the cache key (the secrets in it never leave this process's memory). */
const connectionKey = (s: RemoteSettings, connectTimeoutMs: number) =>
  createHash("sha256").update(JSON.stringify([s.proxy_url, s.ca_cert, s.client_cert, s.client_key, connectTimeoutMs])).digest("hex")

const makeDispatcher = (s: RemoteSettings, connectTimeoutMs: number): Dispatcher => {
  const tls = {
    timeout: connectTimeoutMs,
    ...(s.ca_cert !== null ? { ca: s.ca_cert } : {}),
    ...(s.client_cert !== null && s.client_key !== null ? { cert: s.client_cert, key: s.client_key } : {})
  }
  if (s.proxy_url === null) return new Agent({ connect: tls })
  const proxy = new URL(s.proxy_url)
  const credentials = proxy.username === "" && proxy.password === ""
    ? undefined
    : `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")}`
  proxy.username = ""
  proxy.password = ""
  return new ProxyAgent({
    uri: proxy.href,
    ...(credentials !== undefined ? { token: credentials } : {}),
    // http upstreams are forwarded to the proxy as absolute-form requests; https ones go through CONNECT.
    proxyTunnel: false,
    requestTls: tls,
    proxyTls: { timeout: connectTimeoutMs, ...(s.ca_cert !== null ? { ca: s.ca_cert } : {}) }
  })
}

const dispatcherFor = (s: RemoteSettings, connectTimeoutMs: number): Dispatcher => {
  const key = connectionKey(s, connectTimeoutMs)
  let d = dispatchers.get(key)
  if (d !== undefined) {
    dispatchers.delete(key)
    dispatchers.set(key, d)
    return d
  }
  d = makeDispatcher(s, connectTimeoutMs)
  dispatchers.set(key, d)
  if (dispatchers.size > MAX_DISPATCHERS) {
    const [oldest, evicted] = dispatchers.entries().next().value as [string, Dispatcher]
    dispatchers.delete(oldest)
    // Closing lets requests in flight finish.
    evicted.close().catch(() => undefined)
  }
  return d
}

/** The headers sent to the remote's origin: basic auth and the remote's own. */
const headersOf = (s: RemoteSettings): Record<string, string> => {
  const h: Record<string, string> = { ...(s.headers ?? {}) }
  if (s.username !== null) h.authorization = `Basic ${Buffer.from(`${s.username}:${s.password ?? ""}`).toString("base64")}`
  return h
}

interface RemoteRevisionRow extends StoredSettings {
  readonly remote_id: string
  readonly name: string
  readonly url: string
  readonly policy: "immediate" | "on_demand"
  readonly download_concurrency: number
}

/**
 * Everything needed to fetch from remote revision `revisionId` in this process. Fails with
 * RemoteUnavailable (a sentence naming the remote, never a secret) when the revision does not
 * exist or its secrets cannot be opened with this process's CAIRN_SECRET_KEY.
 */
export const remoteAccess = (revisionId: string): Effect.Effect<RemoteAccess, RemoteUnavailable | DbError, Db | CairnConfig> =>
  Effect.gen(function*() {
    const db = yield* Db
    const config = yield* CairnConfig
    const [r] = yield* db.rows<RemoteRevisionRow>(sql`
      SELECT remote_id, name, url, policy, download_concurrency, ${sql.raw(STORED_COLUMNS.join(", "))}
      FROM remote_revisions WHERE id = ${revisionId}`)
    if (r === undefined) return yield* new RemoteUnavailable({ message: `remote revision ${revisionId} does not exist` })
    const opened = openSettings(keyringOf(config.secretKeys), { remoteId: r.remote_id, revisionId, url: r.url }, r)
    if (Either.isLeft(opened)) return yield* new RemoteUnavailable({ message: `remote ${r.name}: ${opened.left.message}` })
    const s = opened.right
    const idleMs = Duration.toMillis(config.downloadTimeout)
    const via: Route = {
      dispatcher: dispatcherFor(s, s.connect_timeout_ms ?? idleMs),
      origin: new URL(r.url).origin,
      headers: headersOf(s),
      totalTimeoutMs: s.total_timeout_ms ?? undefined,
      pace: s.rate_limit === null ? undefined : pace(db, r.remote_id, s.rate_limit)
    }
    return {
      remoteId: r.remote_id,
      revisionId,
      name: r.name,
      url: r.url,
      policy: r.policy,
      downloadConcurrency: r.download_concurrency,
      options: { timeoutMs: idleMs, retries: s.max_retries ?? config.downloadRetries, maxRedirects: 5, via }
    }
  })
