/**
 * The content app's metrics, in the process's registry (`src/engine/metrics.ts`), exported by
 * GET /metrics with the rest.
 *
 * These run on every content request, outside any fiber (see `serve.ts`). So each label set is a
 * plain number, made once, that the hot path increments; prom-client copies the numbers into its
 * counters when /metrics is scraped (its `collect` hook). prom-client's own `inc` hashes the label
 * set on every call, which costs several times what all the rest of the counting does.
 */
import { Counter, Gauge } from "prom-client"
import { metricsRegistry } from "../../engine/metrics.js"

const registers = [metricsRegistry]

interface Cell<L extends string> {
  readonly labels: Readonly<Record<L, string>>
  n: number
}

/** A prom-client counter fed at scrape time; `cell(labels)` makes the number of one label set. */
const scrapedCounter = <L extends string>(name: string, help: string, labelNames: ReadonlyArray<L>) => {
  const cells: Array<Cell<L>> = []
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset()
      for (const c of cells) this.inc(c.labels, c.n)
    }
  })
  return (labels: Record<L, string>): Cell<L> => {
    const cell = { labels, n: 0 }
    cells.push(cell)
    return cell
  }
}

const requests = scrapedCounter("cairn_content_requests_total", "Content app responses, by method and status", ["method", "status"])
const bytesServed = scrapedCounter("cairn_content_bytes_served_total", "Body bytes the content app sent (as announced by content-length)", [])({})
const publicationCache = scrapedCounter("cairn_content_publication_cache_total", "Publication file-map lookups, by result (hit or miss)", ["result"])
const bodyCache = scrapedCounter(
  "cairn_content_body_cache_total",
  "Lookups of small files' bytes in the content app's memory cache, by result (hit or miss)",
  ["result"]
)

const bodyCacheBytes = new Gauge({
  name: "cairn_content_body_cache_bytes",
  help: "Bytes held by the content app's memory cache of small files",
  registers
})

const publicationHit = publicationCache({ result: "hit" })
const publicationMiss = publicationCache({ result: "miss" })
const bodyHit = bodyCache({ result: "hit" })
const bodyMiss = bodyCache({ result: "miss" })

// Methods are GET and HEAD, statuses a handful: a small, bounded map.
const byResponse = new Map<string, Cell<"method" | "status">>()

export const countResponse = (method: string, status: number, bytes: number) => {
  const key = `${method} ${status}`
  let cell = byResponse.get(key)
  if (cell === undefined) {
    cell = requests({ method, status: String(status) })
    byResponse.set(key, cell)
  }
  cell.n += 1
  bytesServed.n += bytes
}

export const countPublicationCache = (hit: boolean) => void ((hit ? publicationHit : publicationMiss).n += 1)

export const countBodyCache = (hit: boolean) => void ((hit ? bodyHit : bodyMiss).n += 1)

export const setBodyCacheBytes = (bytes: number) => bodyCacheBytes.set(bytes)
