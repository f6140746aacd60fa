/**
 * Orphan cleanup: reclaim what was released (versions, publications and membership rows nothing
 * holds any more: lifecycle/reclaim.ts), drop the bytes of the repositories asked for whose remotes
 * can serve them again (lifecycle/demote.ts), then delete the content units and artifacts that
 * nothing owns and that are older than a protection window, while syncs, uploads and publishes go
 * on beside it.
 *
 * Owners (src/content/artifacts.ts has the artifact side in full):
 * - a content unit is owned by any `repository_content` row (which some version holds: the rows
 *   only released versions held went in the first step), or by an unsettled task that holds it
 *   (`task_holds`: a `repository.modify` adding or removing it, from its submission);
 * - an artifact is owned by `content_artifacts`, a publication's generated files, an `uploads` row (the
 *   expired ones are deleted first, so the remaining ones are unexpired), `task_artifacts` (an
 *   unsettled task using it), or `task_holds` (a `repository.modify` adding `{ "artifact": id }`).
 *
 * How it stays out of everyone's way:
 * - Batches of a thousand, one short transaction each; candidates are locked `FOR UPDATE SKIP
 *   LOCKED`, so a row someone is referencing right now (its foreign-key check holds a lock on it)
 *   is skipped, and two cleanups never work on the same rows. There is no global lock.
 * - Artifacts follow the per-digest protocol of artifacts.ts, in a digest session (session-level
 *   advisory locks, no transaction open while the store is asked anything): exclusive digest lock,
 *   tombstone, one transaction re-checking and deleting the rows, then the bytes of the rows that
 *   went are deleted and the tombstones of those that stayed dropped, and only then the locks are
 *   given back. The digest lock is only *tried*: a digest an adopter holds is being adopted right
 *   now, so it is skipped instead of waited for. Waiting would make the adopter queue behind us,
 *   and could deadlock against a sync that holds many digests at once (we hold a batch of them too).
 * - Foreign keys are the safety net for whatever the ownership checks did not see yet (a reference
 *   committed between the check's snapshot and our lock). A batch delete that violates one is
 *   rolled back to a savepoint and redone by halves, down to the single rows that are owned now.
 *
 * What it costs (bench:gc): each table is read once per run, in id order beside its owners (merge
 * anti-joins bounded by the page, see below); most of the time goes to the deletes themselves (the
 * foreign-key checks of every deleted row: one index probe per key, the keys being ON DELETE
 * RESTRICT, src/db/content-schema.ts) and to the artifacts' bytes (a tombstone written before the
 * transaction, the bytes and the tombstone deleted after it), FILE_CONCURRENCY at a time. Artifact
 * batches overlap so that the store and the database work at once (see the run below).
 *
 * At the end, the run vacuums cairn's tables and rebuilds the indexes left sparse
 * (src/db/reclaim-space.ts), so the space of what it deleted is reused by the next syncs instead
 * of growing the database until autovacuum comes by.
 *
 * Demotion happens only for the repositories a run names (`reclaim`); an orphan unit is deleted
 * whole, with its sources.
 */
import { sql } from "drizzle-orm"
import { Effect, ExecutionStrategy, Exit, Fiber, Layer, Scope } from "effect"
import { Counter } from "prom-client"
import { Db, type Tx, txRows } from "../db/client.js"
import { deleteUnlessReferenced, pages } from "../db/referenced.js"
import { reclaimSpace } from "../db/reclaim-space.js"
import { metricsRegistry } from "../engine/metrics.js"
import { type DigestSession, digestSession, withDigestSession } from "./artifacts.js"
import { demote } from "./lifecycle/demote.js"
import { reclaimReleased } from "./lifecycle/reclaim.js"
import { ArtifactStorage } from "./storage.js"

export interface CleanupReport {
  readonly publications: number
  readonly repository_versions: number
  readonly membership_rows: number
  readonly content_units: number
  readonly artifacts: number
  readonly bytes_freed: number
  readonly uploads_expired: number
  /** Units whose bytes were dropped (`reclaim`), kept to be fetched again on demand. */
  readonly demoted: number
  readonly duration_ms: number
}

