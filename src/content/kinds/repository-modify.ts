/**
 * `repository.modify`: a new version from a base version (default: the latest) with content added
 * (content unit ids, or uploaded artifacts in the shape the repository's content type takes:
 * `{ relative_path, artifact }` for files, src/content/plugin.ts `modify.add`) and removed (ids, or
 * "*" for everything). Holds `repository:<id>` exclusively, like a sync. Shared by every type: the
 * units added must be of the repository's type, and no two of them may have one repository key.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { Db } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind, FutureRef, type ParamProblems } from "../../engine/kind.js"
import { formatParseError } from "../../engine/submit/validate.js"
import { ensureUnits, linkArtifacts, unitKey } from "../content-units.js"
import { pluginOf } from "../registry.js"
import { cutVersion, REPO_KEY, versionValue } from "../versions.js"
import { failWith, NamedRef, orDbFailure, REPOSITORY_VERSION, resolveNamedFields, revisionType } from "./common.js"

/** An uploaded artifact to add; its shape is the repository's type's (checked by `prepare`). */
const Uploaded = Schema.Struct({ artifact: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.Unknown }))

const Params = Schema.Struct({
  repository: NamedRef,
  add: Schema.optional(Schema.Array(Schema.Union(Schema.String, Uploaded))),
  remove: Schema.optional(Schema.Union(Schema.Array(Schema.String), Schema.Literal("*"))),
  base_version: Schema.optional(FutureRef(REPOSITORY_VERSION))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** At submission: the repository by name, and every uploaded entry of `add` in its type's shape. */
const prepare = (raw: unknown) =>
  Effect.gen(function*() {
    const params = (yield* resolveNamedFields(raw, [["repository", "repository"]])) as { repository?: unknown; add?: unknown }
    const repo = params?.repository as NamedRef | undefined
    if (typeof repo !== "object" || repo === null || !Array.isArray(params.add)) return params
    const type = yield* revisionType("repository", repo.revision)
    if (type === undefined) return params
    const shape = Schema.decodeUnknownEither(pluginOf(type).modify.add, { onExcessProperty: "error" })
    const problems: Array<string> = []
    params.add.forEach((entry, i) => {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) return // the Schema reports it
      const decoded = shape(entry)
      if (decoded._tag === "Left") problems.push(...formatParseError(decoded.left, `params.add.${i}`))
    })
    if (problems.length > 0) return yield* Effect.fail(problems as ParamProblems)
    yield* checkUploads(type, params.add.filter((a) => a !== null && typeof a === "object"))
    return params
  })

type ArtifactRow = { readonly id: string; readonly sha256: string; readonly size: string }

/** What a type's `modify.resolve` is given of the uploaded artifacts. */
const digestsById = (rows: ReadonlyArray<ArtifactRow>) => new Map(rows.map((a) => [a.id, { sha256: a.sha256, size: Number(a.size) }]))

/**
 * At submission, the uploaded files themselves: the type's `resolve` reads what it needs of their
 * bytes (a wheel's METADATA), so a file that is not what its entry says is a 400 and nothing is
 * submitted. An artifact that does not exist, or a store that cannot be read right now, is left
 * to the handler (it fails the task, as when it runs).
 */
const checkUploads = (type: string, entries: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const uploads = entries as ReadonlyArray<{ artifact: string }>
    if (uploads.length === 0) return
    const db = yield* Db
    const byId = digestsById(yield* db.rows<ArtifactRow>(
      sql`SELECT id, sha256, size FROM artifacts WHERE id = ANY(${sql.param(uploads.map((u) => u.artifact))}::text[])`))
    const present = uploads.filter((u) => byId.has(u.artifact))
    const refused = yield* pluginOf(type).modify.resolve(present, byId).pipe(
      Effect.as(undefined),
      Effect.catchIf((e): e is TaskFailure => e instanceof TaskFailure && e.code.startsWith("invalid_"), (e) => Effect.succeed(e.message)),
      Effect.catchAll(() => Effect.succeed(undefined))
    )
    if (refused !== undefined) return yield* Effect.fail([`params.add: ${refused}`] as ParamProblems)
  })

