/**
 * `orphans.cleanup`: delete the content units and artifacts nothing owns that are older than
 * `protection_seconds` (default CAIRN_ORPHAN_PROTECTION_SECONDS, one day), and report what went (src/content/cleanup.ts).
 *
 * It declares no resource keys: it runs beside syncs, uploads and publishes, never waits for them
 * and never makes them wait (row locks are skipped, digest locks only tried).
 */
import { Duration, Effect, Schema } from "effect"
import { CairnConfig } from "../../config/config.js"
import { defineKind, noResources, VALUE } from "../../engine/kind.js"
import { cleanupOrphans } from "../cleanup.js"
import { failWith, orDbFailure } from "./common.js"

const DAY = 86_400

const Params = Schema.Struct({
  protection_seconds: Schema.optional(Schema.Int.pipe(Schema.between(0, 100 * 365 * DAY)))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const orphansCleanup = defineKind({
  name: "orphans.cleanup",
  params: Params,
  outputs: { report: VALUE },
  resources: noResources,
  handler: (p, ctx) =>
    Effect.flatMap(CairnConfig, (config) =>
    cleanupOrphans({
      protectionSeconds: p.protection_seconds ?? Duration.toSeconds(config.orphanProtection),
      progress: (deleted) => ctx.progress({ done: deleted, unit: "orphans deleted" })
    }).pipe(
      Effect.map((report) => ({ report })),
      orDbFailure,
      Effect.catchTags({
        StorageError: (e) => Effect.fail(failWith("storage_error")(e)),
        // Digests come from our own rows, which were checked when they were written.
        BadDigest: (e) => Effect.die(e)
      })
    ))
})
