/**
 * The content app's metrics, in the process's registry (`src/engine/metrics.ts`), exported by
 * GET /metrics with the rest.
 *
 * Plain synchronous updates: the content app answers most requests outside any fiber (see
 * `serve.ts`), and these run on every one of them.
 */
import { Counter, Gauge } from "prom-client"
import { metricsRegistry } from "../../engine/metrics.js"

const registers = [metricsRegistry]

const requests = new Counter({
  name: "cairn_content_requests_total",
  help: "Content app responses, by method and status",
  labelNames: ["method", "status"] as const,
  registers
})

const bytesServed = new Counter({
  name: "cairn_content_bytes_served_total",
  help: "Body bytes the content app sent (as announced by content-length)",
  registers
})

const publicationCache = new Counter({
  name: "cairn_content_publication_cache_total",
  help: "Publication file-map lookups, by result (hit or miss)",
  labelNames: ["result"] as const,
  registers
})

const bodyCache = new Counter({
  name: "cairn_content_body_cache_total",
  help: "Lookups of small files' bytes in the content app's memory cache, by result (hit or miss)",
  labelNames: ["result"] as const,
  registers
})

const bodyCacheBytes = new Gauge({
  name: "cairn_content_body_cache_bytes",
  help: "Bytes held by the content app's memory cache of small files",
  registers
})

const HIT = { result: "hit" } as const
const MISS = { result: "miss" } as const

export const countResponse = (method: string, status: number, bytes: number) => {
  requests.inc({ method, status })
  if (bytes > 0) bytesServed.inc(bytes)
}

export const countPublicationCache = (hit: boolean) => publicationCache.inc(hit ? HIT : MISS)

export const countBodyCache = (hit: boolean) => bodyCache.inc(hit ? HIT : MISS)

export const setBodyCacheBytes = (bytes: number) => bodyCacheBytes.set(bytes)
