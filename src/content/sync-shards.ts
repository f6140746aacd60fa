/**
 * Download shards: a sync with many files to download spreads them over the cluster's workers as
 * child tasks (src/engine/children.ts), so that its downloads, hashing and stores run on as many
 * processes as take them. DESIGN.md §12 "Download shards".
 *
 * The sync (the parent) splits the digests it must download into `content.download-shard` tasks
 * of one child graph and awaits them, lending its slot. Each shard downloads and stores its files
 * like an in-process sync (./fetch.ts: the same host download slots, cluster-wide, and an equal
 * share of the remote's `download_concurrency` as its lanes) and adopts them *for the parent*
 * (`adoptStoredForParent`): from its adoption until the parent's commit an artifact is owned by
 * the parent's `task_artifacts`
 * rows, so no orphan cleanup can take it in between, whether the shard has settled or not; the
 * parent's settle hook releases them, as its own. Ownership rows are written only while the
 * parent still runs the attempt that spawned the shard: a shard of a parent that settled, or was
 * retried, fails (`parent_gone`) at its next adoption, writing nothing.
 *
 * The parent then reads what the shards adopted from its own `task_artifacts` rows (a shard's
 * value is only its files missing upstream, with skip_missing) and commits the version as an
 * in-process sync does. A shard that fails (after its retry) fails the sync with its cause; a
 * shard whose worker died is retried and skips what its earlier attempt adopted.
 *
 * How many: CAIRN_SYNC_SHARDS (default one: in-process; 0: one per live worker slot of the
 * cluster), but no more than leave each shard CAIRN_SYNC_SHARD_MIN_FILES files. A
 * shard's file list is its params, so there are at least enough shards to keep each list well
 * under the params size limit.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db } from "../db/client.js"
import { TaskFailure } from "../engine/errors.js"
import { defineKind, noResources, type TaskContext, VALUE } from "../engine/kind.js"
import { MAX_NODES, MAX_PARAMS_BYTES } from "../engine/submit.js"
import { adoptStoredForParent } from "./artifacts.js"
import { fetchAll, type RemoteFile } from "./fetch.js"
import { openRemote, syncFailure } from "./sync-failure.js"

export const DOWNLOAD_SHARD = "content.download-shard"

/** A shard's file list stays under this share of the params limit. */
const SHARD_PARAMS_BYTES = MAX_PARAMS_BYTES / 2

/** A digest to download: its size if the index gives it, and the (relative path, url) entries to try in order. */
const ShardFile = Schema.Tuple(Schema.String, Schema.NullOr(Schema.Number), Schema.Array(Schema.Tuple(Schema.String, Schema.String)))
type ShardFile = Schema.Schema.Type<typeof ShardFile>

const ShardParams = Schema.Struct({
  /** The sync task, and its attempt that spawned the shard: the files are adopted for it. */
  parent: Schema.String,
  parent_attempt: Schema.Int,
  remote_revision: Schema.String,
  /** Downloads at once for this shard: its share of the remote's download_concurrency. */
  concurrency: Schema.Int.pipe(Schema.between(1, 64)),
  skip_missing: Schema.Boolean,
  files: Schema.Array(ShardFile)
})

/** A shard's value: the relative paths the upstream answered 404 or 410 for (with skip_missing). */
interface ShardValue {
  readonly missing: ReadonlyArray<string>
}

/** Of `digests`, those whose artifacts the task owns now, with their ids and sizes. */
const ownedBy = (task: string, digests: ReadonlyArray<string>) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ sha256: string; id: string; size: number }>(sql`
      SELECT a.sha256, a.id, a.size::float8 AS size FROM task_artifacts ta JOIN artifacts a ON a.id = ta.artifact_id
      WHERE ta.task_id = ${task} AND a.sha256 = ANY(${sql.param([...digests])}::text[])`))

