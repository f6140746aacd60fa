/**
 * Artifact rows and who owns them.
 *
 * The bytes live in `ArtifactStorage` under their sha256; the row in `artifacts` says they are
 * part of the store. An artifact is kept while something owns it: a content unit
 * (`content_artifacts`), a publication's manifest, an unexpired upload (`uploads`), or an unsettled
 * task that is using it (`task_artifacts`, released when the task settles by the content store's
 * settle hook, src/content/sql/cairn_content_on_settled.sql; by then the task's commit has made a
 * content unit or publication own it, in the same transaction).
 *
 * The protocol with the orphan cleanup, per digest. A *digest session* is one database connection
 * holding session-level advisory locks (class ARTIFACT_LOCK_CLASS, the digest) while it talks to
 * the artifact store; it has no transaction open while it does, so a slow or failing object store
 * never holds row locks or a snapshot (each transaction below is a few statements, no store I/O):
 *
 *   adopter (sync, upload):  put bytes -> session { shared lock(sha); bytes stored?
 *                                                   tx { insert row if missing; insert owner row }; unlock }
 *   cleanup:                 session { try exclusive lock(sha), else skip the digest; tombstone(sha);
 *                                      tx { row still unowned? delete row };
 *                                      row deleted? purge the bytes : drop the tombstone; unlock }
 *
 * The exclusive lock is held from before the cleanup's re-check until its bytes are deleted; the
 * shared lock from before an adopter looks at the bytes until its owner row is committed. The
 * two never overlap, so one session comes wholly before the other:
 *
 * - The adopter's first: it saw the bytes and committed an owner. The cleanup's re-check (a
 *   statement after its lock, so it sees every commit before the lock) finds the owner: the row
 *   stays, the tombstone is dropped, the bytes were never touched.
 * - The cleanup's first: the row deletion is committed and the bytes deleted before the adopter
 *   looks. It finds them missing and rolls nothing forward (`ArtifactGone`: `storeArtifact` stores
 *   them again), or finds bytes stored after the cleanup was done and adopts them, and nothing
 *   removes an owned artifact.
 *
 * So no row is ever committed for bytes that are gone, no owner points at a row that is gone
 * (foreign keys), and the bytes of an owned row are never deleted, without a global lock: adopters
 * share the lock, cleanups only try it, and different digests never meet. A crash anywhere drops
 * the session and its locks; what a cleanup left half done is its tombstone, which
 * `recoverTombstones` (cleanup.ts) decides by the database under the same exclusive lock.
 *
 * An adopter waiting for a cleanup's lock waits for that cleanup's store I/O, at its first
 * statement, holding nothing anyone but a cleanup (which does not wait) could want.
 */
