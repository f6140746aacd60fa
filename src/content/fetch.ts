/**
 * Fetching a sync's files from a remote into the store, for one task.
 *
 * Download slots. At most CAIRN_HOST_DOWNLOAD_SLOTS downloads from one host run at once across the
 * cluster: the slot locks `host(<host>).slot(i)`. The task takes the slots it can use (up to its
 * `download_concurrency`) in one statement and runs one *lane* per slot held: a fiber that
 * downloads files one after another and gives its slot back when the files run out. Taking a slot
 * per file instead cost a few statements per file (with retries when slots collided), which was
 * most of a sync's time. The in-process lanes are the semaphore; the slot rows are the cluster-wide
 * allowance, and they stay correct if the worker dies (they go with its row).
 *
 * Sharing slots between tasks. A task that gets no slot registers `host(<host>).waiting(<task>)`
 * (a slot-lock row too, released with the task) and polls with backoff. Every second a task
 * holding slots looks at the host's rows: when others wait, it stops lanes (each after its current
 * file) down to a fair share, floor(N / (holders + waiters)), at least one; when nobody waits and
 * it holds fewer than it could use, it takes more. So a long sync does not starve a short one.
 *
 * Adoption. A lane stages each file (`ArtifactStorage.stage`: stored and verified, its name not
 * yet durable) and queues it for adoption; one fiber takes whatever has queued up, makes the whole
 * batch durable with one `persist` (on disk: each directory fsynced once, instead of once per
 * file on the lane), and only then adopts it in one transaction (`adoptStoredForTask`: rows,
 * `task_artifacts`, the digest protocol), so no row is ever committed for bytes a crash could
 * still take away, and rows cost a few statements per batch, not per file. Until then the bytes
 * are stored but not yet referenced by any row, which is harmless: only rows make an artifact
 * visible. A digest whose bytes an orphan cleanup took away between store and adoption is
 * downloaded again (at most three times).
 */
import { Chunk, Data, Deferred, Duration, Effect, Queue } from "effect"
import { sql } from "drizzle-orm"
import { CairnConfig } from "../config/config.js"
import { Db, type DbError } from "../db/client.js"
import { adoptStoredForTask, type ParentGone } from "./artifacts.js"
import { download, DownloadError, type RetryOptions } from "./download.js"
import { type SlotOwner, takeSlots } from "./slot-locks.js"
import { ArtifactStorage, type BadDigest, type StorageError } from "./storage.js"

export interface RemoteFile {
  readonly url: string
  readonly sha256: string
  /** Undefined when the upstream does not say: the stored bytes tell (`onAdopted` gets it). */
  readonly size: number | undefined
  readonly relativePath: string
}

/** A file once stored: its size is known. */
export type StoredFile = RemoteFile & { readonly size: number }

/** Fetching one file failed for good; `cause` says why (download, storage, digest, database). */
export class FetchFailed extends Data.TaggedError("FetchFailed")<{
  readonly relativePath: string
  readonly cause: { readonly _tag: string; readonly message: string }
}> {
  override get message() {
    return `${this.relativePath}: ${this.cause.message}`
  }
}

export interface FetchAllOptions {
  /** Downloads at once for this task (the remote's `download_concurrency`). */
  readonly concurrency: number
  /** The task (and worker) that owns the slots and, until it settles, the artifacts. */
  readonly owner: SlotOwner
  /** How to reach the remote (`./remote-access.ts`): its route, timeouts and retries. */
  readonly download: RetryOptions
  /**
   * Adopts a batch of stored files; by default for `owner.task` (`adoptStoredForTask`). A download
   * shard adopts for the sync that spawned it (`adoptStoredForParent`).
   */
  readonly adopt?: AdoptBatch | undefined
  /** Called once per file, after its artifact is adopted (owned by the task). */
  readonly onAdopted: (file: StoredFile, artifactId: string) => Effect.Effect<void>
  /**
   * With it, a file the upstream answers 404 or 410 for does not fail the fetch: this is called
   * instead, and answers another file with the same digest to try, or undefined to give the digest
   * up. Without it, such a file fails the fetch like any other.
   */
  readonly onMissing?: ((file: RemoteFile) => Effect.Effect<RemoteFile | undefined>) | undefined
}

/** What an adoption answers: digest -> artifact id, and digests whose bytes were taken away meanwhile. */
export interface Adoption {
  readonly adopted: ReadonlyMap<string, string>
  readonly gone: ReadonlyArray<string>
}

