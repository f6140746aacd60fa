/**
 * Orphan cleanup (`orphans.cleanup`, src/content/cleanup.ts), in one process against a fresh
 * database and artifact store per test: what goes (orphans past the window, rows and bytes), what
 * stays (orphans inside the window, everything owned, by each kind of owner), expired uploads,
 * the foreign-key safety net, tombstones left by an interrupted cleanup, a failed commit; then
 * syncs and publishes of overlapping repositories racing cleanups in a loop.
 */
import { sql } from "drizzle-orm"
import { Deferred, Duration, Effect, Fiber } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { monotonicFactory } from "ulid"
import { afterAll, describe, expect, it } from "vitest"
import { ARTIFACT_LOCK_CLASS, type ArtifactOwner, storeArtifact, withDigestSession } from "../src/content/artifacts.js"
import { cleanupOrphans, recoverTombstones } from "../src/content/cleanup.js"
import { createNamed } from "../src/content/named.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { versionContent } from "../src/content/versions.js"
import { Db, txRows } from "../src/db/client.js"
import { cancelGraph } from "../src/engine/cancel.js"
import type { InvalidRequest } from "../src/engine/errors.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { type S3Server, startS3, storedObjects } from "./support/s3.js"
import { makeFiles, startUpstream } from "./support/upstream.js"

const newId = monotonicFactory()

interface Env {
  readonly url: string
  readonly dataDir: string
  /** The artifact store is this S3-protocol server (under the prefix "store/"); else `dataDir`. */
  readonly s3?: S3Server | undefined
}

/** Every test gets its own database and store, so that reports count only its own rows. */
const fresh = async (): Promise<Env> => ({
  url: await createTestDatabase(),
  dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "cairn-cleanup-"))
})

const run = <A, E>(env: Env, eff: Effect.Effect<A, E, any>, opts: { workers?: number } = {}) =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      if (opts.workers) yield* runWorker({ slots: opts.workers })
      return yield* eff
    })).pipe(Effect.provide(engineLayer(env.url, { dataDir: env.dataDir, ...(env.s3 ? { storage: env.s3.storage("store/") } : {}) }))) as Effect.Effect<A, E, never>
  )

// ---------------------------------------------------------------------------------------------
// Fixtures: rows written directly, with created_at in the past where the test needs it
// ---------------------------------------------------------------------------------------------

const OLD = sql`now() - interval '2 days'`
const RECENT = sql`now() - interval '1 hour'`

interface Art {
  readonly id: string
  readonly sha256: string
  readonly size: number
}

async function* once(b: Buffer) {
  yield b
}

/** Stored bytes with an artifact row, created `age` ago. */
const artifact = (age = OLD) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    const db = yield* Db
    const put = yield* storage.put(once(randomBytes(100 + Math.floor(Math.random() * 900))))
    const id = newId()
    yield* db.rows(sql`INSERT INTO artifacts (id, sha256, size, created_at) VALUES (${id}, ${put.sha256}, ${put.size}, ${age})`)
    return { id, sha256: put.sha256, size: put.size } satisfies Art
  })

/** A content unit created `age` ago, linked to `art` if given (not atomic: only while no cleanup runs). */
const unit = (opts: { age?: typeof OLD; art?: Art } = {}) =>
  Effect.gen(function*() {
    const db = yield* Db
    const id = newId()
    const sha = opts.art?.sha256 ?? randomBytes(32).toString("hex")
    yield* db.rows(sql`INSERT INTO content_units (id, relative_path, sha256, size, created_at)
                       VALUES (${id}, ${`f/${id}.bin`}, ${sha}, ${opts.art?.size ?? 1}, ${opts.age ?? OLD})`)
    if (opts.art) yield* db.rows(sql`INSERT INTO content_artifacts (content_id, artifact_id) VALUES (${id}, ${opts.art.id})`)
    return id
  })

/** An upload owning the artifact for an hour. */
const ownedByUpload: ArtifactOwner = (tx, artifactId) =>
  Effect.asVoid(txRows(tx, sql`INSERT INTO uploads (id, artifact_id, expires_at) VALUES (${newId()}, ${artifactId}, now() + interval '1 hour')`))

const rowExists = (table: "artifacts" | "content_units", id: string) =>
  Effect.flatMap(Db, (db) => Effect.map(db.rows(sql`SELECT 1 FROM ${sql.raw(table)} WHERE id = ${id}`), (rows) => rows.length > 0))

