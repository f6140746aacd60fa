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
 * Concurrent misses for the same digest share one read (`load`).
 */
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
  // A Map iterates in insertion order: re-inserting on every hit makes the first key the least
  // recently used.
  const entries = new Map<string, Buffer>()
  const reading = new Map<string, Promise<Buffer>>()
  let bytes = 0

  const remember = (sha256: string, read: Buffer) => {
    if (budgetBytes === 0 || entries.has(sha256)) return
    // A Buffer may be a view of a larger allocation (a stream's chunk, Node's shared pool): keep
    // only its own bytes, so that the budget counts what the cache actually holds.
    const owned = read.byteOffset === 0 && read.buffer.byteLength === read.length
    const body = owned ? read : Buffer.allocUnsafeSlow(read.length)
    if (!owned) read.copy(body)
    entries.set(sha256, body)
    bytes += body.length
    while (bytes > budgetBytes) {
      const [oldest, evicted] = entries.entries().next().value!
      entries.delete(oldest)
      bytes -= evicted.length
    }
    setBodyCacheBytes(bytes)
  }

  return {
    maxEntryBytes,
    load: (sha256, read) => {
      const known = entries.get(sha256)
      if (known !== undefined) {
        countBodyCache(true)
        entries.delete(sha256)
        entries.set(sha256, known)
        return known
      }
      countBodyCache(false)
      let pending = reading.get(sha256)
      if (pending === undefined) {
        pending = read().then(
          (body) => {
            reading.delete(sha256)
            if (body.length <= maxEntryBytes) remember(sha256, body)
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