export type AdoptBatch = (
  batch: ReadonlyArray<StoredFile>
) => Effect.Effect<Adoption, DbError | StorageError | BadDigest | ParentGone, Db | ArtifactStorage>

/** The upstream says the file is not there (not a fault a retry could mend). */
const isMissing = (e: unknown) => e instanceof DownloadError && e.reason === "http" && (e.status === 404 || e.status === 410)

/** How often a task holding slots looks for waiting tasks, or for more free slots. */
const REVIEW_MS = 1000
/** A task without slots polls for one with this backoff (jittered). */
const POLL_MIN_MS = 20
const POLL_MAX_MS = 250
/** The in-process tick of the lane coordinator (no database work unless something is due). */
const TICK_MS = 50
/** Stores of one digest whose bytes a cleanup took away before we adopted them. */
const MAX_PUTS = 3
/** Artifacts adopted per transaction at most. */
const ADOPT_BATCH = 500

interface Lane {
  readonly slot: string
  stopping: boolean
}

/**
 * Download, verify, store and adopt `files` (distinct digests) for `opts.owner.task`. Fails with
 * the first file that fails for good, naming it; the other downloads are then interrupted.
 */
export const fetchAll = (files: ReadonlyArray<RemoteFile>, opts: FetchAllOptions) =>
  Effect.gen(function*() {
    const byHost = new Map<string, Array<RemoteFile>>()
    for (const f of files) {
      const host = new URL(f.url).host
      const list = byHost.get(host)
      if (list) list.push(f)
      else byHost.set(host, [f])
    }
    // A manifest's files share its origin (download.ts refuses others), so this is one host.
    for (const [host, list] of byHost) yield* fetchFromHost(host, list, opts)
  })

