/**
 * `orphans.cleanup`: reclaim what was released (versions, publications, membership), then delete
 * the content units and artifacts nothing owns that are older than `protection_seconds` (default
 * CAIRN_ORPHAN_PROTECTION_SECONDS, one day), and report what went (src/content/cleanup.ts). With
 * `reclaim: [repository names]`, the bytes of those repositories' content that a remote can serve
 * again are dropped too (demoted: fetched again on the next request).
 *
 * It declares no resource keys: it runs beside syncs, uploads and publishes, never waits for them
 * and never makes them wait (row locks are skipped, digest locks only tried).
 */
import { Duration, Effect, Schema } from "effect"
import { CairnConfig } from "../../config/config.js"
import { defineKind, noResources, type ParamProblems, VALUE } from "../../engine/kind.js"
import { cleanupOrphans } from "../cleanup.js"
import { resolveNamed } from "../named.js"
import { failWith, NamedRef, orDbFailure } from "./common.js"

const DAY = 86_400

const Params = Schema.Struct({
  protection_seconds: Schema.optional(Schema.Int.pipe(Schema.between(0, 100 * 365 * DAY))),
  reclaim: Schema.optional(Schema.Array(NamedRef).pipe(Schema.maxItems(1000)))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** At submission: `reclaim`'s repository names to the repositories (a name that does not exist is a 400). */
const prepare = (raw: unknown) =>
  Effect.gen(function*() {
    if (raw === null || typeof raw !== "object" || !Array.isArray((raw as { reclaim?: unknown }).reclaim)) return raw
    const names = (raw as { reclaim: Array<unknown> }).reclaim
    const problems: Array<string> = []
    const resolved: Array<unknown> = []
    for (const n of names) {
      if (typeof n !== "string") {
        resolved.push(n) // the Schema reports it
        continue
      }
      const found = yield* resolveNamed("repository", n)
      if (!found) problems.push(`params.reclaim: no repository named ${JSON.stringify(n)}`)
      else resolved.push(found)
    }
    if (problems.length > 0) return yield* Effect.fail(problems as ParamProblems)
    return { ...(raw as object), reclaim: resolved }
  })

export const orphansCleanup = defineKind({
  name: "orphans.cleanup",
  params: Params,
  outputs: { report: VALUE },
  resources: noResources,
  prepare,
  handler: (p, ctx) =>
    Effect.flatMap(CairnConfig, (config) =>
    cleanupOrphans({
      protectionSeconds: p.protection_seconds ?? Duration.toSeconds(config.orphanProtection),
      reclaim: p.reclaim?.map((r) => r.id),
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
