/**
 * The bytes of small files, in memory, by sha256, least recently used dropped first beyond a byte
 * budget (`CAIRN_CONTENT_CACHE_BYTES`; 0 turns it off).
 *
 * An artifact never changes (its name is its digest), so an entry can never be stale and is never
 * invalidated: it only has to be evicted to stay within budget. Serving a small file from here
 * costs no file descriptor and no thread-pool round trips (open, fstat, read, close and the store's
 * symlink checks), which is most of what serving it from disk costs. Files above
 * `maxEntryBytes` are streamed from the store instead: one would evict many small ones, and a
 * large file's cost is its bytes, not its opening.
 *
 * Concurrent misses for the same digest share one read (`load`); a hit is answered synchronously
 * (lru-cache's own `fetch` always answers with a promise, hence the small map of reads here).
 */
import { LRUCache } from "lru-cache"
import { countBodyCache, setBodyCacheBytes } from "./metrics.js"

/** The largest file kept, whatever the budget. */
const MAX_CACHED_FILE = 1024 * 1024

export interface BodyCache {
  /** Files up to this size are served from the cache; 0 when it is off. */
  readonly maxEntryBytes: number
  /** The bytes of `sha256`, read with `read` (and kept) on a miss. */
  readonly load: (sha256: string, read: () => Promise<Buffer>) => Buffer | Promise<Buffer>
}

export const makeBodyCache = (budgetBytes: number): BodyCache => {
  // A single file may take a sixteenth of the budget at most, so a few large ones cannot empty it.
  const maxEntryBytes = Math.min(MAX_CACHED_FILE, Math.floor(budgetBytes / 16))
  // lru-cache counts sizes in positive integers: an empty file counts as one byte. No budget, no
  // cache (lru-cache refuses a zero maxSize).
  const entries = budgetBytes > 0
    ? new LRUCache<string, Buffer>({ maxSize: budgetBytes, sizeCalculation: (body) => Math.max(1, body.length) })
    : undefined
  const reading = new Map<string, Promise<Buffer>>()

  const remember = (sha256: string, read: Buffer) => {
    if (entries === undefined || read.length > maxEntryBytes || entries.has(sha256)) return
    // A Buffer may be a view of a larger allocation (a stream's chunk, Node's shared pool): keep
    // only its own bytes, so that the budget counts what the cache actually holds.
    const owned = read.byteOffset === 0 && read.buffer.byteLength === read.length
    const body = owned ? read : Buffer.allocUnsafeSlow(read.length)
    if (!owned) read.copy(body)
    entries.set(sha256, body)
    setBodyCacheBytes(entries.calculatedSize)
  }

  return {
    maxEntryBytes,
    load: (sha256, read) => {
      const known = entries?.get(sha256)
      if (known !== undefined) {
        countBodyCache(true)
        return known
      }
      countBodyCache(false)
      let pending = reading.get(sha256)
      if (pending === undefined) {
        pending = read().then(
          (body) => {
            reading.delete(sha256)
            remember(sha256, body)
            return body
          },
          (e) => {
            reading.delete(sha256)
            throw e
          }
        )
        reading.set(sha256, pending)
      }
      return pending
    }
  }
}
