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
 * The protocol with the orphan cleanup, per digest:
 *
 *   adopter (sync, upload):  put bytes -> tx { shared lock(4, sha); insert row if missing;
 *                                              insert owner row; the bytes still stored? }
 *   cleanup:                 tx { try exclusive lock(4, sha), else skip the digest;
 *                                 row still unowned? delete row; tombstone bytes }
 *                            -> purge tombstone after commit (restore it if the commit failed)
 *
 * The lock orders the two transactions. If the adopter commits first, cleanup sees the owner and
 * keeps the artifact. If cleanup commits first, the adopter's check finds the bytes tombstoned and
 * rolls back with `ArtifactGone`, and `storeArtifact` stores them again. So no row ever points at
 * bytes that are gone, and no owner ever points at a row that is gone (foreign keys), without a
 * global lock: adopters share the lock, and different digests never meet.
 */
import { sql } from "drizzle-orm"
import { Data, Effect } from "effect"
import { monotonicFactory } from "ulid"
import { Db, type DbError, type Tx, txRows } from "../db/client.js"
import { LockClass } from "../db/locks.js"
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

/** Take the shared per-digest lock in `tx`. */
export const lockDigestShared = (tx: Tx, sha256: string) =>
  txRows(tx, sql`SELECT pg_advisory_xact_lock_shared(${ARTIFACT_LOCK_CLASS}, hashtext(${sha256}))`)

/**
 * In `tx`: record stored bytes as an artifact (or find its row) and make `owner` own it. Fails with
 * `ArtifactGone` when the bytes are no longer stored; the caller's transaction must then roll back.
 */
export const adoptInTx = (tx: Tx, stored: { readonly sha256: string; readonly size: number }, owner: ArtifactOwner) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    yield* lockDigestShared(tx, stored.sha256)
    yield* txRows(tx, sql`INSERT INTO artifacts (id, sha256, size) VALUES (${newId()}, ${stored.sha256}, ${stored.size})
                          ON CONFLICT (sha256) DO NOTHING`)
    const [row] = yield* txRows<{ id: string }>(tx, sql`SELECT id FROM artifacts WHERE sha256 = ${stored.sha256}`)
    yield* owner(tx, row!.id)
    const there = yield* storage.stat(stored.sha256)
    if (there === undefined) return yield* new ArtifactGone({ sha256: stored.sha256 })
    return row!.id
  })

/**
 * If the artifact with this digest is stored (row and bytes), make `owner` own it and return its
 * id; otherwise undefined (the caller downloads it). Used to deduplicate before downloading.
 */
export const adoptExisting = (sha256: string, owner: ArtifactOwner) =>
  Effect.gen(function*() {
    const db = yield* Db
    const storage = yield* ArtifactStorage
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        yield* lockDigestShared(tx, sha256)
        const [row] = yield* txRows<{ id: string }>(tx, sql`SELECT id FROM artifacts WHERE sha256 = ${sha256}`)
        if (!row) return undefined
        if ((yield* storage.stat(sha256)) === undefined) return undefined
        yield* owner(tx, row.id)
        return row.id
      })
    )
  })

/**
 * Store bytes and adopt them: `put` stores them (called again, with a fresh source, if a cleanup
 * took the bytes away in between; at most three times), then one transaction records the artifact
 * row and its owner.
 */
export const storeArtifact = <E, R>(put: Effect.Effect<PutResult, E, R>, owner: ArtifactOwner) =>
  Effect.gen(function*() {
    const db = yield* Db
    for (let attempt = 1; ; attempt++) {
      const stored = yield* put
      const adopted = yield* db.transaction((tx) => adoptInTx(tx, stored, owner)).pipe(
        Effect.map((id) => ({ id, ...stored })),
        Effect.catchTag("ArtifactGone", (gone) => attempt < 3 ? Effect.succeed(undefined) : Effect.fail(gone))
      )
      if (adopted) return adopted
    }
  }) as Effect.Effect<
    { readonly id: string; readonly sha256: string; readonly size: number; readonly created: boolean },
    E | ArtifactGone | DbError | StorageError | BadDigest,
    R | Db | ArtifactStorage
  >

