/**
 * `python.sync { repository, remote, mirror?, skip_missing? }` -> `version`: a new version of a
 * python repository from a remote simple index (remote-index.ts reads it: the projects the remote's
 * `includes` name, or all, filtered by `includes` and `excludes`).
 *
 * Then as `file.sync` does, through the same core parts: distributions already stored become the
 * task's at once; with policy `immediate` the others are downloaded through the host slots
 * (src/content/fetch.ts), each verified against the index's sha256 while it is stored, so a file
 * whose bytes do not match fails the sync and is never kept; with `on_demand` nothing is
 * downloaded and the content app fetches a file from its index URL at its first request. One
 * commit records the units (with their python_packages rows), their artifacts and sources, and
 * the version (mirror: exactly what the index lists and the remote selects; otherwise added on top
 * of the latest). With `skip_missing`, files (and included projects) the upstream answers 404 or
 * 410 for are left out and listed in the version's value as `missing`.
 *
 * Holds `repository:<id>` exclusively, like every change of a repository.
 */
import { sql } from "drizzle-orm"
import { Effect, Either, Schema } from "effect"
import { Db } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind } from "../../engine/kind.js"
import { adoptExistingForTask } from "../../content/artifacts.js"
import { ensureUnits, linkArtifacts, recordSources, unitKey } from "../../content/content-units.js"
import { fetchAll, type RemoteFile } from "../../content/fetch.js"
import { failWith, NamedRef, orDbFailure, REPOSITORY_VERSION, resolveNamedFields } from "../../content/kinds/common.js"
import { remoteAccess } from "../../content/remote-access.js"
import { cutVersion, versionValue } from "../../content/versions.js"
import { compileSelection } from "./lib/requirements.js"
import { readRemoteIndex, type RemoteDistribution } from "./remote-index.js"
import { detailOf, pythonUnit } from "./units.js"

