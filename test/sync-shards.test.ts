/**
 * Download shards (src/content/sync-shards.ts): a sync with many files spreads its downloads over
 * child tasks, and cuts the same version as an in-process sync: every file stored and linked,
 * nothing left owned by a task, the shards adopted for the sync (so no cleanup could take their
 * files before its commit). A shard that fails fails the sync with its cause; files missing
 * upstream are listed with skip_missing; a worker process killed mid-shard costs a retry of its
 * shard, not the sync.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed } from "../src/content/named.js"
import { Db } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { api, type Proc, type Server, startServer, startWorker, until } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const FILES = 60
const files = makeFiles(FILES, { seed: 31, maxSize: 3_000 })
const paths = Object.keys(files).sort()
let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream(files)
})
afterAll(async () => {
  await upstream?.close()
})

interface SyncOutcome {
  readonly state: string
  readonly error: { code: string; message: string } | null
  readonly value: { missing?: Array<string> } | null
  readonly shards: ReadonlyArray<{ state: string; parent_task: string }>
  readonly units: number
  readonly linked: number
  readonly taskOwned: number
}

/** Runs one file.sync of `repo` on an in-process worker and reads what it left. */
const syncOnce = (url: string, repo: string, params: Record<string, unknown> = {}) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const db = yield* Db
    yield* runWorker({ slots: 2 })
    yield* createNamed("remote", `up-${repo}`, { url: upstream.url, policy: "immediate", download_concurrency: 3 })
    yield* createNamed("repository", repo, {})
    const g = yield* submitGraph({ nodes: { s: { task: "file.sync", params: { repository: repo, remote: `up-${repo}`, ...params } } } })
    const task = g.nodes.s!.task
    for (;;) {
      const [t] = yield* db.rows<{ state: string }>(sql`SELECT state FROM tasks WHERE id = ${task}`)
      if (t && ["succeeded", "failed", "canceled"].includes(t.state)) break
      yield* Effect.sleep(Duration.millis(20))
    }
    const [t] = yield* db.rows<{ state: string; error: SyncOutcome["error"] }>(sql`SELECT state, error FROM tasks WHERE id = ${task}`)
    const [f] = yield* db.rows<{ value: SyncOutcome["value"] }>(sql`SELECT value FROM futures WHERE id = ${g.nodes.s!.outputs.version!}`)
    const shards = yield* db.rows<{ state: string; parent_task: string }>(sql`
      SELECT t.state, g.parent_task FROM graphs g JOIN tasks t ON t.graph_id = g.id
      WHERE g.parent_task = ${task} AND t.kind = 'content.download-shard'`)
    const [counts] = yield* db.rows<{ units: number; linked: number; owned: number }>(sql`
      SELECT (SELECT count(*)::int FROM repository_content rc JOIN resources r ON r.id = rc.repository_id
              JOIN names n ON n.resource_id = r.id WHERE n.name = ${repo}) AS units,
             (SELECT count(*)::int FROM content_artifacts) AS linked,
             (SELECT count(*)::int FROM task_artifacts) AS owned`)
    return {
      state: t!.state,
      error: t!.error,
      value: f?.value ?? null,
      shards,
      units: counts!.units,
      linked: counts!.linked,
      taskOwned: counts!.owned
    } satisfies SyncOutcome
  })).pipe(Effect.provide(engineLayer(url, { syncShards: 3, syncShardMinFiles: 10 }))) as Effect.Effect<SyncOutcome, unknown, never>)