export const downloadShard = defineKind({
  name: DOWNLOAD_SHARD,
  params: ShardParams,
  outputs: { result: VALUE },
  resources: noResources,
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const parent = { task: p.parent, attempt: p.parent_attempt }
      const remote = yield* openRemote(p.remote_revision)
      // A retried shard leaves out what its earlier attempt adopted already.
      const owned = ctx.attempt > 1
        ? new Set((yield* ownedBy(parent.task, p.files.map((f) => f[0]))).map((r) => r.sha256))
        : new Set<string>()
      const todo = p.files.filter((f) => !owned.has(f[0]))
      const tries = new Map(todo.map((f) => [f[0], f] as const))
      const fileOf = (f: ShardFile, at: number): RemoteFile | undefined => {
        const entry = f[2][at]
        return entry === undefined ? undefined : { sha256: f[0], size: f[1] ?? undefined, relativePath: entry[0], url: entry[1] }
      }
      const missing: Array<string> = []
      const total = p.files.length
      let done = total - todo.length
      yield* ctx.progress({ done, total, unit: "files" })
      yield* fetchAll(todo.map((f) => fileOf(f, 0)!), {
        concurrency: p.concurrency,
        owner: { task: ctx.taskId, worker: ctx.workerId },
        download: remote.options,
        adopt: (batch) => adoptStoredForParent(batch, parent),
        onAdopted: () => ctx.progress({ done: ++done, total, unit: "files" }),
        onMissing: !p.skip_missing ? undefined : (f) =>
          Effect.sync(() => {
            missing.push(f.relativePath)
            const file = tries.get(f.sha256)!
            return fileOf(file, file[2].findIndex((e) => e[0] === f.relativePath) + 1)
          })
      }).pipe(Effect.catchTag("FetchFailed", (e) => Effect.fail(syncFailure(e.cause, e.relativePath))))
      return { result: { missing } satisfies ShardValue }
    }).pipe(Effect.mapError((e) => e._tag === "TaskFailure" ? e : syncFailure(e, "")))
})

/** How many shards to download `files` digests in (1: in-process), by the settings and the live worker slots. */
export const shardCount = (files: ReadonlyArray<ShardFile>) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    if (files.length < 2 * config.syncShardMinFiles) return 1
    let wanted = config.syncShards
    if (wanted === 0) {
      const db = yield* Db
      const [live] = yield* db.rows<{ slots: number }>(sql`SELECT coalesce(sum(slots), 0)::int AS slots FROM workers`)
      wanted = live?.slots ?? 1
    }
    const n = Math.min(wanted, Math.floor(files.length / config.syncShardMinFiles))
    if (n <= 1) return 1
    const bytes = JSON.stringify(files).length
    return Math.min(MAX_NODES, files.length, Math.max(n, Math.ceil(bytes / SHARD_PARAMS_BYTES)))
  })

/**
 * Downloads `files` in `shards` child tasks, awaiting them (the slot is lent meanwhile). Answers
 * what they adopted for this task (digest -> artifact id and size) and the relative paths missing
 * upstream.
 */
export const downloadInShards = (
  ctx: TaskContext,
  remote: { readonly revision: string; readonly skipMissing: boolean; readonly downloadConcurrency: number },
  files: ReadonlyArray<ShardFile>,
  shards: number
) =>
  Effect.gen(function*() {
    const lists: Array<Array<ShardFile>> = Array.from({ length: shards }, () => [])
    // Dealt round-robin: neighbours in an index tend to be alike in size.
    files.forEach((f, i) => lists[i % shards]!.push(f))
    const nodes: Record<string, unknown> = {}
    lists.forEach((list, i) => {
      nodes[`shard${i}`] = {
        task: DOWNLOAD_SHARD,
        // One retry: a shard whose worker died resumes where its adoptions stopped.
        max_attempts: 2,
        params: {
          parent: ctx.taskId,
          parent_attempt: ctx.attempt,
          remote_revision: remote.revision,
          // The sync's parallelism, shared: a shard taking all of it would leave the others waiting
          // for the host slots' fair share (./fetch.ts) for up to a second.
          concurrency: Math.max(1, Math.ceil(remote.downloadConcurrency / shards)),
          skip_missing: remote.skipMissing,
          files: list
        }
      }
    })
    const graph = yield* ctx.spawn({ label: `download shards of task ${ctx.taskId}`, nodes })
    const values = yield* ctx.awaitFutures(Object.values(graph.nodes).map((n) => n.outputs.result!))
    const missing = values.flatMap((v) => (v as ShardValue).missing)
    const adopted = new Map((yield* ownedBy(ctx.taskId, files.map((f) => f[0]))).map((r) => [r.sha256, r] as const))
    return { adopted, missing }
  }).pipe(Effect.catchTag("DbError", (e) => Effect.fail(new TaskFailure({ code: "db_error", message: e.message }))))