/**
 * `adoptExisting` for many digests at once (a sync checking its whole manifest): one transaction
 * per batch. Returns digest -> artifact id for those stored (row and bytes), now owned by `taskId`.
 */
export const adoptExistingForTask = (digests: ReadonlyArray<string>, taskId: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const storage = yield* ArtifactStorage
    const out = new Map<string, string>()
    const unique = [...new Set(digests)].sort()
    for (let at = 0; at < unique.length; at += 1000) {
      const batch = unique.slice(at, at + 1000)
      yield* db.transaction((tx) =>
        Effect.gen(function*() {
          const list = sql.param(batch)
          yield* txRows(tx, sql`SELECT pg_advisory_xact_lock_shared(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest(${list}::text[]) AS s`)
          const rows = yield* txRows<{ id: string; sha256: string }>(tx, sql`SELECT id, sha256 FROM artifacts WHERE sha256 = ANY(${list}::text[])`)
          const present: Array<{ id: string; sha256: string }> = []
          for (const r of rows) if ((yield* storage.stat(r.sha256)) !== undefined) present.push(r)
          if (present.length === 0) return
          yield* txRows(tx, sql`INSERT INTO task_artifacts (task_id, artifact_id)
                                SELECT ${taskId}, unnest(${sql.param(present.map((p) => p.id))}::text[]) ON CONFLICT DO NOTHING`)
          for (const p of present) out.set(p.sha256, p.id)
        })
      )
    }
    return out
  })

/**
 * `storeArtifact`'s adoption for many stored artifacts at once (a sync's downloads, batched): one
 * transaction takes the shared digest locks, checks the bytes are still there, records the rows
 * and makes `taskId` own them. Answers digest -> artifact id for those adopted, and the digests
 * whose bytes a cleanup took away meanwhile (not adopted: store them again, then retry).
 */
export const adoptStoredForTask = (stored: ReadonlyArray<{ readonly sha256: string; readonly size: number }>, taskId: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const storage = yield* ArtifactStorage
    const bySha = new Map(stored.map((s) => [s.sha256, s.size]))
    const digests = [...bySha.keys()].sort()
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const adopted = new Map<string, string>()
        if (digests.length === 0) return { adopted, gone: [] as Array<string> }
        yield* txRows(tx, sql`SELECT pg_advisory_xact_lock_shared(${ARTIFACT_LOCK_CLASS}, hashtext(s)) FROM unnest(${sql.param(digests)}::text[]) AS s`)
        // Under the shared locks a cleanup can no longer tombstone them until we commit.
        const there = yield* Effect.forEach(digests, (sha) => storage.stat(sha), { concurrency: 8 })
        const present = digests.filter((_, i) => there[i] !== undefined)
        const gone = digests.filter((_, i) => there[i] === undefined)
        if (present.length === 0) return { adopted, gone }
        yield* txRows(tx, sql`
          INSERT INTO artifacts (id, sha256, size)
          SELECT i, s, n FROM unnest(${sql.param(present.map(() => newId()))}::text[], ${sql.param(present)}::text[],
                                     ${sql.param(present.map((s) => bySha.get(s)!))}::bigint[]) AS r(i, s, n)
          ON CONFLICT (sha256) DO NOTHING`)
        const rows = yield* txRows<{ id: string; sha256: string }>(tx, sql`
          WITH a AS (SELECT id, sha256 FROM artifacts WHERE sha256 = ANY(${sql.param(present)}::text[])),
               owned AS (INSERT INTO task_artifacts (task_id, artifact_id) SELECT ${taskId}, id FROM a ON CONFLICT DO NOTHING)
          SELECT id, sha256 FROM a`)
        for (const r of rows) adopted.set(r.sha256, r.id)
        return { adopted, gone }
      })
    )
  })
