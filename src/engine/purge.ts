/**
 * History purge of the engine's rows: graphs all of whose tasks settled more than a window ago go,
 * with their tasks, input edges and futures, unless one of their futures is still held. DESIGN.md §19.
 *
 * Held futures are the engine's business only as far as the engine knows them: a pending future
 * cannot be deleted (its guard), a future an unsettled task takes as input cannot either (its task
 * is unsettled, so its graph is not a candidate, and the edge references the future). Other modules
 * hold futures by foreign key from their payload rows (a kept version's, a publication's, a
 * distribution revision's); the purge finds those keys in the catalog and leaves such graphs
 * alone, and the database refuses the delete of anything it missed (the safety net of
 * src/db/referenced.ts: the batch is redone by halves, keeping exactly what is held now).
 *
 * Graphs are taken newest first: a graph can only reference futures of older graphs, so by the
 * time an old graph is looked at, the newer graphs that consumed its futures and are purgeable too
 * are gone, and one run purges a whole chain. Batches of graphs are locked FOR UPDATE SKIP LOCKED,
 * each in its own short transaction: two purges never take the same graphs, and nothing else waits.
 */
import { Effect } from "effect"
import { encodeTime } from "ulid"
import { Db } from "../db/client.js"
import { deleteUnlessReferenced, pages } from "../db/referenced.js"
import * as Q from "./queries/purge.js"

export interface PurgeReport {
  readonly graphs: number
  readonly tasks: number
  readonly futures: number
}

export interface PurgeOptions {
  /** Graphs whose tasks all settled at least this long ago are purged. */
  readonly olderThanSeconds: number
  /** Graphs per transaction (default 500). */
  readonly batchSize?: number | undefined
  /** Called after every batch with the graphs purged so far. */
  readonly progress?: ((purged: number) => Effect.Effect<void>) | undefined
}

/** Graphs (and, in the content store's history purge, revisions and resources) per transaction. */
export const DEFAULT_PURGE_BATCH = 500

export const purgeGraphs = (opts: PurgeOptions) =>
  Effect.gen(function*() {
    const db = yield* Db
    const limit = opts.batchSize ?? DEFAULT_PURGE_BATCH
    const { cutoff, ms } = yield* Q.cutoffOf(db.db, opts.olderThanSeconds)
    const unheld = Q.unheldFuture(yield* Q.futureHolders(db.db))
    // A graph whose tasks all settled before the cutoff was created before it: its id is below the
    // first ULID of the next millisecond.
    const start = encodeTime(ms + 1) + "0".repeat(16)
    const total = { graphs: 0, tasks: 0, futures: 0 }
    yield* pages(limit, (before) =>
      db.transaction((tx) =>
        Effect.gen(function*() {
          const batch = (yield* Q.settledGraphs(tx, before, cutoff, limit)).map((g) => g.id)
          if (batch.length === 0) return { seen: 0, last: before, deleted: [] }
          const held = new Set((yield* Q.heldGraphs(tx, batch, unheld)).map((g) => g.id))
          const deleted = yield* deleteUnlessReferenced(tx, batch.filter((g) => !held.has(g)), (some) => Q.deleteGraphs(tx, some))
          return { seen: batch.length, last: batch.at(-1)!, deleted }
        })
      ), (page) =>
      Effect.gen(function*() {
        for (const d of page.deleted) {
          total.graphs += d.graphs
          total.tasks += d.tasks
          total.futures += d.futures
        }
        if (opts.progress) yield* opts.progress(total.graphs)
      }), start)
    return total satisfies PurgeReport
  })