describe("download shards", () => {
  it("spreads a large sync over shard tasks and cuts the whole version", async () => {
    const url = await createTestDatabase()
    const out = await syncOnce(url, "big")
    expect(out.error).toBeNull()
    expect(out.state).toBe("succeeded")
    expect(out.shards.map((s) => s.state)).toEqual(["succeeded", "succeeded", "succeeded"])
    expect(out.units).toBe(FILES)
    expect(out.linked).toBe(FILES)
    expect(out.taskOwned).toBe(0)
  })

  it("fails the sync with a failing shard's cause, naming the file", async () => {
    const url = await createTestDatabase()
    upstream.faults.corrupt(paths[7]!)
    try {
      const out = await syncOnce(url, "bad")
      expect(out.state).toBe("failed")
      expect(out.error?.code).toBe("digest_mismatch")
      expect(out.error?.message).toContain(paths[7]!)
      expect(out.shards.some((s) => s.state === "failed")).toBe(true)
      expect(out.taskOwned).toBe(0)
    } finally {
      upstream.faults.clear()
    }
  })

  it("lists the files missing upstream with skip_missing, and keeps the rest", async () => {
    const url = await createTestDatabase()
    const gone = [paths[3]!, paths[40]!]
    for (const p of gone) upstream.faults.failStatus(p, 404, Infinity)
    try {
      const out = await syncOnce(url, "holes", { skip_missing: true })
      expect(out.error).toBeNull()
      expect(out.value?.missing).toEqual([...gone].sort())
      expect(out.units).toBe(FILES - gone.length)
      expect(out.shards).toHaveLength(3)
    } finally {
      upstream.faults.clear()
    }
  })

  it("a shard whose sync no longer runs that attempt writes no ownership and fails parent_gone", async () => {
    const url = await createTestDatabase()
    const out = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Db
      yield* runWorker({ slots: 1 })
      yield* createNamed("remote", "up-gone", { url: upstream.url, policy: "immediate", download_concurrency: 2 })
      const [remote] = yield* db.rows<{ revision_id: string }>(sql`SELECT revision_id FROM names WHERE kind = 'remote' AND name = 'up-gone'`)
      const settledTask = (id: string) =>
        Effect.gen(function*() {
          for (;;) {
            const [t] = yield* db.rows<{ state: string; error: { code: string } | null }>(sql`SELECT state, error FROM tasks WHERE id = ${id}`)
            if (t && ["succeeded", "failed", "canceled"].includes(t.state)) return t
            yield* Effect.sleep(Duration.millis(20))
          }
        })
      // The "sync": a task that has settled already.
      const parent = (yield* submitGraph({ nodes: { p: { task: "debug.sleep" } } })).nodes.p!.task
      yield* settledTask(parent)
      const shardFiles = paths.slice(0, 3).map((p) => [upstream.sha256(p), files[p]!.length, [[p, upstream.fileUrl(p)]]])
      const g = yield* submitGraph({
        nodes: {
          s: {
            task: "content.download-shard",
            params: { parent, parent_attempt: 1, remote_revision: remote!.revision_id, concurrency: 2, skip_missing: false, files: shardFiles }
          }
        }
      })
      const shard = yield* settledTask(g.nodes.s!.task)
      const [owned] = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM task_artifacts`)
      return { owned: owned!.n, shard }
    })).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<{ owned: number; shard: { state: string; error: { code: string } | null } }, unknown, never>)
    expect(out.shard.state).toBe("failed")
    expect(out.shard.error?.code).toBe("parent_gone")
    expect(out.owned).toBe(0)
  })
})

describe("download shards across worker processes", () => {
  let server: Server
  let db: pg.Client
  const workers: Array<Proc> = []
  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop(5000)))
    await server?.stop()
    await db?.end()
  })

  it("a worker killed -9 mid-shard: its shard is retried elsewhere and the sync completes", async () => {
    const dbUrl = await createTestDatabase()
    const env = { CAIRN_SYNC_SHARDS: "4", CAIRN_SYNC_SHARD_MIN_FILES: "10", CAIRN_WORKERS: "2" }
    server = await startServer(dbUrl, { CAIRN_WORKERS: "0" })
    const c = api(server.url)
    db = new pg.Client({ connectionString: dbUrl })
    await db.connect()
    // Slow enough that the shards are still downloading when one's worker is killed.
    for (const p of paths) upstream.faults.delay(p, 150)
    try {
      workers.push(startWorker(dbUrl, env), startWorker(dbUrl, env))
      // Both registered before the sync starts, so that shards can run on the one without the sync.
      await until("two registered workers", async () => {
        const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM workers")
        return r.rows[0]!.n === 2
      }, 120_000)
      expect((await c.post("/api/v1/remotes", { name: "up", url: upstream.url, policy: "immediate", download_concurrency: 2 })).status).toBe(201)
      expect((await c.post("/api/v1/repositories", { name: "r" })).status).toBe(201)
      const submitted = await c.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "r", remote: "up" } } } })
      const parent = (submitted.body as { nodes: { s: { task: string } } }).nodes.s.task
      // A shard running on the worker that does not run the sync: kill that worker.
      const victim = await until("a shard running on the other worker", async () => {
        const r = await db.query<{ pid: number }>(`
          SELECT w.pid FROM tasks t JOIN graphs g ON g.id = t.graph_id JOIN workers w ON w.id = t.worker_id
          WHERE g.parent_task = $1 AND t.state = 'running'
            AND t.worker_id <> (SELECT worker_id FROM tasks WHERE id = $1)
            AND EXISTS (SELECT 1 FROM task_artifacts ta WHERE ta.task_id = $1)
          LIMIT 1`, [parent])
        return r.rows[0]?.pid
      }, 60_000)
      const proc = workers.find((w) => w.pid === victim)!
      proc.child.kill("SIGKILL")
      workers.push(startWorker(dbUrl, env))
      const done = await until("the sync settled", async () => {
        const r = await db.query<{ state: string; error: unknown }>("SELECT state, error FROM tasks WHERE id = $1", [parent])
        return ["succeeded", "failed", "canceled"].includes(r.rows[0]!.state) ? r.rows[0] : undefined
      }, 120_000)
      expect(done).toMatchObject({ state: "succeeded" })
      const retried = await db.query<{ attempts: number; state: string }>(`
        SELECT t.attempts, t.state FROM tasks t JOIN graphs g ON g.id = t.graph_id WHERE g.parent_task = $1`, [parent])
      expect(retried.rows.every((r) => r.state === "succeeded")).toBe(true)
      expect(retried.rows.some((r) => r.attempts === 2)).toBe(true)
      const units = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM repository_content")
      expect(units.rows[0]!.n).toBe(FILES)
      const owned = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM task_artifacts")
      expect(owned.rows[0]!.n).toBe(0)
    } finally {
      upstream.faults.clear()
    }
  })
})