/**
 * A table of references the ownership checks know nothing about: each row stands for a reference
 * they could not see yet (committed after their snapshot). Only the foreign key catches it;
 * declared like the real owners' keys (ON DELETE RESTRICT, src/db/content-schema.ts), so it
 * refuses with the same SQLSTATE.
 */
const createRaceRefs = Effect.flatMap(Db, (db) =>
  db.rows(sql`CREATE TABLE race_refs (
    content_id text REFERENCES content_units (id) ON DELETE RESTRICT,
    artifact_id text REFERENCES artifacts (id) ON DELETE RESTRICT)`))

/** Row and bytes both there (true), both gone (false); anything else fails the test. */
const artifactKept = (a: Art) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    const row = yield* rowExists("artifacts", a.id)
    const bytes = (yield* storage.stat(a.sha256)) !== undefined
    expect(bytes, `artifact ${a.id}: row ${row} but bytes ${bytes}`).toBe(row)
    return row
  })

const count = (q: ReturnType<typeof sql>) =>
  Effect.flatMap(Db, (db) => Effect.map(db.rows<{ n: number }>(q), (r) => r[0]!.n))

/** Submit, then wait (bounded) until every output future of the graph settled; their rows. */
const settle = (g: { nodes: Record<string, { outputs: Record<string, string> }> }, timeoutMs = 60_000) =>
  Effect.gen(function*() {
    const db = yield* Db
    const ids = Object.values(g.nodes).flatMap((n) => Object.values(n.outputs))
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const rows = yield* db.rows<{ id: string; state: string; value: any; error: any }>(
        sql`SELECT id, state, value, error FROM futures WHERE id = ANY(${sql.param(ids)}::text[])`
      )
      if (rows.every((r) => r.state !== "pending")) return rows
      if (Date.now() > deadline) return yield* Effect.dieMessage(`still pending: ${JSON.stringify(rows.map((r) => r.state))}`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })

const cleanupTask = (params: Record<string, unknown>) =>
  Effect.gen(function*() {
    const g = yield* submitGraph({ nodes: { clean: { task: "orphans.cleanup", params } } })
    const [f] = yield* settle(g)
    expect(f!.state, JSON.stringify(f!.error)).toBe("resolved")
    return f!.value as { content_units: number; artifacts: number; bytes_freed: number; uploads_expired: number; demoted: number; duration_ms: number }
  })

// ---------------------------------------------------------------------------------------------

describe("orphan cleanup", () => {
  it("deletes orphans past the window, rows and bytes, in batches; keeps orphans inside the window", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const storage = yield* ArtifactStorage
      const remote = yield* createNamed("remote", "up", { url: "http://127.0.0.1:1/PULP_MANIFEST", policy: "on_demand", download_concurrency: 1 })

      const lone = yield* Effect.all([artifact(), artifact(), artifact()])
      const held = yield* Effect.all([artifact(), artifact()])
      const units = [yield* unit({ art: held[0] }), yield* unit({ art: held[1] }), yield* unit(), yield* unit()]
      // An orphan unit that a remote could serve again is deleted too, with its source (not demoted).
      yield* db.rows(sql`INSERT INTO content_sources (content_id, remote_revision_id, url)
                         VALUES (${units[0]!}, ${remote.revision}, 'http://127.0.0.1:1/x')`)
      const youngArt = yield* artifact(RECENT)
      const youngUnit = yield* unit({ age: RECENT, art: yield* artifact(RECENT) })

      const report = yield* cleanupOrphans({ protectionSeconds: 3 * 3600, batchSize: 2 })

      for (const a of [...lone, ...held]) expect(yield* artifactKept(a)).toBe(false)
      for (const u of units) expect(yield* rowExists("content_units", u)).toBe(false)
      expect(yield* count(sql`SELECT count(*)::int AS n FROM content_artifacts WHERE content_id = ANY(${sql.param(units)}::text[])`)).toBe(0)
      expect(yield* count(sql`SELECT count(*)::int AS n FROM content_sources`)).toBe(0)
      expect(yield* artifactKept(youngArt)).toBe(true)
      expect(yield* rowExists("content_units", youngUnit)).toBe(true)
      expect(yield* storage.tombstones).toEqual([])
      expect(report).toEqual({
        publications: 0,
        repository_versions: 0,
        membership_rows: 0,
        content_units: 4,
        artifacts: 5,
        bytes_freed: [...lone, ...held].reduce((n, a) => n + a.size, 0),
        uploads_expired: 0,
        demoted: 0,
        duration_ms: expect.any(Number)
      })

      // With no window at all, the young ones go too; a second run finds nothing.
      const all = yield* cleanupOrphans({ protectionSeconds: 0 })
      expect(all).toMatchObject({ content_units: 1, artifacts: 2 })
      expect(yield* cleanupOrphans({ protectionSeconds: 0 })).toMatchObject({ content_units: 0, artifacts: 0, bytes_freed: 0 })
    }))
  })

  it("keeps everything owned, by each kind of owner; what a settled task held becomes an orphan", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const repo = yield* createNamed("repository", "repo", {})
      const [v0] = yield* db.rows<{ id: string }>(sql`SELECT id FROM repository_versions WHERE repository_id = ${repo.id}`)

      // In a repository version the repository keeps (version 1; version 2 removed it): the unit,
      // and through it its artifact.
      const inVersionArt = yield* artifact()
      const inVersion = yield* unit({ art: inVersionArt })
      const v1 = newId()
      yield* db.rows(sql`INSERT INTO repository_versions (id, repository_id, number, content_count) VALUES (${v1}, ${repo.id}, 1, 1)`)
      yield* db.rows(sql`INSERT INTO version_keeps (version_id, repository_id) VALUES (${v1}, ${repo.id})`)
      yield* db.rows(sql`INSERT INTO repository_content (repository_id, content_id, added_in, removed_in)
                         VALUES (${repo.id}, ${inVersion}, 1, 2)`)
      // A publication's manifest.
      const manifest = yield* artifact()
      const publication = newId()
      yield* db.rows(sql`INSERT INTO publications (id, version_id) VALUES (${publication}, ${v0!.id})`)
      yield* db.rows(sql`INSERT INTO publication_files (publication_id, relative_path, media_type, position, artifact_id)
                         VALUES (${publication}, 'PULP_MANIFEST', 'text/plain', 0, ${manifest.id})`)
      // An unexpired upload.
      const uploaded = yield* artifact()
      yield* db.rows(sql`INSERT INTO uploads (id, artifact_id, expires_at) VALUES (${newId()}, ${uploaded.id}, now() + interval '1 hour')`)
      // An unsettled task using it (nothing runs: no worker in this test).
      const used = yield* artifact()
      const sleeper = yield* submitGraph({ nodes: { s: { task: "debug.sleep", params: { ms: 60_000 } } } })
      yield* db.rows(sql`INSERT INTO task_artifacts (task_id, artifact_id) VALUES (${sleeper.nodes.s!.task}, ${used.id})`)
      // An unsettled repository.modify about to add a unit and an artifact.
      const toAdd = yield* unit()
      const toAddArt = yield* artifact()
      const modify = yield* submitGraph({
        nodes: { m: { task: "repository.modify", params: { repository: "repo", add: [toAdd, { relative_path: "up/loaded.bin", artifact: toAddArt.id }] } } }
      })

      // Page by page too: each page's owner checks start where the page does.
      for (const batchSize of [1, undefined]) {
        const report = yield* cleanupOrphans({ protectionSeconds: 0, batchSize })
        expect(report).toMatchObject({ content_units: 0, artifacts: 0, bytes_freed: 0, uploads_expired: 0 })
      }
      for (const a of [inVersionArt, manifest, uploaded, used, toAddArt]) expect(yield* artifactKept(a)).toBe(true)
      for (const u of [inVersion, toAdd]) expect(yield* rowExists("content_units", u)).toBe(true)

      // Settled tasks own nothing any more.
      yield* cancelGraph(sleeper.id)
      yield* cancelGraph(modify.id)
      const after = yield* cleanupOrphans({ protectionSeconds: 0 })
      expect(after).toMatchObject({ content_units: 1, artifacts: 2, bytes_freed: used.size + toAddArt.size })
      expect(yield* artifactKept(used)).toBe(false)
      expect(yield* artifactKept(toAddArt)).toBe(false)
      expect(yield* rowExists("content_units", toAdd)).toBe(false)
      for (const a of [inVersionArt, manifest, uploaded]) expect(yield* artifactKept(a)).toBe(true)
      expect(yield* rowExists("content_units", inVersion)).toBe(true)
    }))
  })

  it("deletes expired uploads first; their artifacts go if they are past the window", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const expired = yield* artifact()
      const expiredYoung = yield* artifact(sql`now()`)
      const live = yield* artifact()
      const upload = (a: Art, expires: ReturnType<typeof sql>) =>
        db.rows(sql`INSERT INTO uploads (id, artifact_id, expires_at) VALUES (${newId()}, ${a.id}, ${expires})`)
      yield* upload(expired, sql`now() - interval '1 minute'`)
      yield* upload(expiredYoung, sql`now() - interval '1 minute'`)
      yield* upload(live, sql`now() + interval '1 hour'`)

      const report = yield* cleanupOrphans({ protectionSeconds: 3600 })
      expect(report).toMatchObject({ uploads_expired: 2, artifacts: 1, bytes_freed: expired.size })
      expect(yield* artifactKept(expired)).toBe(false)
      expect(yield* artifactKept(expiredYoung)).toBe(true)
      expect(yield* artifactKept(live)).toBe(true)
      expect(yield* count(sql`SELECT count(*)::int AS n FROM uploads`)).toBe(1)
    }))
  })

  it("runs as the orphans.cleanup task: params checked, one day of protection by default, the report as its output", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      for (const params of [{ bogus: 1 }, { protection_seconds: -1 }, { protection_seconds: 1.5 }, { protection_seconds: "0" }]) {
        const err = (yield* Effect.flip(submitGraph({ nodes: { c: { task: "orphans.cleanup", params } } }))) as InvalidRequest
        expect(err._tag, JSON.stringify(params)).toBe("InvalidRequest")
      }
      const old = yield* artifact(OLD)
      const recent = yield* artifact(RECENT)
      const report = yield* cleanupTask({})
      expect(report).toMatchObject({ artifacts: 1, content_units: 0, bytes_freed: old.size, demoted: 0 })
      expect(yield* artifactKept(old)).toBe(false)
      expect(yield* artifactKept(recent)).toBe(true)
      expect(yield* cleanupTask({ protection_seconds: 0 })).toMatchObject({ artifacts: 1 })
      expect(yield* artifactKept(recent)).toBe(false)
    }), { workers: 2 })
  })

  it("skips a row that something references by the time it is deleted (the foreign key), and the task succeeds", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      yield* createRaceRefs
      const arts = yield* Effect.all([artifact(), artifact(), artifact()])
      const units = yield* Effect.all([unit(), unit(), unit()])
      yield* db.rows(sql`INSERT INTO race_refs VALUES (${units[1]!}, NULL), (NULL, ${arts[1]!.id})`)

      const report = yield* cleanupTask({ protection_seconds: 0 })
      expect(report).toMatchObject({ content_units: 2, artifacts: 2, bytes_freed: arts[0]!.size + arts[2]!.size })
      expect(yield* artifactKept(arts[1]!)).toBe(true)
      expect(yield* artifactKept(arts[0]!)).toBe(false)
      expect(yield* artifactKept(arts[2]!)).toBe(false)
      expect(yield* rowExists("content_units", units[1]!)).toBe(true)
      expect(yield* rowExists("content_units", units[0]!)).toBe(false)
      expect(yield* rowExists("content_units", units[2]!)).toBe(false)
    }), { workers: 1 })
  })

  it("resolves leftover tombstones by the database: row -> restored, no row -> purged, digest busy -> left alone", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const storage = yield* ArtifactStorage
      // A crash between tombstone and commit: the deleting transaction never committed, the row is there.
      const rolledBack = yield* artifact()
      yield* storage.tombstone(rolledBack.sha256)
      // A crash between commit and purge: the row is gone, the bytes are not.
      const committed = yield* artifact()
      yield* storage.tombstone(committed.sha256)
      yield* db.rows(sql`DELETE FROM artifacts WHERE id = ${committed.id}`)
      // A digest an adopter holds right now.
      const busy = yield* artifact()
      yield* storage.tombstone(busy.sha256)
      // A tombstone hides nothing: the bytes stay visible until the database has decided.
      expect((yield* storage.stat(rolledBack.sha256))?.size).toBe(rolledBack.size)
      expect((yield* storage.tombstones).slice().sort()).toEqual([rolledBack.sha256, committed.sha256, busy.sha256].sort())

      const held = yield* Effect.acquireRelease(
        Effect.promise(() => db.pool.connect()),
        (c) => Effect.sync(() => c.release())
      )
      yield* Effect.promise(() => held.query("BEGIN"))
      yield* Effect.promise(() => held.query("SELECT pg_advisory_xact_lock_shared(4, hashtext($1))", [busy.sha256]))
      expect(yield* recoverTombstones).toEqual({ restored: 1, purged: 1 })
      expect((yield* storage.stat(rolledBack.sha256))?.size).toBe(rolledBack.size)
      expect(yield* storage.stat(committed.sha256)).toBeUndefined()
      expect(yield* storage.tombstones).toEqual([busy.sha256])
      yield* Effect.promise(() => held.query("COMMIT"))

      // Every cleanup run starts with the same recovery (and keeps the restored artifact: it is recent).
      yield* cleanupOrphans({ protectionSeconds: 3 * 86400 })
      expect(yield* storage.tombstones).toEqual([])
      expect(yield* artifactKept(busy)).toBe(true)
      expect(yield* artifactKept(rolledBack)).toBe(true)
    }))
  })

  it("a batch with several rows referenced behind its back keeps exactly those (the delete is redone by halves)", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      yield* createRaceRefs
      const arts = yield* Effect.forEach(Array.from({ length: 11 }), () => artifact())
      const units = yield* Effect.forEach(Array.from({ length: 11 }), () => unit())
      // First, last and two in the middle: every level of the halving meets one.
      const refd = [0, 4, 5, 10]
      for (const i of refd) yield* db.rows(sql`INSERT INTO race_refs VALUES (${units[i]!}, ${arts[i]!.id})`)

      const report = yield* cleanupOrphans({ protectionSeconds: 0 })
      expect(report).toMatchObject({ content_units: 7, artifacts: 7 })
      for (let i = 0; i < 11; i++) {
        expect(yield* artifactKept(arts[i]!), `artifact ${i}`).toBe(refd.includes(i))
        expect(yield* rowExists("content_units", units[i]!), `unit ${i}`).toBe(refd.includes(i))
      }
      expect(yield* (yield* ArtifactStorage).tombstones).toEqual([])
    }))
  })

  it("an adopter whose bytes a whole cleanup removed between its put and its adoption stores them again", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const storage = yield* ArtifactStorage
      const bytes = randomBytes(500)
      // An orphan with these bytes: row and bytes, nothing owns it.
      const db = yield* Db
      const first = yield* storage.put(once(bytes))
      yield* db.rows(sql`INSERT INTO artifacts (id, sha256, size, created_at) VALUES (${newId()}, ${first.sha256}, ${first.size}, ${OLD})`)
      // The adopter's put finds the bytes there; before it adopts them, a cleanup runs to its end.
      let puts = 0
      const put = Effect.gen(function*() {
        puts++
        const stored = yield* storage.put(once(bytes))
        if (puts === 1) {
          expect(stored.created).toBe(false)
          expect(yield* cleanupOrphans({ protectionSeconds: 0 })).toMatchObject({ artifacts: 1 })
          expect(yield* storage.stat(stored.sha256)).toBeUndefined()
        }
        return stored
      })
      const adopted = yield* storeArtifact(put, ownedByUpload)
      // The bytes were found missing under the shared lock, stored again, then adopted.
      expect(puts).toBe(2)
      expect(yield* artifactKept({ id: adopted.id, sha256: adopted.sha256, size: adopted.size })).toBe(true)
    }))
  })

  it("an adopter waits while a cleanup holds the digest (until its bytes are gone), then finds them gone", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const storage = yield* ArtifactStorage
      const bytes = randomBytes(500)
      const sha = (yield* storage.put(once(bytes))).sha256
      // A cleanup mid-way: it holds the exclusive digest lock, its row deletion committed, the bytes still there.
      // The adopter starts only once the cleanup holds the lock: a forked fiber has not run yet, and
      // an adopter that took the shared lock first would rightly go ahead.
      const locked = yield* Deferred.make<void>()
      const cleanup = yield* Effect.fork(withDigestSession((session) =>
        Effect.gen(function*() {
          expect(yield* session.tryLockExclusive([sha])).toEqual(new Set([sha]))
          yield* Deferred.succeed(locked, undefined)
          yield* Effect.never.pipe(Effect.onInterrupt(() => Effect.orDie(storage.remove(sha))))
        })))
      yield* Deferred.await(locked)
      let puts = 0
      const adopter = yield* Effect.fork(storeArtifact(Effect.suspend(() => {
        puts++
        return storage.put(once(bytes))
      }), ownedByUpload))
      // The adopter comes to wait for this digest's lock, in this database, and is not done.
      // (pg_locks lists the whole server's locks: the test files running alongside have waiters too.)
      let wentAhead = false
      for (;;) {
        const [w] = yield* db.rows<{ n: number }>(sql`
          SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND classid = ${ARTIFACT_LOCK_CLASS}::oid AND objid = hashtext(${sha})::oid AND objsubid = 2`)
        if (w!.n > 0) break
        if ((wentAhead = adopter.unsafePoll() !== null)) break
        yield* Effect.sleep(Duration.millis(10))
      }
      if (wentAhead) {
        yield* Fiber.interrupt(cleanup)
        expect.fail("the adopter went ahead while a cleanup held the digest")
      }
      expect(adopter.unsafePoll()).toBeNull()
      // The cleanup deletes the bytes and gives the lock back: the adopter finds them gone and stores them again.
      yield* Fiber.interrupt(cleanup)
      const adopted = yield* Fiber.join(adopter)
      expect(puts).toBe(2)
      expect(yield* artifactKept({ id: adopted.id, sha256: sha, size: bytes.length })).toBe(true)
    }))
  })

  it("restores the bytes when the deleting transaction fails to commit", async () => {
    const env = await fresh()
    await run(env, Effect.gen(function*() {
      const db = yield* Db
      const storage = yield* ArtifactStorage
      const doomed = yield* artifact()
      // A deferred check that fails at COMMIT, after the bytes were tombstoned.
      yield* db.rows(sql`CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'P0001'; END $$`)
      yield* db.rows(sql`CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER DELETE ON artifacts
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()`)

      const failed = yield* Effect.flip(cleanupOrphans({ protectionSeconds: 0 }))
      expect(failed.message).toMatch(/refused at commit/)
      expect(yield* artifactKept(doomed)).toBe(true)
      expect(yield* storage.tombstones).toEqual([])

      yield* db.rows(sql`DROP TRIGGER refuse_at_commit ON artifacts`)
      expect(yield* cleanupOrphans({ protectionSeconds: 0 })).toMatchObject({ artifacts: 1 })
      expect(yield* artifactKept(doomed)).toBe(false)
    }))
  })
})