export interface CleanupOptions {
  /** Only what was created at least this long before the run started is deleted. */
  readonly protectionSeconds: number
  /** Candidates per transaction (default 1000). */
  readonly batchSize?: number | undefined
  /** Called after every batch with the number of rows deleted so far. */
  readonly progress?: ((deleted: number) => Effect.Effect<void>) | undefined
  /** Repositories (resource ids) whose bytes a remote can serve again are dropped (lifecycle/demote.ts). */
  readonly reclaim?: ReadonlyArray<string> | undefined
}

/**
 * 1000 rows per transaction: large enough that the per-batch costs (round trips, commit, progress)
 * are small beside the per-row ones, small enough that a batch holds its row locks for a fraction
 * of a second and its digest locks (one per artifact) fit the lock table of a default server.
 */
const DEFAULT_BATCH = 1000

/**
 * Store operations (tombstone, delete) in flight at once: on disk, libuv's whole thread pool (4
 * threads by default), not more. More would not go faster, and would queue the file writes and
 * fsyncs of the syncs running in the same worker process behind ours. An object store would take
 * more, but it is shared with the syncs' uploads too.
 */
const FILE_CONCURRENCY = 4

// ---------------------------------------------------------------------------------------------
// Ownership predicates
// ---------------------------------------------------------------------------------------------

/*
 * Every owner check of a scan is bounded below by the page's start (`> after`) as well as joined
 * on the id: otherwise the planner's merge anti-join reads the owner index from its beginning on
 * every page, and a run costs pages x table (quadratic). With the bound, the candidates and their
 * owners are read side by side, once per run.
 */

/** For a content unit `u`, on the page after `after`. */
const unitUnowned = (after: string) =>
  sql`NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = u.id AND rc.content_id > ${after})
  AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.content_id = u.id)`

/** For an artifact `a`; `after` bounds the owners read (any lower bound of the `a.id`s looked at). */
const artifactUnowned = (after: string) =>
  sql`NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = a.id AND ca.artifact_id > ${after})
  AND NOT EXISTS (SELECT 1 FROM publication_files pf WHERE pf.artifact_id = a.id AND pf.artifact_id > ${after})
  AND NOT EXISTS (SELECT 1 FROM uploads up WHERE up.artifact_id = a.id AND up.artifact_id > ${after})
  AND NOT EXISTS (SELECT 1 FROM task_artifacts ta WHERE ta.artifact_id = a.id AND ta.artifact_id > ${after})
  AND NOT EXISTS (SELECT 1 FROM task_holds th WHERE th.artifact_id = a.id)`

/**
 * Keep the planner to merge joins or index probes in this transaction: hashing an owner table's
 * whole rest (everything `> after`) on every page would make a run quadratic again, however the
 * statistics happen to lean.
 */
const linearPlans = (tx: Tx) => txRows(tx, sql`SET LOCAL enable_hashjoin = off`)

const ids = (xs: ReadonlyArray<string>) => sql`${sql.param([...xs])}::text[]`

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

interface Page {
  /** Candidates looked at; fewer than the batch size means this was the last page. */
  readonly seen: number
  /** The last candidate id, where the next page starts. */
  readonly last: string
  /** Rows deleted. */
  readonly deleted: number
}

/** Delete one batch of expired uploads; they no longer protect their artifacts. */
const expireUploads = (limit: number) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ n: number }>(sql`
      WITH gone AS (
        DELETE FROM uploads WHERE id IN (
          SELECT id FROM uploads WHERE expires_at <= now() ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING 1)
      SELECT count(*)::int AS n FROM gone`))

/** One batch of orphan content units after `after`, deleted with their artifact links and sources. */
const unitBatch = (cutoff: string, after: string, limit: number) =>
  Effect.flatMap(Db, (db) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        yield* linearPlans(tx)
        const candidates = yield* txRows<{ id: string }>(tx, sql`
          SELECT u.id FROM content_units u
          WHERE u.id > ${after} AND u.created_at < ${cutoff}::timestamptz AND ${unitUnowned(after)}
          ORDER BY u.id LIMIT ${limit}
          FOR UPDATE OF u SKIP LOCKED`)
        if (candidates.length === 0) return { seen: 0, last: after, deleted: 0 }
        const doomed = candidates.map((c) => c.id)
        // One statement: the foreign keys are checked at its end, when the links are gone too.
        const deleted = yield* deleteUnlessReferenced(tx, doomed, (batch) =>
          txRows<{ id: string }>(tx, sql`
            WITH links AS (DELETE FROM content_artifacts WHERE content_id = ANY(${ids(batch)})),
                 sources AS (DELETE FROM content_sources WHERE content_id = ANY(${ids(batch)}))
            DELETE FROM content_units WHERE id = ANY(${ids(batch)}) RETURNING id`))
        return { seen: candidates.length, last: candidates.at(-1)!.id, deleted: deleted.length }
      })
    ))

