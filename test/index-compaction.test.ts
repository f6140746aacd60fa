/**
 * The rebuild of sparse indexes (src/db/index-compaction.ts) on a real PostgreSQL: which indexes
 * it rebuilds (time-ordered keys thinned out by deletes) and which it leaves (fresh, or random
 * keys at their natural density), how close its estimate of a fresh build is, one compactor at a
 * time, and the leftovers of rebuilds cut short.
 */
import pg from "pg"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { LockClass, MIGRATION_LOCK } from "../src/db/locks.js"
import { compactIndexes, indexDensities, isSparse } from "../src/db/index-compaction.js"
import { createTestDatabase } from "./support/db.js"

let url: string
let db: pg.Client

const connect = async () => {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  return c
}

beforeAll(async () => {
  url = await createTestDatabase()
  db = await connect()
})
afterAll(async () => {
  await db?.end()
})

const density = async (index: string) => (await indexDensities(db)).find((d) => d.index === `public.${index}`)
const fileOf = async (index: string) =>
  (await db.query<{ f: string }>("SELECT pg_relation_filenode($1::regclass)::text AS f", [index])).rows[0]!.f
const definition = async (index: string) =>
  (await db.query<{ d: string }>("SELECT pg_get_indexdef($1::regclass) AS d", [index])).rows[0]!.d
const invalidIndexes = async () =>
  (await db.query<{ n: string }>(
    "SELECT c.relname AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid ORDER BY 1")).rows.map((r) => r.n)

/**
 * `sparse`: 20,000 rows whose keys ascend like ULIDs, then nine in ten deleted evenly, so that every
 * leaf page keeps a tenth of its keys (VACUUM frees no page of it). Vacuumed and analyzed, as the
 * compactor finds tables after a cleanup.
 */
const makeSparse = async (analyze = true, table = "sparse") => {
  await db.query(`DROP TABLE IF EXISTS ${table}`)
  await db.query(`CREATE TABLE ${table} (id text PRIMARY KEY, n int NOT NULL) WITH (autovacuum_enabled = false)`)
  await db.query(`INSERT INTO ${table} SELECT '01J' || lpad(i::text, 23, '0'), i FROM generate_series(1, 20000) i`)
  await db.query(`DELETE FROM ${table} WHERE n % 10 <> 0`)
  await db.query(`${analyze ? "VACUUM ANALYZE" : "VACUUM"} ${table}`)
}

