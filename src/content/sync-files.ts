/**
 * What every `<type>.sync` does once its plugin has read the remote's index (a PULP_MANIFEST, a
 * simple index) into the files to keep, each with its digest and URL: the params they share, and
 * from the files to the version.
 *
 * 1. Digests already stored become owned by the task at once (so a concurrent orphan cleanup keeps
 *    them). With policy `immediate` the others are downloaded, `download_concurrency` at a time and
 *    at most CAIRN_HOST_DOWNLOAD_SLOTS per host cluster-wide, each verified against its digest while
 *    it is stored (a mismatch fails the task and keeps nothing of that file) and adopted in batches
 *    (./fetch.ts). A file whose size the index does not give is sized by its stored bytes. With
 *    policy `on_demand` nothing is downloaded (the content app fetches on first request), and every
 *    size must be known. With `skip_missing`, a file the upstream answers 404 or 410 for is left out
 *    (another entry with the same digest is tried first) and listed in the version's value as
 *    `missing`. Many files to download are spread over the cluster's workers in download shards,
 *    child tasks that adopt what they store for this task (./sync-shards.ts).
 * 2. One commit: the units (with the plugin's detail rows), their artifacts and sources, and the
 *    version (mirror: exactly the entries, less what is missing; otherwise added on top of the
 *    latest). A sync that changes nothing resolves to the latest version instead of cutting an
 *    empty one.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { Db } from "../db/client.js"
import { TaskFailure } from "../engine/errors.js"
import { Commit, type TaskContext } from "../engine/kind.js"
import { adoptExistingForTask } from "./artifacts.js"
import { ensureUnits, linkArtifacts, recordSources, unitKey } from "./content-units.js"
import { fetchAll, type RemoteFile } from "./fetch.js"
import { failWith, NamedRef, orDbFailure } from "./kinds/common.js"
import type { UnitType } from "./plugin.js"
import type { RemoteAccess } from "./remote-access.js"
import { openRemote, syncFailure } from "./sync-failure.js"
import { downloadInShards, shardCount } from "./sync-shards.js"
import { cutVersion, versionValue } from "./versions.js"

/** Every sync's params: `{ repository, remote, mirror?, skip_missing? }`. */
export const SyncParams = Schema.Struct({
  repository: NamedRef,
  remote: NamedRef,
  mirror: Schema.optional(Schema.Boolean),
  /**
   * Files the upstream answers 404 (or 410) for are left out of the version instead of failing
   * the task; the version's value lists them as `missing` (sorted).
   */
  skip_missing: Schema.optional(Schema.Boolean)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type SyncParams = Schema.Schema.Type<typeof SyncParams>

/** A file to keep, as the plugin read it from the remote's index. */
export interface SyncEntry<D> {
  readonly relative_path: string
  /** Lowercase hex: what the stored bytes must hash to. */
  readonly sha256: string
  /** Undefined when the index does not say (the stored bytes tell). */
  readonly size: number | undefined
  readonly url: string
  readonly detail?: D | undefined
}

/** How a plugin's sync reaches its remote (./sync-failure.ts). */
export { openRemote }

/** Sizes by digest: the entries', then those of stored artifacts the entries gave none for. */
const knownSizes = (entries: ReadonlyArray<SyncEntry<unknown>>, stored: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const sizes = new Map<string, number>()
    for (const e of entries) if (e.size !== undefined) sizes.set(e.sha256, e.size)
    const unsized = [...stored].filter(([sha]) => !sizes.has(sha)).map(([, id]) => id)
    if (unsized.length > 0) {
      const db = yield* Db
      const rows = yield* db.rows<{ sha256: string; size: number }>(
        sql`SELECT sha256, size::float8 AS size FROM artifacts WHERE id = ANY(${sql.param(unsized)}::text[])`
      )
      for (const r of rows) sizes.set(r.sha256, r.size)
    }
    return sizes
  })

/** Steps 1 and 2 of the header: the entries' bytes (or not, on demand), then the commit that cuts the version. */
export const syncEntries = <D>(
  unitType: UnitType<D>,
  p: SyncParams,
  ctx: TaskContext,
  remote: RemoteAccess,
  entries: ReadonlyArray<SyncEntry<D>>,
  /** Reported with the missing files (with skip_missing): what the plugin found missing before (projects, say). */
  missingBefore: ReadonlyArray<string> = []
) =>
  Effect.gen(function*() {
    const total = entries.length
    yield* ctx.progress({ done: 0, total, unit: "files" })
    const stored = yield* adoptExistingForTask(entries.map((e) => e.sha256), ctx.taskId)
    const sizes = yield* knownSizes(entries, stored)
    // Entries per digest, so that progress counts files (several may share one digest).
    const perDigest = new Map<string, number>()
    for (const e of entries) perDigest.set(e.sha256, (perDigest.get(e.sha256) ?? 0) + 1)
    let done = 0
    for (const [sha, n] of perDigest) if (stored.has(sha)) done += n
    // Entries the upstream answered 404 or 410 for (skip_missing).
    const missing = new Set<string>()
    if (remote.policy === "on_demand") {
      // The content app announces a file's length before it has its bytes.
      const unsized = entries.find((e) => !sizes.has(e.sha256))
      if (unsized !== undefined) {
        return yield* new TaskFailure({
          code: "size_unknown",
          message: `${unsized.relative_path}: the remote ${remote.name} does not give its size, which an on_demand remote needs (${unsized.url})`
        })
      }
    } else {
      // Per digest not stored yet, its entries: the first is downloaded; with skip_missing, the
      // next is tried when one is missing upstream.
      const wanted = new Map<string, Array<SyncEntry<D>>>()
      for (const e of entries) {
        if (stored.has(e.sha256)) continue
        const list = wanted.get(e.sha256)
        if (list) list.push(e)
        else wanted.set(e.sha256, [e])
      }
      const fileOf = (e: SyncEntry<D>): RemoteFile => ({ url: e.url, sha256: e.sha256, size: sizes.get(e.sha256), relativePath: e.relative_path })
      yield* ctx.progress({ done, total, unit: "files" })
      const shardFiles = [...wanted].map(([sha, list]) => [sha, sizes.get(sha) ?? null, list.map((e) => [e.relative_path, e.url] as const)] as const)
      const shards = yield* shardCount(shardFiles)
      if (shards > 1) {
        const got = yield* downloadInShards(ctx, { revision: p.remote.revision, skipMissing: p.skip_missing === true, downloadConcurrency: remote.downloadConcurrency }, shardFiles, shards)
        for (const [sha, a] of got.adopted) {
          stored.set(sha, a.id)
          sizes.set(sha, a.size)
        }
        for (const m of got.missing) missing.add(m)
        done = total
      } else yield* fetchAll(
        [...wanted.values()].map((list) => fileOf(list[0]!)),
        {
          concurrency: remote.downloadConcurrency,
          owner: { task: ctx.taskId, worker: ctx.workerId },
          download: remote.options,
          onAdopted: (f, id) => {
            stored.set(f.sha256, id)
            sizes.set(f.sha256, f.size)
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
      ).pipe(Effect.catchTag("FetchFailed", (e) => Effect.fail(syncFailure(e.cause, e.relativePath))))
    }
    yield* ctx.progress({ done: remote.policy === "immediate" ? done : total, total, unit: "files" })
    // The version leaves out what is missing upstream, and what it could not store because of it.
    const kept = entries
      .filter((e) => !missing.has(e.relative_path) && (remote.policy !== "immediate" || stored.has(e.sha256)))
      .map((e) => ({ ...e, size: sizes.get(e.sha256)! }))

    return new Commit((tx) =>
      Effect.gen(function*() {
        const ids = yield* ensureUnits(tx, unitType, kept)
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
        return { version: p.skip_missing === true ? { ...value, missing: [...missingBefore, ...missing].sort() } : value }
      }))
  }).pipe(orDbFailure, Effect.mapError((e) => e._tag === "TaskFailure" ? e : syncFailure(e, "")))
