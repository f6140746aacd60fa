/**
 * `history.purge`: delete history older than `older_than_seconds` (default 30 days): graphs all of
 * whose tasks settled before then, with their tasks and futures, except those whose futures are
 * still held (a kept version's, a publication's, a distribution revision's, an input of work not
 * purged); superseded revisions of named resources; the resource rows of deleted names nothing
 * references any more (lifecycle/history.ts). Afterwards the purged graphs, tasks and futures
 * answer 404. No resource keys: it runs beside everything, and two at once take disjoint rows.
 */
import { Effect, Schema } from "effect"
import { defineKind, noResources, VALUE } from "../../engine/kind.js"
import { purgeHistory } from "../lifecycle/history.js"
import { orDbFailure } from "./common.js"

/** The default window: history of the last 30 days stays. */
export const DEFAULT_HISTORY_SECONDS = 30 * 86_400

const Params = Schema.Struct({
  older_than_seconds: Schema.optional(Schema.Int.pipe(Schema.between(0, 100 * 365 * 86_400)))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const historyPurge = defineKind({
  name: "history.purge",
  params: Params,
  outputs: { report: VALUE },
  resources: noResources,
  handler: (p, ctx) =>
    purgeHistory({
      olderThanSeconds: p.older_than_seconds ?? DEFAULT_HISTORY_SECONDS,
      progress: (purged) => ctx.progress({ done: purged, unit: "rows purged" })
    }).pipe(Effect.map((report) => ({ report })), orDbFailure)
})