interface Doomed {
  readonly id: string
  readonly sha256: string
  readonly size: number
}

/**
 * `op` for every digest, FILE_CONCURRENCY at a time. Never interrupted half way and never failing
 * early: every call is let finish, and the digests it succeeded for are reported to `done` before
 * the first failure (if any) is raised, so that the caller knows exactly what happened.
 */
const forEachDigest = <E>(digests: ReadonlyArray<string>, op: (sha: string) => Effect.Effect<void, E>, done: (sha: string) => void = () => undefined) =>
  Effect.forEach(digests, (sha) => Effect.either(Effect.tap(op(sha), () => Effect.sync(() => done(sha)))), {
    concurrency: FILE_CONCURRENCY
  }).pipe(
    Effect.flatMap((outcomes) => {
      const failed = outcomes.find((r) => r._tag === "Left")
      return failed?._tag === "Left" ? Effect.fail(failed.left) : Effect.void
    }),
    Effect.uninterruptible
  )

/** Drop tombstones whose rows stay; infallible (a tombstone left over is decided at the next recovery). */
const dropTombstones = (storage: ArtifactStorage["Type"], digests: ReadonlyArray<string>) =>
  forEachDigest(digests, (sha) =>
    storage.restore(sha).pipe(
      Effect.catchAll((e) => Effect.logWarning(`orphan cleanup: could not drop the tombstone of ${sha}: ${e.message}`))
    ))

/** A page of orphan artifacts whose digests a batch has locked and tombstoned. */
interface Claimed {
  /** Candidates looked at; fewer than the batch size means this was the last page. */
  readonly seen: number
  /** The last candidate id, where the next page starts. */
  readonly last: string
  /** Where this page started: the lower bound of its owner checks. */
  readonly after: string
  /** The candidates whose digests are locked and tombstoned (an empty page has no session). */
  readonly mine: ReadonlyArray<Doomed>
  readonly session: DigestSession | undefined
}

/**
 * The first half of a batch of orphan artifacts after `after`, by the protocol of artifacts.ts,
 * in a digest session that lives in the caller's scope: the page, the exclusive digest locks
 * (tried), the tombstones. No row is changed yet.
 */
const claimArtifacts = (cutoff: string, after: string, limit: number) =>
  Effect.gen(function*() {
    const db = yield* Db
    const storage = yield* ArtifactStorage
    const seen = yield* db.transaction((tx) =>
      Effect.zipRight(
        linearPlans(tx),
        txRows<Doomed>(tx, sql`
          SELECT a.id, a.sha256, a.size::float8 AS size FROM artifacts a
          WHERE a.id > ${after} AND a.created_at < ${cutoff}::timestamptz AND ${artifactUnowned(after)}
          ORDER BY a.id LIMIT ${limit}`)
      ))
    const nothing: Claimed = { seen: seen.length, last: seen.at(-1)?.id ?? after, after, mine: [], session: undefined }
    if (seen.length === 0) return nothing

    const session = yield* digestSession
    const locked = yield* session.tryLockExclusive(seen.map((d) => d.sha256))
    const mine = seen.filter((d) => locked.has(d.sha256))
    if (mine.length === 0) return nothing

    // The tombstones first: they are what makes a crash after the commit (row gone, bytes not yet)
    // recoverable. If some cannot be written, the store is failing: undo and give up the batch.
    const tombstoned: Array<string> = []
    yield* forEachDigest(mine.map((d) => d.sha256), storage.tombstone, (sha) => tombstoned.push(sha)).pipe(
      Effect.tapError(() => dropTombstones(storage, tombstoned))
    )
    return { ...nothing, mine, session } satisfies Claimed
  })

/**
 * The second half: one transaction deleting the claimed rows still unowned, the tombstones of the
 * rows that stayed dropped. Deleting the bytes of the rows that went (`purge`) is left to the
 * caller, to overlap with the next batch; the session, and with it the locks that keep adopters of
 * those digests waiting, must live until `purge` is done.
 */
