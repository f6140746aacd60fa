/**
 * `file.sync`: make a new version of a repository from a remote's PULP_MANIFEST.
 *
 * 1. Fetch and parse the manifest (a malformed line fails the task, naming the line); resolve each
 *    entry's URL next to the manifest (a path escaping it fails the task). The remote revision's
 *    network settings (proxy, TLS, credentials, timeouts, retries, rate limit: src/content/remote-access.ts)
 *    apply to the manifest and to every file.
 * 2. Digests already stored become owned by this task at once (so a concurrent orphan cleanup
 *    keeps them); with policy `immediate` the others are downloaded, `download_concurrency` at a
 *    time and at most CAIRN_HOST_DOWNLOAD_SLOTS per host cluster-wide, each verified while stored
 *    and adopted in batches (src/content/fetch.ts).
 *    With policy `on_demand` nothing is downloaded; the content app fetches on first request.
 *    With `skip_missing`, a file the upstream answers 404 or 410 for is left out (another entry
 *    with the same digest is tried first) and listed in the version's value as `missing`.
 * 3. One commit: the content units, their artifacts and sources, and the version (mirror: exactly
 *    the manifest, less what is missing; otherwise added on top of the latest). A sync that changes
 *    nothing resolves to the latest version instead of cutting an empty one.
 *
 * Holds `repository:<id>` exclusively: syncs and modifications of one repository run in
 * submission order.
 */
import { Effect, Either, Schema } from "effect"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind } from "../../engine/kind.js"
import { adoptExistingForTask } from "../../content/artifacts.js"
import { ensureUnits, linkArtifacts, recordSources, unitKey } from "../../content/content-units.js"
import { fetchText, resolveRelative } from "../../content/download.js"
import { fetchAll } from "../../content/fetch.js"
import { failWith, NamedRef, orDbFailure, REPOSITORY_VERSION, resolveNamedFields } from "../../content/kinds/common.js"
import { remoteAccess } from "../../content/remote-access.js"
import { cutVersion, versionValue } from "../../content/versions.js"
import { parseManifest } from "./manifest.js"
import { fileUnit } from "./unit.js"