import { type SQL, sql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/node-postgres"
import { Data, Duration, Effect, Schedule } from "effect"
import type pg from "pg"
import { monotonicFactory } from "ulid"
import { Db, DbError, toDbError, type Tx, txRows } from "../db/client.js"
import { LockClass } from "../db/locks.js"
import * as schema from "../db/schema.js"
import { ArtifactStorage, type BadDigest, type PutResult, type StorageError } from "./storage.js"

const newId = monotonicFactory()

/** The advisory lock class of per-digest artifact locks (see the module comment; src/db/locks.ts). */
export const ARTIFACT_LOCK_CLASS = LockClass.artifactDigest

/** The bytes of an artifact vanished between storing and adopting them (a cleanup won the race). */
export class ArtifactGone extends Data.TaggedError("ArtifactGone")<{ readonly sha256: string }> {}

/** What makes an artifact owned; written in the adopting transaction. */
export type ArtifactOwner = (tx: Tx, artifactId: string) => Effect.Effect<void, DbError>

/** A task using the artifact until it settles. */
export const ownedByTask = (taskId: string): ArtifactOwner => (tx, artifactId) =>
  txRows(tx, sql`INSERT INTO task_artifacts (task_id, artifact_id) VALUES (${taskId}, ${artifactId}) ON CONFLICT DO NOTHING`)
    .pipe(Effect.asVoid)

// ---------------------------------------------------------------------------------------------
// Digest sessions
// ---------------------------------------------------------------------------------------------

export interface DigestSession {
  /** Session-level shared locks on `digests`, waiting for exclusive holders (cleanups). */
  readonly lockShared: (digests: ReadonlyArray<string>) => Effect.Effect<void, DbError>
  /** Session-level exclusive locks on those of `digests` nobody holds; answers those locked. */
  readonly tryLockExclusive: (digests: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, DbError>
  /** Give back the exclusive locks of `digests` before the session ends. */
  readonly unlockExclusive: (digests: ReadonlyArray<string>) => Effect.Effect<void, DbError>
  /** One statement, outside any transaction. */
  readonly rows: <R = Record<string, unknown>>(q: SQL) => Effect.Effect<ReadonlyArray<R>, DbError>
  /** `body` in one transaction on this connection; run again on deadlock or serialization failure. */
  readonly transaction: <A, E, R>(body: (tx: Tx) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | DbError, R>
}

const digestList = (digests: Iterable<string>) => sql`${sql.param([...new Set(digests)].sort())}::text[]`

/** drizzle handles per pooled connection, made once (making one walks the whole schema). */
const handles = new WeakMap<pg.PoolClient, Tx>()

/**
 * A digest session for the current scope: a pooled connection whose locks all go with the scope.
 * The connection is given back only after an explicit unlock succeeded; otherwise (a failure, an
 * interruption mid-statement) it is closed, which drops every lock it held.
 */
export const digestSession = Effect.gen(function*() {
  const db = yield* Db
  const shared = new Set<string>()
  const exclusive = new Set<string>()
  const client = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => db.pool.connect(), catch: toDbError }),
    (client, exit) =>
      Effect.promise(async () => {
        let clean = exit._tag === "Success"
        if (clean && (shared.size > 0 || exclusive.size > 0)) {
          clean = await client.query(
            `SELECT pg_advisory_unlock_shared(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest($1::text[]) AS s
             UNION ALL SELECT pg_advisory_unlock(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest($2::text[]) AS s`,
            [[...shared], [...exclusive]]
          ).then(() => true, () => false)
        }
        client.release(clean ? undefined : true)
      })
  )
  let tx = handles.get(client)
  if (tx === undefined) handles.set(client, tx = drizzle(client, { schema }))
  const handle = tx
  const query = <R>(q: SQL) =>
    Effect.tryPromise({ try: () => handle.execute(q), catch: toDbError }).pipe(
      Effect.map((r) => r.rows as unknown as ReadonlyArray<R>)
    )
  const raw = (text: string) => Effect.tryPromise({ try: () => client.query(text), catch: toDbError })

  const session: DigestSession = {
    lockShared: (digests) =>
      Effect.suspend(() => {
        const fresh = [...new Set(digests)].filter((d) => !shared.has(d))
        if (fresh.length === 0) return Effect.void
        return query(sql`SELECT pg_advisory_lock_shared(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest(${digestList(fresh)}) AS s`).pipe(
          Effect.tap(() => Effect.sync(() => fresh.forEach((d) => shared.add(d))))
        )
      }),
    tryLockExclusive: (digests) =>
      Effect.suspend(() => {
        const fresh = [...new Set(digests)].filter((d) => !exclusive.has(d))
        return query<{ s: string }>(sql`SELECT s FROM unnest(${digestList(fresh)}) AS s
                                        WHERE pg_try_advisory_lock(${ARTIFACT_LOCK_CLASS}, hashtext(s))`).pipe(
          Effect.map((rows) => {
            for (const r of rows) exclusive.add(r.s)
            return new Set(rows.map((r) => r.s))
          })
        )
      }),
    unlockExclusive: (digests) =>
      Effect.suspend(() => {
        const held = [...new Set(digests)].filter((d) => exclusive.has(d))
        if (held.length === 0) return Effect.void
        return query(sql`SELECT pg_advisory_unlock(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest(${sql.param(held)}::text[]) AS s`).pipe(
          Effect.tap(() => Effect.sync(() => held.forEach((d) => exclusive.delete(d))))
        )
      }),
    rows: query,
    transaction: (body) => {
      const once = raw("BEGIN").pipe(
        Effect.zipRight(body(handle)),
        Effect.tap(() => raw("COMMIT")),
        Effect.onError(() => Effect.promise(() => client.query("ROLLBACK").catch(() => undefined)))
      )
      return once.pipe(Effect.retry({
        while: (e) => e instanceof DbError && (e.code === "40P01" || e.code === "40001"),
        schedule: Schedule.exponential(Duration.millis(5)).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(20)))
      }))
    }
  }
  return session
})