// ---------------------------------------------------------------------------------------------
// Under load
// ---------------------------------------------------------------------------------------------

describe("orphan cleanup under load", () => {
  let s3: S3Server | undefined
  afterAll(async () => {
    await s3?.close()
  })

  const race = async (env: Env) => {
    const ROUNDS = 8
    // One set of files; upstream A serves the first two thirds, B the last two: the middle third is
    // the same bytes under the same paths in both, so syncs of different repositories adopt the
    // same units and artifacts at the same time.
    const files = new Map(Object.entries(makeFiles(45, { seed: 5, minSize: 100, maxSize: 6000 })))
    const names = [...files.keys()]
    const served = { a: new Set(names.slice(0, 30)), b: new Set(names.slice(15)) }
    const upA = await startUpstream({})
    const upB = await startUpstream({})
    const publishUpstreams = () => {
      for (const [up, set] of [[upA, served.a], [upB, served.b]] as const) {
        for (const p of files.keys()) set.has(p) ? up.setFile(p, files.get(p)!) : up.removeFile(p)
      }
    }
    publishUpstreams()

    try {
      await run(env, Effect.gen(function*() {
        const db = yield* Db
        const storage = yield* ArtifactStorage
        yield* createNamed("remote", "a", { url: upA.url, policy: "immediate", download_concurrency: 4 })
        yield* createNamed("remote", "b", { url: upB.url, policy: "immediate", download_concurrency: 4 })
        yield* createNamed("remote", "a-lazy", { url: upA.url, policy: "on_demand", download_concurrency: 4 })
        const repos: Array<[name: string, remote: string, mirror: boolean]> = [
          ["ra", "a", false], ["rb", "b", false], ["ra-mirror", "a", true], ["rb-mirror", "b", true], ["ra-lazy", "a-lazy", true]
        ]
        for (const [name] of repos) yield* createNamed("repository", name, {})

        /**
         * An orphan artifact and an orphan unit for a file, as a failed sync would leave the
         * artifact: stored and recorded through the adopters' protocol, with no owner.
         */
        const plant = (relativePath: string, bytes: Buffer) =>
          Effect.gen(function*() {
            const a = yield* storeArtifact(Effect.suspend(() => storage.put(once(bytes))), () => Effect.void)
            yield* db.rows(sql`INSERT INTO content_units (id, relative_path, sha256, size) VALUES (${newId()}, ${relativePath}, ${a.sha256}, ${a.size})
                               ON CONFLICT DO NOTHING`)
            return a.sha256
          })

        /** An upload of `bytes` that expires in a second, through the adopters' protocol. */
        const upload = (bytes: Buffer) =>
          storeArtifact(Effect.suspend(() => storage.put(once(bytes))), (tx, artifactId) =>
            Effect.asVoid(txRows(tx, sql`INSERT INTO uploads (id, artifact_id, expires_at) VALUES (${newId()}, ${artifactId}, now() + interval '1 second')`)))

        // Two cleanups at a time, back to back, with no protection window, while the rounds go on.
        const reports: Array<{ content_units: number; artifacts: number; uploads_expired: number }> = []
        let cleaning = true
        const cleaners = yield* Effect.fork(Effect.all([0, 1].map(() =>
          Effect.gen(function*() {
            while (cleaning) reports.push(yield* cleanupTask({ protection_seconds: 0 }))
          })), { concurrency: "unbounded" }))

        const junk: Array<{ relativePath: string; sha256: string }> = []
        for (let round = 0; round < ROUNDS; round++) {
          // The upstreams change: some files get new bytes, each gains new files, each loses one.
          const next = new Map<string, Buffer>()
          names.forEach((p, i) => {
            if ((i + round) % 5 === 0 && files.has(p)) next.set(p, randomBytes(100 + ((i * 37 + round) % 5000)))
          })
          for (let k = 0; k < 3; k++) next.set(`new/r${round}-${k}.bin`, randomBytes(200 + k * 500))
          // Before they appear upstream, their bytes and units are orphans that the syncs will want.
          yield* Effect.forEach([...next], ([p, b]) => plant(p, b), { concurrency: 4, discard: true })
          // And true orphans, which nobody will ever want.
          for (let k = 0; k < 3; k++) {
            const relativePath = `junk/r${round}-${k}.bin`
            junk.push({ relativePath, sha256: yield* plant(relativePath, randomBytes(500)) })
          }
          for (const [p, b] of next) {
            files.set(p, b)
            if (p.startsWith("new/")) {
              const k = Number(p.slice(-5, -4))
              if (k !== 1) served.a.add(p)
              if (k !== 0) served.b.add(p)
            }
          }
          served.a.delete([...served.a][round]!)
          served.b.delete([...served.b][round + 1]!)
          publishUpstreams()

          const nodes: Record<string, unknown> = {}
          for (const [name, remote, mirror] of repos) {
            const key = name.replace(/-/g, "_")
            nodes[`sync_${key}`] = { task: "file.sync", params: { repository: name, remote, mirror } }
            nodes[`publish_${key}`] = { task: "file.publish", params: { version: { $ref: `sync_${key}.version` } } }
          }
          const g = yield* submitGraph({ label: `round ${round}`, nodes })
          // While the syncs run, the same files keep turning up as orphans again (once the
          // cleanups took them, until the syncs adopted them), so that syncs and cleanups meet on
          // the same digests and units all round long.
          let syncing = true
          const planter = yield* Effect.fork(Effect.gen(function*() {
            // Best effort: a plant whose bytes a cleanup took three times over is simply skipped.
            while (syncing) {
              yield* Effect.forEach([...next], ([p, b]) => plant(p, b).pipe(Effect.catchTag("ArtifactGone", () => Effect.void)), {
                concurrency: 2,
                discard: true
              })
            }
          }))
          // Uploads meanwhile: of planted bytes (racing their deletion) and of new bytes.
          const uploads = [...next.values()].slice(0, 3).concat([randomBytes(300), randomBytes(700)])
          yield* Effect.forEach(uploads, upload, { concurrency: 3, discard: true })
          const settled = yield* settle(g, 120_000)
          syncing = false
          yield* Fiber.join(planter)
          for (const f of settled) expect(f.state, `round ${round}: ${JSON.stringify(f.error)}`).toBe("resolved")
        }
        cleaning = false
        yield* Fiber.join(cleaners)
        expect(reports.length).toBeGreaterThan(ROUNDS)

        // Once the uploads have expired, a last cleanup with nothing else running.
        yield* Effect.sleep(Duration.millis(1200))
        const last = yield* cleanupTask({ protection_seconds: 0 })
        const total = [...reports, last].reduce(
          (t, r) => ({ units: t.units + r.content_units, artifacts: t.artifacts + r.artifacts, uploads: t.uploads + r.uploads_expired }),
          { units: 0, artifacts: 0, uploads: 0 }
        )
        expect(total.units).toBeGreaterThanOrEqual(junk.length)
        expect(total.artifacts).toBeGreaterThanOrEqual(junk.length)
        expect(total.uploads).toBe(ROUNDS * 5)

        // No task failed.
        const unhappy = yield* db.rows(sql`SELECT kind, state, error FROM tasks WHERE state <> 'succeeded'`)
        expect(unhappy).toEqual([])

        // No reference dangles: every artifact something points at has its row and its bytes.
        const referenced = yield* db.rows<{ via: string; sha256: string | null; size: number | null }>(sql`
          SELECT r.via, a.sha256, a.size::float8 AS size FROM (
            SELECT 'content' AS via, artifact_id FROM content_artifacts
            UNION ALL SELECT 'publication', artifact_id FROM publication_files
            UNION ALL SELECT 'upload', artifact_id FROM uploads
            UNION ALL SELECT 'task', artifact_id FROM task_artifacts
          ) r LEFT JOIN artifacts a ON a.id = r.artifact_id`)
        expect(referenced.filter((r) => r.via === "publication").length).toBe(ROUNDS * repos.length)
        for (const r of referenced) {
          expect(r.sha256, `a ${r.via} points at a missing artifact row`).not.toBeNull()
          expect((yield* storage.stat(r.sha256!))?.size, `the bytes of ${r.sha256} (${r.via})`).toBe(r.size)
        }
        expect(yield* count(sql`SELECT count(*)::int AS n FROM repository_content rc
                                WHERE NOT EXISTS (SELECT 1 FROM content_units u WHERE u.id = rc.content_id)`)).toBe(0)
        // Every unit of every version of an immediate repository still has its bytes.
        expect(yield* count(sql`
          SELECT count(*)::int AS n FROM repository_content rc JOIN names n ON n.resource_id = rc.repository_id AND n.kind = 'repository'
          WHERE n.name <> 'ra-lazy' AND NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.content_id = rc.content_id)`)).toBe(0)

        // The mirrors hold exactly what their upstream serves now.
        for (const [name, set] of [["ra-mirror", served.a], ["rb-mirror", served.b]] as const) {
          const [latest] = yield* db.rows<{ id: string }>(sql`
            SELECT v.id FROM repository_versions v JOIN names n ON n.resource_id = v.repository_id AND n.kind = 'repository'
            WHERE n.name = ${name} ORDER BY v.number DESC LIMIT 1`)
          const content = yield* versionContent(latest!.id)
          expect(content.map((c) => `${c.relative_path},${c.sha256}`).sort())
            .toEqual([...set].map((p) => `${p},${createHash("sha256").update(files.get(p)!).digest("hex")}`).sort())
        }

        // Every true orphan is gone (nothing is running, and the window is zero).
        expect(yield* count(sql`SELECT count(*)::int AS n FROM content_units u
                                WHERE NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = u.id)`)).toBe(0)
        expect(yield* count(sql`SELECT count(*)::int AS n FROM artifacts a
          WHERE NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM publication_files p WHERE p.artifact_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM uploads up WHERE up.artifact_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM task_artifacts ta WHERE ta.artifact_id = a.id)`)).toBe(0)
        for (const j of junk) {
          expect(yield* count(sql`SELECT count(*)::int AS n FROM content_units WHERE relative_path = ${j.relativePath}`)).toBe(0)
          expect(yield* count(sql`SELECT count(*)::int AS n FROM artifacts WHERE sha256 = ${j.sha256}`)).toBe(0)
          expect(yield* storage.stat(j.sha256)).toBeUndefined()
        }
        // And no bytes were left behind without a row, nor a tombstone.
        expect(yield* storage.tombstones).toEqual([])
        expect(storedDigests(env).sort()).toEqual(
          (yield* db.rows<{ sha256: string }>(sql`SELECT sha256 FROM artifacts`)).map((r) => r.sha256).sort()
        )
      }), { workers: 4 })
    } finally {
      await upA.close()
      await upB.close()
    }
  }

  it("syncs and publishes of overlapping repositories race cleanups in a loop: nothing fails, nothing dangles, orphans go", async () => {
    await race(await fresh())
  }, 600_000)

  it("the same on an object store (s3rver): adopters and cleanups meet on the same digests there too", async () => {
    s3 = await startS3()
    await race({ ...(await fresh()), s3 })
  }, 600_000)
})

/** The digests of every artifact in the store (fan-out directories or keys; not tmp). */
const storedDigests = (env: Env) => {
  if (env.s3) return [...storedObjects(env.s3, "store/").keys()].filter((k) => !k.startsWith("store/tmp/")).map((k) => k.split("/").at(-1)!)
  const root = path.join(env.dataDir, "artifacts")
  const out: Array<string> = []
  for (const d1 of fs.readdirSync(root)) {
    if (d1 === "tmp") continue
    for (const d2 of fs.readdirSync(path.join(root, d1))) out.push(...fs.readdirSync(path.join(root, d1, d2)))
  }
  return out
}
