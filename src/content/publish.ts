/**
 * `<type>.publish` (`file.publish`, `python.publish`): a publication of a repository version of
 * that type — the version's units, each served at the path its plugin gives it, and the files the
 * plugin generates from them (a PULP_MANIFEST, simple index pages), each stored as an artifact and
 * recorded in `publication_files` (src/content/plugin.ts). Every type publishes through this one
 * kind factory; a plugin supplies only `publication.generate`.
 *
 * The version is immutable, so publishing takes no lock on the repository and runs beside later
 * syncs of it; the task holds the version from its submission (or from the commit that cut it)
 * until it settles, so a release meanwhile changes nothing for it. The publication is held by the
 * repository while it keeps the version.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { monotonicFactory } from "ulid"
import { Db, txRows } from "../db/client.js"
import { TaskFailure } from "../engine/errors.js"
import { Commit, defineKind, FutureRef, noResources, type TaskKind } from "../engine/kind.js"
import { ownedByTask, storeArtifact } from "./artifacts.js"
import { orDbFailure, PUBLICATION, REPOSITORY_VERSION } from "./kinds/common.js"
import { holdForConsumers } from "./lifecycle/retention.js"
import type { ContentPlugin, GeneratedFile } from "./plugin.js"
import { relativePathProblem } from "./policy/paths.js"
import type { ContentServices } from "./services.js"
import { ArtifactStorage } from "./storage.js"
import { versionContent } from "./versions.js"

const newId = monotonicFactory()

/** A fresh one-chunk source each time it is called (a put may be retried). */
async function* bytes(b: Uint8Array) {
  yield b
}

const Params = Schema.Struct({
  version: FutureRef(REPOSITORY_VERSION)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/**
 * What a plugin generated must be servable: a safe relative path (a directory's page ending in
 * one `/`), one file per path and media type. Anything else is the plugin's bug.
 */
const checkGenerated = (type: string, files: ReadonlyArray<GeneratedFile>) => {
  const seen = new Set<string>()
  for (const f of files) {
    const path = f.relative_path.endsWith("/") ? f.relative_path.slice(0, -1) : f.relative_path
    const problem = relativePathProblem(path) ?? (seen.has(`${f.relative_path}\n${f.media_type}`) ? "generated twice" : undefined)
    if (problem !== undefined) throw new Error(`the ${type} plugin generated ${JSON.stringify(f.relative_path)} (${f.media_type}): ${problem}`)
    seen.add(`${f.relative_path}\n${f.media_type}`)
  }
}

/** The repository type of a version (every revision of a repository repeats its type). */
const versionType = (versionId: string) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ type: string }>(sql`
      SELECT r.type FROM repository_versions v JOIN repository_revisions r ON r.repository_id = v.repository_id
      WHERE v.id = ${versionId} LIMIT 1`)).pipe(Effect.map((rows) => rows[0]?.type))

export const publishKind = (plugin: ContentPlugin): TaskKind<Schema.Schema.Type<typeof Params>, ContentServices> =>
  defineKind({
    name: `${plugin.type}.publish`,
    params: Params,
    outputs: { publication: PUBLICATION },
    resources: noResources,
    handler: (p, ctx) =>
      Effect.gen(function*() {
        const storage = yield* ArtifactStorage
        const version = ctx.inputs.get(p.version.$ref)?.value as { repository: string; version: string; number: number; name?: string } | undefined
        if (!version) return yield* new TaskFailure({ code: "task_failed", message: "the version input is not resolved" })
        const type = yield* versionType(version.version)
        if (type !== undefined && type !== plugin.type) {
          return yield* new TaskFailure({
            code: "invalid_params",
            message: `version ${version.number} is of a ${type} repository; ${plugin.type}.publish publishes ${plugin.type} repositories`
          })
        }
        const content = yield* versionContent(version.version).pipe(
          Effect.catchTag("NotFound", (e) => Effect.fail(new TaskFailure({ code: "not_found", message: e.message })))
        )
        const generated = yield* plugin.publication.generate(content)
        checkGenerated(plugin.type, generated)
        const stored: Array<{ readonly file: GeneratedFile; readonly artifact: string }> = []
        for (const file of generated) {
          const s = yield* storeArtifact(Effect.suspend(() => storage.put(bytes(file.bytes))), ownedByTask(ctx.taskId)).pipe(
            Effect.mapError((e) => e._tag === "DbError" ? e : new TaskFailure({ code: "storage_error", message: e.message }))
          )
          stored.push({ file, artifact: s.id })
        }
        const id = newId()
        return new Commit((tx) =>
          Effect.gen(function*() {
            yield* txRows(tx, sql`INSERT INTO publications (id, version_id, future_id)
                                  VALUES (${id}, ${version.version}, ${ctx.outputs.publication!})`)
            if (stored.length > 0) {
              const rows = JSON.stringify(stored.map((s, i) => ({ p: s.file.relative_path, m: s.file.media_type, n: i, a: s.artifact })))
              yield* txRows(tx, sql`
                INSERT INTO publication_files (publication_id, relative_path, media_type, position, artifact_id)
                SELECT ${id}, p, m, n, a FROM jsonb_to_recordset(${rows}::jsonb) AS r(p text, m text, n int, a text)`)
            }
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