const fetchFromHost = (host: string, files: ReadonlyArray<RemoteFile>, opts: FetchAllOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const db = yield* Db
    const config = yield* CairnConfig
    const storage = yield* ArtifactStorage
    const name = `host(${host})`
    const slotsOfHost = config.hostDownloadSlots
    const maxLanes = Math.max(1, Math.min(opts.concurrency, slotsOfHost))
    const waitingName = `${name}.waiting(${opts.owner.task})`

    // Files still to download (popped from the end), stores per digest, files not yet adopted.
    const todo = [...files].reverse()
    const puts = new Map<string, number>()
    let remaining = todo.length
    if (remaining === 0) return

    const done = yield* Deferred.make<void, FetchFailed | DbError | StorageError | BadDigest | ParentGone>()
    const adoptQueue = yield* Queue.unbounded<StoredFile>()
    const lanes = new Set<Lane>()
    const active = () => {
      let k = 0
      for (const l of lanes) if (!l.stopping) k++
      return k
    }
    /** Run in the background; its failure (or defect) ends the whole fetch. */
    const background = <R>(eff: Effect.Effect<void, FetchFailed | DbError | StorageError | BadDigest | ParentGone, R>) =>
      Effect.forkScoped(eff.pipe(Effect.catchAllCause((c) => Deferred.failCause(done, c))))
    const failed = (file: RemoteFile) => (cause: { readonly _tag: string; readonly message: string }) =>
      new FetchFailed({ relativePath: file.relativePath, cause })

    const storeOne = (file: RemoteFile) =>
      download(file.url, file, (body) => storage.stage(body, { sha256: file.sha256, size: file.size }), {
        ...opts.download,
        relativePath: file.relativePath
      }).pipe(
        Effect.flatMap((put) => Queue.offer(adoptQueue, { ...file, size: put.size })),
        Effect.catchIf(
          (e) => opts.onMissing !== undefined && isMissing(e),
          () =>
            Effect.flatMap(opts.onMissing!(file), (next) =>
              Effect.suspend(() => {
                if (next !== undefined) todo.push(next)
                else if (--remaining === 0) return Deferred.succeed(done, undefined)
                return Effect.void
              }))
        ),
        Effect.mapError(failed(file))
      )

    const release = (names: ReadonlyArray<string>) =>
      db.rows(sql`DELETE FROM slot_locks WHERE name = ANY(${sql.param([...names])}::text[]) AND owner_task = ${opts.owner.task}`)
        .pipe(Effect.ignore)

    const lane = (slot: string) => {
      const me: Lane = { slot, stopping: false }
      lanes.add(me)
      return Effect.gen(function*() {
        for (;;) {
          if (me.stopping) return
          const file = todo.pop()
          if (file === undefined) return
          puts.set(file.sha256, (puts.get(file.sha256) ?? 0) + 1)
          yield* storeOne(file)
        }
      }).pipe(Effect.ensuring(Effect.suspend(() => {
        lanes.delete(me)
        return release([slot])
      })))
    }

    /** The durability the batch's rows will rest on, then the rows (for the task, or as `opts.adopt` says). */
    const adoptRows: AdoptBatch = opts.adopt ?? ((batch) => adoptStoredForTask(batch, opts.owner.task))
    const adopt = (batch: ReadonlyArray<StoredFile>) => Effect.zipRight(storage.persist(batch.map((f) => f.sha256)), adoptRows(batch))

    const adopter = Effect.forever(Effect.gen(function*() {
      const batch = Chunk.toReadonlyArray(yield* Queue.takeBetween(adoptQueue, 1, ADOPT_BATCH))
      const { adopted, gone } = yield* adopt(batch)
      const goneSet = new Set(gone)
      for (const f of batch) {
        const id = adopted.get(f.sha256)
        if (id !== undefined) {
          remaining--
          yield* opts.onAdopted(f, id)
        } else if (goneSet.has(f.sha256)) {
          if ((puts.get(f.sha256) ?? 0) >= MAX_PUTS) {
            return yield* failed(f)({ _tag: "StorageError", message: `an orphan cleanup removed the stored bytes ${MAX_PUTS} times before they were adopted` })
          }
          todo.push(f)
        }
      }
      if (remaining === 0) yield* Deferred.succeed(done, undefined)
    }))

    const coordinator = Effect.gen(function*() {
      let waiting = false
      let poll = POLL_MIN_MS
      let nextReview = 0
      for (;;) {
        const need = Math.min(maxLanes - active(), todo.length)
        if (lanes.size === 0 && need > 0) {
          // No slot at all: take what is free, or wait our turn (announced, so holders share).
          const got = yield* takeSlots(db, name, slotsOfHost, need, opts.owner)
          if (got.length > 0) {
            if (waiting) yield* release([waitingName])
            waiting = false
            poll = POLL_MIN_MS
            nextReview = Date.now() + REVIEW_MS
            for (const s of got) yield* background(lane(s))
            continue
          }
          if (!waiting) {
            yield* db.rows(sql`INSERT INTO slot_locks (name, owner_task, owner_worker)
                               VALUES (${waitingName}, ${opts.owner.task}, ${opts.owner.worker ?? null}) ON CONFLICT (name) DO NOTHING`)
            waiting = true
          }
          yield* Effect.sleep(Duration.millis(poll * (0.5 + Math.random())))
          poll = Math.min(poll * 2, POLL_MAX_MS)
          continue
        }
        if (lanes.size > 0 && Date.now() >= nextReview) {
          nextReview = Date.now() + REVIEW_MS
          const [d] = yield* db.rows<{ holders: number; waiters: number }>(sql`
            SELECT count(DISTINCT owner_task) FILTER (WHERE starts_with(name, ${`${name}.slot(`}))::int AS holders,
                   count(*) FILTER (WHERE starts_with(name, ${`${name}.waiting(`}))::int AS waiters
            FROM slot_locks WHERE starts_with(name, ${`${name}.`})`)
          if (d && d.waiters > 0) {
            const share = Math.max(1, Math.floor(slotsOfHost / (Math.max(1, d.holders) + d.waiters)))
            let excess = active() - share
            for (const l of lanes) {
              if (excess <= 0) break
              if (!l.stopping) {
                l.stopping = true
                excess--
              }
            }
          } else if (need > 0) {
            const got = yield* takeSlots(db, name, slotsOfHost, need, opts.owner)
            for (const s of got) yield* background(lane(s))
          }
        }
        yield* Effect.sleep(Duration.millis(TICK_MS))
      }
    }).pipe(Effect.ensuring(release([waitingName])))

    yield* background(adopter)
    yield* background(coordinator)
    const exit = yield* Effect.exit(Deferred.await(done))
    if (exit._tag === "Failure") {
      // Adopt what was stored already, so that no bytes stay in the store without a row (best
      // effort: the task fails anyway, and its artifacts are orphans once it settles).
      const left = Chunk.toReadonlyArray(yield* Queue.takeAll(adoptQueue))
      if (left.length > 0) yield* adopt(left).pipe(Effect.ignore)
    }
    return yield* exit
  }))