/** `body` with a digest session, released when it ends. */
export const withDigestSession = <A, E, R>(body: (s: DigestSession) => Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.flatMap(digestSession, body))

// ---------------------------------------------------------------------------------------------
// Adopters
// ---------------------------------------------------------------------------------------------

/** Which of `digests` have their bytes stored, asked `STAT_CONCURRENCY` at a time. */
const STAT_CONCURRENCY = 8
const storedOf = (digests: ReadonlyArray<string>) =>
  Effect.flatMap(ArtifactStorage, (storage) =>
    Effect.map(
      Effect.forEach(digests, (sha) => storage.stat(sha), { concurrency: STAT_CONCURRENCY }),
      (stats) => new Set(digests.filter((_, i) => stats[i] !== undefined))
    ))

/**
 * Record stored bytes as artifacts (or find their rows) and make `owner` own each, in one session
 * by the protocol above. Answers digest -> artifact id for those adopted, and the digests whose
 * bytes a cleanup took away meanwhile (not adopted: store them again, then retry).
 */
const adoptStored = <E = never>(
  stored: ReadonlyArray<{ readonly sha256: string; readonly size: number }>,
  own: (tx: Tx, ids: ReadonlyArray<string>) => Effect.Effect<void, DbError | E>
) =>
  withDigestSession((s) =>
    Effect.gen(function*() {
      const bySha = new Map(stored.map((a) => [a.sha256, a.size]))
      const digests = [...bySha.keys()].sort()
      const adopted = new Map<string, string>()
      if (digests.length === 0) return { adopted, gone: [] as Array<string> }
      yield* s.lockShared(digests)
      // Under the shared locks no cleanup can delete these bytes until we are done.
      const there = yield* storedOf(digests)
      const present = digests.filter((d) => there.has(d))
      const gone = digests.filter((d) => !there.has(d))
      if (present.length === 0) return { adopted, gone }
      const rows = yield* s.transaction((tx) =>
        Effect.gen(function*() {
          yield* txRows(tx, sql`
            INSERT INTO artifacts (id, sha256, size)
            SELECT i, s, n FROM unnest(${sql.param(present.map(() => newId()))}::text[], ${sql.param(present)}::text[],
                                       ${sql.param(present.map((d) => bySha.get(d)!))}::bigint[]) AS r(i, s, n)
            ON CONFLICT (sha256) DO NOTHING`)
          const rows = yield* txRows<{ id: string; sha256: string }>(tx, sql`SELECT id, sha256 FROM artifacts WHERE sha256 = ANY(${sql.param(present)}::text[])`)
          yield* own(tx, rows.map((r) => r.id))
          return rows
        })
      )
      for (const r of rows) adopted.set(r.sha256, r.id)
      return { adopted, gone }
    })
  )

/**
 * If the artifact with this digest is stored (row and bytes), make `owner` own it and return its
 * id; otherwise undefined (the caller downloads it). Used to deduplicate before downloading.
 */
export const adoptExisting = (sha256: string, owner: ArtifactOwner) =>
  withDigestSession((s) =>
    Effect.gen(function*() {
      yield* s.lockShared([sha256])
      const [row] = yield* s.rows<{ id: string }>(sql`SELECT id FROM artifacts WHERE sha256 = ${sha256}`)
      if (!row) return undefined
      if ((yield* storedOf([sha256])).size === 0) return undefined
      // Under the lock the row can no longer be deleted; the foreign key would say so anyway.
      yield* s.transaction((tx) => owner(tx, row.id))
      return row.id
    })
  )

/**
 * Store bytes and adopt them: `put` stores them (called again, with a fresh source, if a cleanup
 * took the bytes away in between; at most three times), then one digest session records the
 * artifact row and its owner.
 */