describe("index compaction", () => {
  beforeEach(async () => {
    await makeSparse()
  })

  it("rebuilds an index of time-ordered keys that deletes left sparse, to about a fresh build's size, same definition", async () => {
    const before = (await density("sparse_pkey"))!
    expect(isSparse(before)).toBe(true)
    const def = await definition("sparse_pkey")
    const report = await compactIndexes(db)
    expect(report.ran).toBe(true)
    expect(report.failed).toEqual([])
    expect(report.rebuilt).toContain("public.sparse_pkey")
    const after = (await density("sparse_pkey"))!
    expect(after.pages).toBeLessThan(before.pages / 3)
    expect(isSparse(after)).toBe(false)
    expect(await definition("sparse_pkey")).toBe(def)
    expect(await invalidIndexes()).toEqual([])
    // The index is in use again: a lookup by key finds the row through it.
    expect((await db.query("SELECT n FROM sparse WHERE id = '01J' || lpad('500', 23, '0')")).rows).toEqual([{ n: 500 }])
  })

  it("estimates a fresh build within 25%, and leaves fresh indexes and random keys at their natural density alone", async () => {
    await db.query("REINDEX INDEX sparse_pkey")
    await db.query("DROP TABLE IF EXISTS digests")
    await db.query("CREATE TABLE digests (sha256 text PRIMARY KEY)")
    await db.query("INSERT INTO digests SELECT encode(sha256(i::text::bytea), 'hex') FROM generate_series(1, 20000) i")
    await db.query("REINDEX INDEX digests_pkey")
    await db.query("ANALYZE digests")
    const fresh = (await density("digests_pkey"))!
    expect(fresh.pages / fresh.estimatedPages).toBeGreaterThan(0.8)
    expect(fresh.pages / fresh.estimatedPages).toBeLessThan(1.25)
    // Churn: a tenth of the keys replaced by new random ones, ten times over. Random keys land in
    // the pages the deletes thinned out, so the index settles at its natural density.
    for (let round = 1; round <= 10; round++) {
      await db.query(`DELETE FROM digests WHERE ('x' || substr(sha256, 1, 8))::bit(32)::int % 10 = ${round % 10}`)
      await db.query(
        `INSERT INTO digests SELECT encode(sha256(('r${round}-' || i)::bytea), 'hex') FROM generate_series(1, 2000) i`)
      await db.query("VACUUM ANALYZE digests")
    }
    const churned = (await density("digests_pkey"))!
    expect(isSparse(churned)).toBe(false)
    const files = { digests: await fileOf("digests_pkey"), sparse: await fileOf("sparse_pkey") }
    const report = await compactIndexes(db)
    expect(report.rebuilt).toEqual([])
    expect({ digests: await fileOf("digests_pkey"), sparse: await fileOf("sparse_pkey") }).toEqual(files)
  })

  it("analyzes a table whose key columns have no statistics yet, then rebuilds its sparse index", async () => {
    await makeSparse(false)
    expect(await density("sparse_pkey")).toBeUndefined()
    expect((await compactIndexes(db)).rebuilt).toContain("public.sparse_pkey")
    expect(isSparse((await density("sparse_pkey"))!)).toBe(false)
  })

  it("leaves the index of a table that emptied alone: VACUUM freed its pages for the next inserts", async () => {
    await db.query("DELETE FROM sparse")
    await db.query("VACUUM ANALYZE sparse")
    const emptied = (await density("sparse_pkey"))!
    expect(emptied.tuples).toBe(0)
    expect(emptied.pages - emptied.estimatedPages).toBeGreaterThan(8)
    const file = await fileOf("sparse_pkey")
    expect((await compactIndexes(db)).rebuilt).toEqual([])
    expect(await fileOf("sparse_pkey")).toBe(file)
  })

  it("estimates every index shape within 25% of a fresh build: multi-column, partial, and deduplicated duplicate keys", async () => {
    await db.query("DROP TABLE IF EXISTS shapes")
    await db.query(`CREATE TABLE shapes (id text PRIMARY KEY, repo text NOT NULL, version int NOT NULL, removed int)`)
    await db.query("CREATE INDEX shapes_repo_version ON shapes (repo, version)")
    await db.query("CREATE INDEX shapes_current ON shapes (repo, id) WHERE removed IS NULL")
    await db.query("CREATE UNIQUE INDEX shapes_repo_id ON shapes (repo, id)")
    await db.query(`INSERT INTO shapes SELECT '01J' || lpad(i::text, 23, '0'), 'repo-' || (i % 3), i / 400, CASE WHEN i % 4 = 0 THEN i END
                    FROM generate_series(1, 30000) i`)
    await db.query("REINDEX TABLE shapes")
    await db.query("ANALYZE shapes")
    for (const index of ["shapes_pkey", "shapes_repo_version", "shapes_current", "shapes_repo_id"]) {
      const d = (await density(index))!
      expect(d.pages / d.estimatedPages, index).toBeGreaterThan(0.8)
      expect(d.pages / d.estimatedPages, index).toBeLessThan(1.25)
    }
  })

  it("rebuilds a sparse index of duplicated, time-ordered keys (a version number), estimated with deduplication", async () => {
    await db.query("DROP TABLE IF EXISTS versions")
    await db.query("CREATE TABLE versions (id text PRIMARY KEY, version int NOT NULL) WITH (autovacuum_enabled = false)")
    await db.query("CREATE INDEX versions_version ON versions (version)")
    // 200 versions, 1,000 rows each, added in order; then nine rows in ten deleted evenly.
    for (let v = 0; v < 200; v++) {
      await db.query(`INSERT INTO versions SELECT '01J' || lpad((${v * 1000} + i)::text, 23, '0'), ${v} FROM generate_series(1, 1000) i`)
    }
    await db.query("DELETE FROM versions WHERE right(id, 1) <> '0'")
    await db.query("VACUUM ANALYZE versions")
    const before = (await density("versions_version"))!
    expect(isSparse(before)).toBe(true)
    expect((await compactIndexes(db)).rebuilt).toContain("public.versions_version")
    const after = (await density("versions_version"))!
    expect(after.pages).toBeLessThan(before.pages / 2)
    expect(isSparse(after)).toBe(false)
  })

  it("a rebuild that gives up ends the run: what held it up would hold up the next one too", async () => {
    await makeSparse(true, "sparse2")
    const old = await connect()
    try {
      await old.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
      await old.query("SELECT count(*) FROM sparse")
      const report = await compactIndexes(db, { lockTimeoutMs: 300 })
      // One rebuild tried (and the drop of its copy, which may wait too), not both.
      expect(report.failed.filter((f) => !f.index.includes("_cc"))).toHaveLength(1)
      expect(report.rebuilt).toEqual([])
    } finally {
      await old.end()
    }
    const next = await compactIndexes(db)
    expect(next.rebuilt).toEqual(expect.arrayContaining(["public.sparse_pkey", "public.sparse2_pkey"]))
    expect(await invalidIndexes()).toEqual([])
    await db.query("DROP TABLE sparse2")
  })

  it("does nothing while a migration runs (it holds the migration lock)", async () => {
    const migrator = await connect()
    try {
      await migrator.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`)
      const file = await fileOf("sparse_pkey")
      expect(await compactIndexes(db)).toEqual({ ran: false, rebuilt: [], dropped: [], failed: [] })
      expect(await fileOf("sparse_pkey")).toBe(file)
    } finally {
      await migrator.end()
    }
    expect((await compactIndexes(db)).rebuilt).toContain("public.sparse_pkey")
  })

  it("one compactor at a time: a run that finds the lock taken does nothing", async () => {
    const holder = await connect()
    try {
      await holder.query(`SELECT pg_advisory_lock(${LockClass.indexCompaction}, 0)`)
      const file = await fileOf("sparse_pkey")
      expect(await compactIndexes(db)).toEqual({ ran: false, rebuilt: [], dropped: [], failed: [] })
      expect(await fileOf("sparse_pkey")).toBe(file)
      await holder.query(`SELECT pg_advisory_unlock(${LockClass.indexCompaction}, 0)`)
      expect((await compactIndexes(db)).rebuilt).toContain("public.sparse_pkey")
    } finally {
      await holder.end()
    }
  })

  it("a rebuild held up by an older transaction gives up at the lock timeout; the next run drops its copy and rebuilds", async () => {
    const old = await connect()
    try {
      // A transaction whose snapshot is older than the rebuild's: REINDEX CONCURRENTLY waits for
      // it, and so does dropping the copy it leaves.
      await old.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
      await old.query("SELECT count(*) FROM sparse")
      const report = await compactIndexes(db, { lockTimeoutMs: 300 })
      expect(report.failed.map((f) => f.index)).toEqual(["public.sparse_pkey", "public.sparse_pkey_ccnew"])
      expect(report.failed[0]!.reason).toMatch(/lock timeout/)
      expect(report.rebuilt).toEqual([])
      expect(await invalidIndexes()).toEqual(["sparse_pkey_ccnew"])
    } finally {
      await old.end()
    }
    const next = await compactIndexes(db)
    expect(next.dropped).toEqual(["public.sparse_pkey_ccnew"])
    expect(next.rebuilt).toContain("public.sparse_pkey")
    expect(next.failed).toEqual([])
    expect(await invalidIndexes()).toEqual([])
  })

  it("drops the invalid copy a rebuild cut short left behind (as after a kill -9), before anything else", async () => {
    const old = await connect()
    const rebuilder = await connect()
    rebuilder.on("error", () => undefined) // it is terminated on purpose
    try {
      await old.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
      await old.query("SELECT count(*) FROM sparse")
      const pid = (await rebuilder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid
      const rebuilding = rebuilder.query("REINDEX INDEX CONCURRENTLY sparse_pkey").then(() => "done", (e: Error) => e.message)
      // Wait until the rebuild waits for the old transaction: its copy exists by then.
      for (;;) {
        const waiting = (await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [pid])).rowCount
        if (waiting) break
        await new Promise((r) => setTimeout(r, 20))
      }
      await db.query("SELECT pg_terminate_backend($1)", [pid])
      expect(await rebuilding).not.toBe("done")
    } finally {
      await old.end()
      await rebuilder.end().catch(() => undefined)
    }
    expect(await invalidIndexes()).toEqual(["sparse_pkey_ccnew"])
    const report = await compactIndexes(db)
    expect(report.dropped).toEqual(["public.sparse_pkey_ccnew"])
    expect(report.rebuilt).toContain("public.sparse_pkey")
    expect(await invalidIndexes()).toEqual([])
  })
})
