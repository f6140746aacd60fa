/**
 * `file.publish`: a publication of a repository version — its files by relative path, and a
 * PULP_MANIFEST listing them (stored as an artifact). The version is immutable, so publishing
 * takes no lock on the repository and runs beside later syncs of it; the task holds the version from
 * its submission (or from the commit that cut it) until it settles, so a release meanwhile changes
 * nothing for it. The publication is held by the repository while it keeps the version.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { monotonicFactory } from "ulid"
import { txRows } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind, FutureRef, noResources } from "../../engine/kind.js"
import { ownedByTask, storeArtifact } from "../artifacts.js"
import { holdForConsumers } from "../lifecycle/retention.js"
import { formatManifest } from "../manifest.js"
import { ArtifactStorage } from "../storage.js"
import { versionContent } from "../versions.js"
import { orDbFailure, PUBLICATION, REPOSITORY_VERSION } from "./common.js"

const newId = monotonicFactory()

/** A fresh one-chunk source each time it is called (a put may be retried). */
async function* bytes(b: Uint8Array) {
  yield b
}

const Params = Schema.Struct({
  version: FutureRef(REPOSITORY_VERSION)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const filePublish = defineKind({
  name: "file.publish",
  params: Params,
  outputs: { publication: PUBLICATION },
  resources: noResources,
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const storage = yield* ArtifactStorage
      const version = ctx.inputs.get(p.version.$ref)?.value as { repository: string; version: string; number: number; name?: string } | undefined
      if (!version) return yield* new TaskFailure({ code: "task_failed", message: "the version input is not resolved" })
      const content = yield* versionContent(version.version).pipe(
        Effect.catchTag("NotFound", (e) => Effect.fail(new TaskFailure({ code: "not_found", message: e.message })))
      )
      const manifest = Buffer.from(formatManifest(content), "utf8")
      const stored = yield* storeArtifact(Effect.suspend(() => storage.put(bytes(manifest))), ownedByTask(ctx.taskId)).pipe(
        Effect.mapError((e) => e._tag === "DbError" ? e : new TaskFailure({ code: "storage_error", message: e.message }))
      )
      const id = newId()
      return new Commit((tx) =>
        Effect.gen(function*() {
          yield* txRows(tx, sql`INSERT INTO publications (id, version_id, future_id, manifest_artifact_id)
                                VALUES (${id}, ${version.version}, ${ctx.outputs.publication!}, ${stored.id})`)
          yield* holdForConsumers(tx, ctx.outputs.publication!, { publication: id })
          return {
            publication: {
              publication: id,
              repository: version.repository,
              version: version.version,
              number: version.number,
              ...(version.name ? { name: version.name } : {}),
              files: content.length
            }
          }
        }))
    }).pipe(orDbFailure)
})