export const storeArtifact = <E, R>(put: Effect.Effect<PutResult, E, R>, owner: ArtifactOwner) =>
  Effect.gen(function*() {
    for (let attempt = 1; ; attempt++) {
      const stored = yield* put
      const { adopted } = yield* adoptStored([stored], (tx, ids) => Effect.forEach(ids, (id) => owner(tx, id), { discard: true }))
      const id = adopted.get(stored.sha256)
      if (id !== undefined) return { id, ...stored }
      if (attempt >= 3) return yield* new ArtifactGone({ sha256: stored.sha256 })
    }
  }) as Effect.Effect<
    { readonly id: string; readonly sha256: string; readonly size: number; readonly created: boolean },
    E | ArtifactGone | DbError | StorageError | BadDigest,
    R | Db | ArtifactStorage
  >

const ownedByTaskMany = (taskId: string) => (tx: Tx, ids: ReadonlyArray<string>) =>
  txRows(tx, sql`INSERT INTO task_artifacts (task_id, artifact_id)
                 SELECT ${taskId}, unnest(${sql.param([...ids])}::text[]) ON CONFLICT DO NOTHING`).pipe(Effect.asVoid)

/**
 * `adoptExisting` for many digests at once (a sync checking its whole manifest): one session per
 * batch of a thousand. Returns digest -> artifact id for those stored (row and bytes), now owned
 * by `taskId`.
 */
export const adoptExistingForTask = (digests: ReadonlyArray<string>, taskId: string) =>
  Effect.gen(function*() {
    const out = new Map<string, string>()
    const unique = [...new Set(digests)].sort()
    for (let at = 0; at < unique.length; at += 1000) {
      const batch = unique.slice(at, at + 1000)
      yield* withDigestSession((s) =>
        Effect.gen(function*() {
          yield* s.lockShared(batch)
          const rows = yield* s.rows<{ id: string; sha256: string }>(sql`SELECT id, sha256 FROM artifacts WHERE sha256 = ANY(${sql.param(batch)}::text[])`)
          const there = yield* storedOf(rows.map((r) => r.sha256))
          const present = rows.filter((r) => there.has(r.sha256))
          if (present.length === 0) return
          yield* s.transaction((tx) => ownedByTaskMany(taskId)(tx, present.map((p) => p.id)))
          for (const p of present) out.set(p.sha256, p.id)
        })
      )
    }
    return out
  })

/**
 * `storeArtifact`'s adoption for many stored artifacts at once (a sync's downloads, batched): one
 * session takes the shared digest locks, checks the bytes are still there, records the rows and
 * makes `taskId` own them. Answers digest -> artifact id for those adopted, and the digests whose
 * bytes a cleanup took away meanwhile (not adopted: store them again, then retry).
 */
export const adoptStoredForTask = (stored: ReadonlyArray<{ readonly sha256: string; readonly size: number }>, taskId: string) =>
  adoptStored(stored, ownedByTaskMany(taskId))

/** The task artifacts were adopted for is no longer running that attempt (`adoptStoredForParent`). */
export class ParentGone extends Data.TaggedError("ParentGone")<{ readonly task: string }> {
  override get message() {
    return `task ${this.task} no longer runs the attempt these files were downloaded for`
  }
}

/**
 * `adoptStoredForTask` on behalf of another task, its attempt still running: a sync's download
 * shard (src/content/sync-shards.ts) adopts for the sync that spawned it, so that what it stored
 * stays owned from its adoption until the sync's commit, across the shard's own settle. The
 * ownership rows are written under FOR SHARE on that task's row, which the task's settle (an
 * UPDATE of the row) waits for: either they are committed before the settle, whose settle hook
 * then releases them like the task's own, or the settle came first and nothing is written
 * (ParentGone: the adoption rolls back, the bytes are left unreferenced, as after a failed store).
 */
export const adoptStoredForParent = (
  stored: ReadonlyArray<{ readonly sha256: string; readonly size: number }>,
  parent: { readonly task: string; readonly attempt: number }
) =>
  adoptStored<ParentGone>(stored, (tx, ids) =>
    Effect.gen(function*() {
      const running = yield* txRows(tx, sql`SELECT id FROM tasks WHERE id = ${parent.task} AND state = 'running' AND attempts = ${parent.attempt} FOR SHARE`)
      if (running.length === 0) return yield* new ParentGone({ task: parent.task })
      yield* ownedByTaskMany(parent.task)(tx, ids)
    }))