const Params = Schema.Struct({
  repository: NamedRef,
  remote: NamedRef,
  mirror: Schema.optional(Schema.Boolean),
  skip_missing: Schema.optional(Schema.Boolean)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** The remote's python fields (remote.ts), as stored with its revision. */
const selectionOf = (revision: string, remoteName: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [row] = yield* db.rows<{ type_fields: { includes?: Array<string>; excludes?: Array<string> } | null }>(
      sql`SELECT type_fields FROM remote_revisions WHERE id = ${revision}`
    )
    const selection = compileSelection({ includes: row?.type_fields?.includes, excludes: row?.type_fields?.excludes })
    if (Either.isLeft(selection)) return yield* new TaskFailure({ code: "invalid_remote", message: `remote ${remoteName}: ${selection.left.message}` })
    return selection.right
  })

const fetchFailure = (e: { readonly relativePath: string; readonly cause: { readonly _tag: string; readonly message: string } }) =>
  new TaskFailure({
    code: e.cause._tag === "DigestMismatch" ? "digest_mismatch"
      : e.cause._tag === "SizeMismatch" ? "size_mismatch"
      : e.cause._tag === "DownloadError" ? "download_failed"
      : e.cause._tag === "DbError" ? "db_error"
      : "storage_error",
    message: `${e.relativePath}: ${e.cause.message}`
  })

export const pythonSync = defineKind({
  name: "python.sync",
  params: Params,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["repository", "repository"], ["remote", "remote"]], pythonUnit.type),
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const remote = yield* remoteAccess(p.remote.revision).pipe(
        Effect.catchTag("RemoteUnavailable", (e) => new TaskFailure({ code: "remote_unavailable", message: e.message }))
      )
      const selection = yield* selectionOf(p.remote.revision, p.remote.name)

      // 1. The index: the files the remote selects, with their digests (and sizes).
      const index = yield* readRemoteIndex(remote, selection, { skipMissing: p.skip_missing === true }).pipe(
        Effect.catchTag("IndexUnreadable", (e) => new TaskFailure({ code: e.code, message: e.message }))
      )
      const entries = index.files.map((f: RemoteDistribution) => ({
        relative_path: f.file.filename,
        sha256: f.file.sha256,
        url: f.file.url,
        detail: detailOf(f.file.distribution, f.project, f.file.requiresPython)
      }))
      // Sizes by digest: from the index (JSON pages since PEP 700), else from the stored bytes.
      const sizes = new Map<string, number>()
      for (const f of index.files) if (f.file.size !== undefined) sizes.set(f.file.sha256, f.file.size)
      const total = entries.length
      yield* ctx.progress({ done: 0, total, unit: "files" })

      // 2. Artifacts: those stored already, then (immediate) the downloads, verified as they are stored.
      const stored = yield* adoptExistingForTask(entries.map((e) => e.sha256), ctx.taskId)
      const unsizedStored = [...stored].filter(([sha]) => !sizes.has(sha)).map(([, id]) => id)
      if (unsizedStored.length > 0) {
        const db = yield* Db
        const rows = yield* db.rows<{ sha256: string; size: number }>(
          sql`SELECT sha256, size::float8 AS size FROM artifacts WHERE id = ANY(${sql.param(unsizedStored)}::text[])`
        )
        for (const r of rows) sizes.set(r.sha256, r.size)
      }
      const missing = new Set<string>()
      if (remote.policy === "on_demand") {
        // The content app announces a file's length before it has its bytes.
        const unsized = entries.find((e) => !sizes.has(e.sha256))
        if (unsized !== undefined) {
          return yield* new TaskFailure({
            code: "index_invalid",
            message: `${unsized.url}: the index gives no size for ${unsized.relative_path}, which an on_demand remote needs (PEP 691 JSON pages of API version 1.1 give sizes)`
          })
        }
      } else {
        // One download per digest; with skip_missing, the next file with the same bytes is tried.
        const wanted = new Map<string, Array<RemoteFile>>()
        for (const e of entries) {
          if (stored.has(e.sha256)) continue
          const file = { url: e.url, sha256: e.sha256, size: sizes.get(e.sha256), relativePath: e.relative_path }
          wanted.set(e.sha256, [...(wanted.get(e.sha256) ?? []), file])
        }
        let done = total - [...wanted.values()].reduce((n, l) => n + l.length, 0)
        yield* ctx.progress({ done, total, unit: "files" })
        yield* fetchAll([...wanted.values()].map((l) => l[0]!), {
          concurrency: remote.downloadConcurrency,
          owner: { task: ctx.taskId, worker: ctx.workerId },
          download: remote.options,
          onAdopted: (f, id) => {
            stored.set(f.sha256, id)
            sizes.set(f.sha256, f.size)
            done += wanted.get(f.sha256)!.length
            return ctx.progress({ done, total, unit: "files" })
          },
          onMissing: p.skip_missing !== true ? undefined : (f) =>
            Effect.sync(() => {
              missing.add(f.relativePath)
              const list = wanted.get(f.sha256)!
              return list[list.findIndex((x) => x.relativePath === f.relativePath) + 1]
            })
        }).pipe(Effect.catchTag("FetchFailed", (e) => Effect.fail(fetchFailure(e))))
      }
      yield* ctx.progress({ done: total, total, unit: "files" })
      const kept = entries
        .filter((e) => !missing.has(e.relative_path) && (remote.policy !== "immediate" || stored.has(e.sha256)))
        .map((e) => ({ ...e, size: sizes.get(e.sha256)! }))

      // 3. The version, with its payload rows, in the settle transaction.
      return new Commit((tx) =>
        Effect.gen(function*() {
          const ids = yield* ensureUnits(tx, pythonUnit, kept)
          const unitOf = (e: (typeof kept)[number]) => ids.get(unitKey(e))!
          yield* linkArtifacts(tx, kept.flatMap((e) => stored.has(e.sha256) ? [{ content: unitOf(e), artifact: stored.get(e.sha256)! }] : []))
          yield* recordSources(tx, p.remote.revision, kept.map((e) => ({ content: unitOf(e), url: e.url })))
          const v = yield* cutVersion(tx, {
            repositoryId: p.repository.id,
            add: kept.map(unitOf),
            remove: [],
            exact: p.mirror === true,
            futureId: ctx.outputs.version!
          }).pipe(Effect.mapError(failWith("not_found")))
          const value = { ...versionValue(v), name: p.repository.name }
          return {
            version: p.skip_missing === true
              ? { ...value, missing: [...missing, ...index.missingProjects.map((project) => `${project}/`)].sort() }
              : value
          }
        }))
    }).pipe(orDbFailure, Effect.mapError((e) => e._tag === "TaskFailure" ? e : new TaskFailure({ code: "storage_error", message: e.message })))
})
