/** The content app's metrics (exported by GET /metrics with the rest of the process's). */
import { Effect, Metric } from "effect"

const requests = Metric.counter("cairn_content_requests_total", { description: "Content app responses, by method and status" })
const bytesServed = Metric.counter("cairn_content_bytes_served_total", { description: "Body bytes the content app sent (as announced by content-length)" })
const cache = Metric.counter("cairn_content_publication_cache_total", { description: "Publication file-map lookups, by result (hit or miss)" })

export const countResponse = (method: string, status: number, bytes: number) =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(Metric.tagged(requests, "method", method), "status", String(status))),
    bytes > 0 ? Metric.incrementBy(bytesServed, bytes) : Effect.void
  )

export const countCache = (hit: boolean) => Metric.increment(Metric.tagged(cache, "result", hit ? "hit" : "miss"))
