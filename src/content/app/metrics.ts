/**
 * The content app's metrics (exported by GET /metrics with the rest of the process's).
 *
 * Updated synchronously (`unsafeUpdate`) because the content app answers most requests outside
 * any fiber (see `serve.ts`). Each label set is its own metric made once from its full key:
 * `Metric.tagged` builds the key anew (and looks it up in the registry) on every update, which
 * costs more than the rest of a cached file's answer.
 */
import { Metric, MetricKey } from "effect"

const counter = (name: string, description: string, labels: Record<string, string>) => {
  let key = MetricKey.counter(name, { description })
  for (const [k, v] of Object.entries(labels)) key = MetricKey.tagged(key, k, v)
  return Metric.fromMetricKey(key)
}

const REQUESTS = "cairn_content_requests_total"
const REQUESTS_HELP = "Content app responses, by method and status"
const PUBLICATION_CACHE = "cairn_content_publication_cache_total"
const PUBLICATION_CACHE_HELP = "Publication file-map lookups, by result (hit or miss)"
const BODY_CACHE = "cairn_content_body_cache_total"
const BODY_CACHE_HELP = "Lookups of small files' bytes in the content app's memory cache, by result (hit or miss)"

const bytesServed = counter("cairn_content_bytes_served_total", "Body bytes the content app sent (as announced by content-length)", {})
const publicationHit = counter(PUBLICATION_CACHE, PUBLICATION_CACHE_HELP, { result: "hit" })
const publicationMiss = counter(PUBLICATION_CACHE, PUBLICATION_CACHE_HELP, { result: "miss" })
const bodyHit = counter(BODY_CACHE, BODY_CACHE_HELP, { result: "hit" })
const bodyMiss = counter(BODY_CACHE, BODY_CACHE_HELP, { result: "miss" })
const bodyCacheBytes = Metric.gauge("cairn_content_body_cache_bytes", { description: "Bytes held by the content app's memory cache of small files" })

// Methods are GET and HEAD, statuses a handful: a small, bounded map.
const byResponse = new Map<string, ReturnType<typeof counter>>()

export const countResponse = (method: string, status: number, bytes: number) => {
  const key = `${method} ${status}`
  let requests = byResponse.get(key)
  if (requests === undefined) {
    requests = counter(REQUESTS, REQUESTS_HELP, { method, status: String(status) })
    byResponse.set(key, requests)
  }
  requests.unsafeUpdate(1, [])
  if (bytes > 0) bytesServed.unsafeUpdate(bytes, [])
}

export const countPublicationCache = (hit: boolean) => (hit ? publicationHit : publicationMiss).unsafeUpdate(1, [])

export const countBodyCache = (hit: boolean) => (hit ? bodyHit : bodyMiss).unsafeUpdate(1, [])

export const setBodyCacheBytes = (bytes: number) => bodyCacheBytes.unsafeUpdate(bytes, [])