const deleteClaimed = (claimed: Claimed) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    const { mine, session } = claimed
    if (session === undefined) return { deleted: 0, bytes: 0, purge: Effect.void }
    const deleted = yield* session.transaction((tx) =>
      Effect.gen(function*() {
        yield* linearPlans(tx)
        // The statement after the locks sees every owner committed before we got them.
        const confirmed = yield* txRows<{ id: string }>(tx, sql`
          SELECT a.id FROM artifacts a
          WHERE a.id = ANY(${ids(mine.map((d) => d.id))}) AND ${artifactUnowned(claimed.after)}
          ORDER BY a.id
          FOR UPDATE OF a SKIP LOCKED`)
        if (confirmed.length === 0) return new Set<string>()
        const doomed = confirmed.map((c) => c.id)
        const gone = yield* deleteUnlessReferenced(tx, doomed, (batch) =>
          txRows<{ id: string }>(tx, sql`DELETE FROM artifacts WHERE id = ANY(${ids(batch)}) RETURNING id`))
        return new Set(gone.map((g) => g.id))
      })
    ).pipe(
      // Not committed: every row is still there, and so are the bytes.
      Effect.tapError(() => dropTombstones(storage, mine.map((d) => d.sha256)))
    )

    yield* dropTombstones(storage, mine.filter((d) => !deleted.has(d.id)).map((d) => d.sha256))
    const gone = mine.filter((d) => deleted.has(d.id))
    // The rows are gone for good; a tombstone we fail to purge now is purged by the next recovery.
    const purge = forEachDigest(gone.map((d) => d.sha256), (sha) =>
      storage.purgeTombstone(sha).pipe(
        Effect.catchAll((e) => Effect.logWarning(`orphan cleanup: could not purge the tombstone of ${sha}: ${e.message}`))
      ))
    return { deleted: gone.length, bytes: gone.reduce((n, d) => n + d.size, 0), purge }
  })

// ---------------------------------------------------------------------------------------------
// Tombstones left by an interrupted cleanup
// ---------------------------------------------------------------------------------------------

/**
 * Decide every leftover tombstone by the database, in a digest session: the artifact's row exists
 * (its deleting transaction rolled back, or never committed before a crash, or the bytes were
 * adopted again since) -> drop the tombstone and keep the bytes; it does not -> delete the bytes
 * and the tombstone. Under the exclusive digest lock, tried: a digest whose lock is taken belongs
 * to a cleanup or an adopter at work right now, and is left for the next time. Run it at process
 * start and before every cleanup.
 */
export const recoverTombstones = Effect.gen(function*() {
  const storage = yield* ArtifactStorage
  const leftover = yield* storage.tombstones
  if (leftover.length === 0) return { restored: 0, purged: 0 }
  let restored = 0
  let purged = 0
  yield* withDigestSession((session) =>
    Effect.forEach(leftover, (sha) =>
      Effect.gen(function*() {
        if (!(yield* session.tryLockExclusive([sha])).has(sha)) return
        const [row] = yield* session.rows(sql`SELECT 1 FROM artifacts WHERE sha256 = ${sha}`)
        if (row) {
          yield* storage.restore(sha)
          restored++
        } else {
          yield* storage.purgeTombstone(sha)
          purged++
        }
        yield* session.unlockExclusive([sha])
      }), { discard: true })
  )
  if (restored + purged > 0) yield* Effect.logInfo(`artifact store: ${restored} tombstone(s) restored, ${purged} purged`)
  return { restored, purged }
})

/**
 * For a process's layers: recover tombstones at start, so that what a crashed cleanup left is
 * decided at once, not only at the next cleanup (the store sweeps its own leftovers of interrupted
 * puts when it starts). A failure is logged, not fatal: the next cleanup run tries again.
 */
export const TombstoneRecoveryLive = Layer.effectDiscard(
  recoverTombstones.pipe(Effect.catchAll((e) => Effect.logWarning(`artifact store: recovering tombstones failed: ${e.message}`)))
)

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

