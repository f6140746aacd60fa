/**
 * `repository.modify`: a new version from a base version (default: the latest) with content added
 * (content unit ids, or `{ relative_path, artifact }` for an uploaded artifact) and removed (ids, or
 * "*" for everything). Holds `repository:<id>` exclusively, like a sync.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { Db } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind, FutureRef } from "../../engine/kind.js"
import { ensureUnits, linkArtifacts, unitKey } from "../content-units.js"
import { isSafeRelativePath } from "../manifest.js"
import { cutVersion, versionValue } from "../versions.js"
import { failWith, NamedRef, orDbFailure, REPOSITORY_VERSION, resolveNamedFields } from "./common.js"

const RelativePath = Schema.String.pipe(
  Schema.filter((p) => isSafeRelativePath(p) || "a relative path: '/'-separated, no empty, '.' or '..' segments, no leading '/'")
)

const Params = Schema.Struct({
  repository: NamedRef,
  add: Schema.optional(Schema.Array(Schema.Union(
    Schema.String,
    Schema.Struct({ relative_path: RelativePath, artifact: Schema.String })
  ))),
  remove: Schema.optional(Schema.Union(Schema.Array(Schema.String), Schema.Literal("*"))),
  base_version: Schema.optional(FutureRef(REPOSITORY_VERSION))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const repositoryModify = defineKind({
  name: "repository.modify",
  params: Params,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["repository", "repository"]]),
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const db = yield* Db
      const add = p.add ?? []
      const ids = add.filter((a): a is string => typeof a === "string")
      const uploads = add.filter((a): a is { relative_path: string; artifact: string } => typeof a !== "string")
      const removeIds = p.remove === "*" ? [] : [...(p.remove ?? [])]

      let baseNumber: number | undefined
      if (p.base_version) {
        const base = ctx.inputs.get(p.base_version.$ref)?.value as { repository: string; number: number } | undefined
        if (!base) return yield* new TaskFailure({ code: "task_failed", message: "base_version is not resolved" })
        if (base.repository !== p.repository.id) {
          return yield* new TaskFailure({ code: "invalid_params", message: `base_version belongs to another repository than ${p.repository.name}` })
        }
        baseNumber = base.number
      }

      const known = yield* db.rows<{ id: string; relative_path: string }>(
        sql`SELECT id, relative_path FROM content_units WHERE id = ANY(${sql.param([...new Set([...ids, ...removeIds])])}::text[])`
      )
      const missing = [...new Set([...ids, ...removeIds])].filter((id) => !known.some((k) => k.id === id))
      if (missing.length > 0) {
        return yield* new TaskFailure({ code: "not_found", message: `no content unit ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", ..." : ""}` })
      }
      // Uploaded artifacts become this task's too, so that the upload expiring does not matter.
      const artifacts = yield* db.rows<{ id: string; sha256: string; size: string }>(sql`
        WITH owned AS (
          INSERT INTO task_artifacts (task_id, artifact_id)
          SELECT ${ctx.taskId}, id FROM artifacts WHERE id = ANY(${sql.param(uploads.map((u) => u.artifact))}::text[])
          ON CONFLICT DO NOTHING
        )
        SELECT id, sha256, size FROM artifacts WHERE id = ANY(${sql.param(uploads.map((u) => u.artifact))}::text[])`)
      const byId = new Map(artifacts.map((a) => [a.id, { sha256: a.sha256, size: Number(a.size) }]))
      const gone = uploads.filter((u) => !byId.has(u.artifact))
      if (gone.length > 0) return yield* new TaskFailure({ code: "not_found", message: `no artifact ${gone.map((g) => g.artifact).join(", ")}` })

      // One unit per relative path in a version: two added units on one path is a contradiction.
      const paths = new Map<string, number>()
      for (const k of known) if (ids.includes(k.id)) paths.set(k.relative_path, (paths.get(k.relative_path) ?? 0) + 1)
      for (const u of uploads) paths.set(u.relative_path, (paths.get(u.relative_path) ?? 0) + 1)
      const dup = [...paths].find(([, n]) => n > 1)
      if (dup) return yield* new TaskFailure({ code: "invalid_params", message: `two added content units have the relative path ${dup[0]}` })

      return new Commit((tx) =>
        Effect.gen(function*() {
          const specs = uploads.map((u) => ({ relative_path: u.relative_path, ...byId.get(u.artifact)! }))
          const made = yield* ensureUnits(tx, specs)
          const uploaded = specs.map((s) => made.get(unitKey(s))!)
          yield* linkArtifacts(tx, uploads.map((u, i) => ({ content: uploaded[i]!, artifact: u.artifact })))
          const v = yield* cutVersion(tx, {
            repositoryId: p.repository.id,
            baseNumber,
            add: [...ids, ...uploaded],
            remove: p.remove === "*" ? "*" : removeIds,
            futureId: ctx.outputs.version!
          }).pipe(Effect.mapError(failWith("not_found")))
          return { version: { ...versionValue(v), name: p.repository.name } }
        }))
    }).pipe(orDbFailure)
})