export const repositoryModify = defineKind({
  name: "repository.modify",
  params: Params,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare,
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const db = yield* Db
      const type = yield* revisionType("repository", p.repository.revision)
      if (type === undefined) return yield* new TaskFailure({ code: "not_found", message: `repository ${p.repository.name} was deleted` })
      const plugin = pluginOf(type)
      const add = p.add ?? []
      const ids = add.filter((a): a is string => typeof a === "string")
      // Checked in this shape at submission.
      const uploads = Schema.decodeUnknownSync(Schema.Array(plugin.modify.add))(add.filter((a) => typeof a !== "string")) as ReadonlyArray<{ artifact: string }>
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

      const known = yield* db.rows<{ id: string; type: string; repo_key: string }>(
        sql`SELECT u.id, u.type, ${REPO_KEY("u")} AS repo_key FROM content_units u
            WHERE u.id = ANY(${sql.param([...new Set([...ids, ...removeIds])])}::text[])`
      )
      const missing = [...new Set([...ids, ...removeIds])].filter((id) => !known.some((k) => k.id === id))
      if (missing.length > 0) {
        return yield* new TaskFailure({ code: "not_found", message: `no content unit ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", ..." : ""}` })
      }
      const foreign = known.filter((k) => ids.includes(k.id) && k.type !== type)
      if (foreign.length > 0) {
        return yield* new TaskFailure({
          code: "invalid_params",
          message: `${p.repository.name} is a ${type} repository; content unit ${foreign[0]!.id} is of type ${foreign[0]!.type}`
        })
      }
      // Uploaded artifacts become this task's too, so that the upload expiring does not matter.
      const artifacts = yield* db.rows<ArtifactRow>(sql`
        WITH owned AS (
          INSERT INTO task_artifacts (task_id, artifact_id)
          SELECT ${ctx.taskId}, id FROM artifacts WHERE id = ANY(${sql.param(uploads.map((u) => u.artifact))}::text[])
          ON CONFLICT DO NOTHING
        )
        SELECT id, sha256, size FROM artifacts WHERE id = ANY(${sql.param(uploads.map((u) => u.artifact))}::text[])`)
      const byId = digestsById(artifacts)
      const gone = uploads.filter((u) => !byId.has(u.artifact))
      if (gone.length > 0) return yield* new TaskFailure({ code: "not_found", message: `no artifact ${gone.map((g) => g.artifact).join(", ")}` })
      const uploaded = yield* plugin.modify.resolve(uploads, byId)

      // One unit per repository key in a version: two added units with one key is a contradiction.
      const keys = new Map<string, number>()
      for (const k of known) if (ids.includes(k.id)) keys.set(k.repo_key, (keys.get(k.repo_key) ?? 0) + 1)
      for (const u of uploaded) {
        const key = plugin.unit.repoKey(u.unit)
        keys.set(key, (keys.get(key) ?? 0) + 1)
      }
      const dup = [...keys].find(([, n]) => n > 1)
      if (dup) return yield* new TaskFailure({ code: "invalid_params", message: `two added content units have the ${plugin.unit.repoKeyName} ${dup[0]}` })

      return new Commit((tx) =>
        Effect.gen(function*() {
          const made = yield* ensureUnits(tx, plugin, uploaded.map((u) => ({ ...u.unit, detail: u.detail })))
          const units = uploaded.map((u) => made.get(unitKey(u.unit))!)
          yield* linkArtifacts(tx, uploaded.map((u, i) => ({ content: units[i]!, artifact: u.artifact })))
          const v = yield* cutVersion(tx, {
            repositoryId: p.repository.id,
            baseNumber,
            add: [...ids, ...units],
            remove: p.remove === "*" ? "*" : removeIds,
            futureId: ctx.outputs.version!
          }).pipe(Effect.mapError(failWith("not_found")))
          return { version: { ...versionValue(v), name: p.repository.name } }
        }))
    }).pipe(orDbFailure)
})