export const cleanupOrphans = (opts: CleanupOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const db = yield* Db
    const started = Date.now()
    const limit = opts.batchSize ?? DEFAULT_BATCH
    const progress = opts.progress ?? (() => Effect.void)
    yield* recoverTombstones
    yield* (yield* ArtifactStorage).sweep

    // One cutoff for the whole run, on the database's clock (created_at is written with it).
    const [window] = yield* db.rows<{ cutoff: string }>(
      sql`SELECT (now() - make_interval(secs => ${opts.protectionSeconds}))::text AS cutoff`
    )
    const cutoff = window!.cutoff

    let uploadsExpired = 0
    for (;;) {
      const [gone] = yield* expireUploads(limit)
      uploadsExpired += gone!.n
      if (gone!.n < limit) break
    }

    const released = yield* reclaimReleased({ limit, progress })
    const demoted = yield* demote(opts.reclaim ?? [], limit)
    const reclaimed = released.publications + released.repository_versions + released.membership_rows

    let units = 0
    let artifacts = 0
    let bytes = 0
    yield* pages(limit, (after) => unitBatch(cutoff, after, limit), (p) => {
      units += p.deleted
      return progress(reclaimed + units)
    })
    // After the units: the artifacts they held are orphans now and go in the same run. Batches
    // overlap, so that the store and the database work at the same time: a batch is claimed
    // (page, locks, tombstones: mostly the store) while the one before it is deleted (the
    // database), whose bytes are then purged (the store) while the next one finishes its claim.
    // Each batch's digest session lives in its own scope, closed when its purge is done, or with
    // the run's scope if the run ends first (which drops the session and its locks; tombstones a
    // cut-short claim wrote are decided by the next recovery, like a crash's).
    const run = yield* Effect.scope
    const claim = (after: string) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(run, ExecutionStrategy.sequential)
        return yield* claimArtifacts(cutoff, after, limit).pipe(
          Scope.extend(scope),
          Effect.onExit((exit) => exit._tag === "Failure" ? Scope.close(scope, exit) : Effect.void),
          Effect.map((claimed) => ({ claimed, scope }))
        )
      })
    let purging: Fiber.RuntimeFiber<void> | undefined
    let current = yield* claim("")
    for (;;) {
      const { claimed, scope } = current
      // The purge before ours ends first: never more than two batches' digest locks held at once.
      if (purging) yield* Fiber.join(purging)
      const next = claimed.seen < limit ? undefined : yield* Effect.fork(claim(claimed.last))
      const done = yield* deleteClaimed(claimed).pipe(
        Effect.onExit((exit) => exit._tag === "Failure" ? Scope.close(scope, exit) : Effect.void)
      )
      artifacts += done.deleted
      bytes += done.bytes
      purging = yield* Effect.fork(Effect.ensuring(done.purge, Scope.close(scope, Exit.void)))
      yield* progress(reclaimed + units + artifacts)
      if (next === undefined) break
      current = yield* Fiber.join(next)
    }
    if (purging) yield* Fiber.join(purging)
    yield* reclaimSpace

    const report: CleanupReport = {
      ...released,
      content_units: units,
      artifacts,
      bytes_freed: bytes,
      uploads_expired: uploadsExpired,
      demoted,
      duration_ms: Date.now() - started
    }
    yield* countRun(report)
    return report
  }))

// ---------------------------------------------------------------------------------------------
// Metrics (GET /metrics of the process that ran the cleanup)
// ---------------------------------------------------------------------------------------------

const registers = [metricsRegistry]
const runs = new Counter({ name: "cairn_cleanup_runs_total", help: "Orphan cleanups completed by this process", registers })
const deleted = new Counter({ name: "cairn_cleanup_deleted_total", help: "Rows orphan cleanups deleted, by what", labelNames: ["what"] as const, registers })
const freed = new Counter({ name: "cairn_cleanup_bytes_freed_total", help: "Artifact bytes orphan cleanups freed", registers })

const countRun = (r: CleanupReport) =>
  Effect.sync(() => {
    runs.inc()
    deleted.inc({ what: "publications" }, r.publications)
    deleted.inc({ what: "repository_versions" }, r.repository_versions)
    deleted.inc({ what: "membership_rows" }, r.membership_rows)
    deleted.inc({ what: "content_units" }, r.content_units)
    deleted.inc({ what: "artifacts" }, r.artifacts)
    deleted.inc({ what: "uploads" }, r.uploads_expired)
    freed.inc(r.bytes_freed)
  })