const Params = Schema.Struct({
  repository: NamedRef,
  remote: NamedRef,
  mirror: Schema.optional(Schema.Boolean),
  /**
   * Files the upstream answers 404 (or 410) for are left out of the version instead of failing
   * the task; the version's value lists them as `missing` (relative paths, sorted).
   */
  skip_missing: Schema.optional(Schema.Boolean)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/** Manifests larger than this are refused (about 2.5 million entries). */
const MANIFEST_MAX_BYTES = 256 * 1024 * 1024

const storageFailure = (e: { readonly _tag: string; readonly message: string }, relativePath: string) => {
  const code = e._tag === "DigestMismatch" ? "digest_mismatch"
    : e._tag === "SizeMismatch" ? "size_mismatch"
    : e._tag === "DownloadError" ? "download_failed"
    : e._tag === "DbError" ? "db_error"
    : "storage_error"
  return new TaskFailure({ code, message: relativePath === "" ? e.message : `${relativePath}: ${e.message}` })
}

export const fileSync = defineKind({
  name: "file.sync",
  params: Params,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["repository", "repository"], ["remote", "remote"]], fileUnit.type),
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const remote = yield* remoteAccess(p.remote.revision).pipe(
        Effect.catchTag("RemoteUnavailable", (e) => new TaskFailure({ code: "remote_unavailable", message: e.message }))
      )

      // 1. The manifest.
      const text = yield* fetchText(remote.url, { ...remote.options, maxBytes: MANIFEST_MAX_BYTES }).pipe(
        Effect.catchTag("DownloadError", (e) => new TaskFailure({ code: "manifest_unavailable", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` })),
        Effect.catchTag("RemoteUrlError", (e) => new TaskFailure({ code: "manifest_unavailable", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` }))
      )
      const entries = yield* Either.mapLeft(
        parseManifest(text),
        (e) => new TaskFailure({ code: "manifest_invalid", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` })
      )
      const urls = new Map<string, string>()
      for (const e of entries) {
        const u = resolveRelative(remote.url, e.relative_path)
        if (Either.isLeft(u)) return yield* new TaskFailure({ code: "manifest_invalid", message: `line ${e.line}: ${u.left.message}` })
        urls.set(e.relative_path, u.right.href)
      }
      const total = entries.length
      yield* ctx.progress({ done: 0, total, unit: "files" })

      // 2. Artifacts: those stored already, then the downloads.
      const stored = yield* adoptExistingForTask(entries.map((e) => e.sha256), ctx.taskId)
      // Entries per digest, so that progress counts files (several may share one digest).
      const perDigest = new Map<string, number>()
      for (const e of entries) perDigest.set(e.sha256, (perDigest.get(e.sha256) ?? 0) + 1)
      let done = 0
      for (const [sha, n] of perDigest) if (stored.has(sha)) done += n
      // Relative paths the upstream answered 404 or 410 for (skip_missing).
      const missing = new Set<string>()
      if (remote.policy === "immediate") {
        // Per digest not stored yet, its entries: the first is downloaded; with skip_missing, the
        // next is tried when one is missing upstream.
        const wanted = new Map<string, Array<(typeof entries)[number]>>()
        for (const e of entries) {
          if (stored.has(e.sha256)) continue
          const list = wanted.get(e.sha256)
          if (list) list.push(e)
          else wanted.set(e.sha256, [e])
        }
        const fileOf = (e: (typeof entries)[number]) => ({ url: urls.get(e.relative_path)!, sha256: e.sha256, size: e.size, relativePath: e.relative_path })
        yield* ctx.progress({ done, total, unit: "files" })
        yield* fetchAll(
          [...wanted.values()].map((list) => fileOf(list[0]!)),
          {
            concurrency: remote.downloadConcurrency,
            owner: { task: ctx.taskId, worker: ctx.workerId },
            download: remote.options,
            onAdopted: (f, id) => {
              stored.set(f.sha256, id)
              done += perDigest.get(f.sha256) ?? 1
              return ctx.progress({ done, total, unit: "files" })
            },
            onMissing: p.skip_missing !== true ? undefined : (f) =>
              Effect.suspend(() => {
                missing.add(f.relativePath)
                const list = wanted.get(f.sha256)!
                const next = list[list.findIndex((e) => e.relative_path === f.relativePath) + 1]
                if (next !== undefined) return Effect.succeed(fileOf(next))
                done += list.length
                return Effect.as(ctx.progress({ done, total, unit: "files" }), undefined)
              })
          }
        ).pipe(Effect.catchTag("FetchFailed", (e) => Effect.fail(storageFailure(e.cause, e.relativePath))))
      }
      yield* ctx.progress({ done: remote.policy === "immediate" ? done : total, total, unit: "files" })
      // The version leaves out what is missing upstream, and what it could not store because of it.
      const kept = missing.size === 0 ? entries : entries.filter((e) => !missing.has(e.relative_path) && (remote.policy !== "immediate" || stored.has(e.sha256)))

      // 3. The version, with its payload rows, in the settle transaction.
      return new Commit((tx) =>
        Effect.gen(function*() {
          const ids = yield* ensureUnits(tx, fileUnit, kept)
          const unitOf = (e: (typeof entries)[number]) => ids.get(unitKey(e))!
          yield* linkArtifacts(tx, kept.flatMap((e) => stored.has(e.sha256) ? [{ content: unitOf(e), artifact: stored.get(e.sha256)! }] : []))
          yield* recordSources(tx, p.remote.revision, kept.map((e) => ({ content: unitOf(e), url: urls.get(e.relative_path)! })))
          const v = yield* cutVersion(tx, {
            repositoryId: p.repository.id,
            add: kept.map(unitOf),
            remove: [],
            exact: p.mirror === true,
            futureId: ctx.outputs.version!
          }).pipe(Effect.mapError(failWith("not_found")))
          const value = { ...versionValue(v), name: p.repository.name }
          return { version: p.skip_missing === true ? { ...value, missing: [...missing].sort() } : value }
        }))
    }).pipe(orDbFailure, Effect.mapError((e) => e._tag === "TaskFailure" ? e : storageFailure(e, "")))
})
