/**
 * The content task kinds in one process against a fixture upstream: sync (immediate, mirror,
 * on-demand, no-op, changed upstream, corrupt file), modify, publish, and
 * distribution.set, checked through the rows and the stored bytes.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed, getNamed } from "../src/content/named.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { versionContent } from "../src/content/versions.js"
import { Db } from "../src/db/client.js"
import { type NodeSpec, submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

let url: string
let upstream: Upstream
beforeAll(async () => {
  url = await createTestDatabase()
  upstream = await startUpstream(makeFiles(12, { seed: 7, maxSize: 20_000 }))
})
afterAll(async () => {
  await upstream?.close()
})

const layer = () => engineLayer(url)
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex")

interface Settled {
  readonly state: string
  readonly value: any
  readonly error: any
}

/** Submit, then wait (bounded) until every output future of the graph settled. */
const runGraph = (nodes: Record<string, NodeSpec>) =>
  Effect.gen(function*() {
    const db = yield* Db
    const g = yield* submitGraph({ nodes })
    const ids = Object.values(g.nodes).flatMap((n) => Object.values(n.outputs))
    const deadline = Date.now() + 30_000
    for (;;) {
      const rows = yield* db.rows<{ id: string; state: string; value: unknown; error: unknown }>(
        sql`SELECT id, state, value, error FROM futures WHERE id = ANY(${sql.param(ids)}::text[])`
      )
      if (rows.every((r) => r.state !== "pending")) {
        const byId = new Map(rows.map((r) => [r.id, r]))
        const out: Record<string, Settled> = {}
        for (const [name, n] of Object.entries(g.nodes)) {
          const f = byId.get(Object.values(n.outputs)[0]!)!
          out[name] = { state: f.state, value: f.value, error: f.error }
        }
        return out
      }
      if (Date.now() > deadline) return yield* Effect.dieMessage(`graph still pending: ${JSON.stringify(rows.map((r) => r.state))}`)
      yield* Effect.sleep(Duration.millis(25))
    }
  })

const contentOf = (versionId: string) =>
  Effect.map(versionContent(versionId), (rows) => rows.map((r) => `${r.relative_path},${r.sha256},${r.size},${r.artifact ? "stored" : "on_demand"}`))

const upstreamLines = (u: Upstream, files: Record<string, Buffer>, how = "stored") =>
  Object.entries(files).map(([p, b]) => `${p},${sha(b)},${b.length},${how}`).sort()

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    yield* runWorker({ slots: 3 })
    return yield* eff
  })).pipe(Effect.provide(layer())) as Effect.Effect<A, E, never>)

describe("content task kinds", () => {
  it("sync -> publish -> distribute; a second sync is a no-op; a changed upstream makes a new version with the diff", async () => {
    const files = makeFiles(12, { seed: 7, maxSize: 20_000 })
    await run(Effect.gen(function*() {
      const storage = yield* ArtifactStorage
      yield* createNamed("remote", "up", { url: upstream.url, policy: "immediate", download_concurrency: 4 })
      yield* createNamed("repository", "repo", {})
      yield* createNamed("distribution", "dist", { base_path: "repo/x" })
      const out = yield* runGraph({
        sync: { task: "file.sync", params: { repository: "repo", remote: "up" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        dist: { task: "distribution.set", params: { distribution: "dist", publication: { $ref: "publish.publication" } } }
      })
      expect(out.sync!.state, JSON.stringify(out.sync!.error)).toBe("resolved")
      expect(out.publish!.state, JSON.stringify(out.publish!.error)).toBe("resolved")
      expect(out.dist!.state, JSON.stringify(out.dist!.error)).toBe("resolved")
      expect(out.sync!.value.number).toBe(1)
      expect(yield* contentOf(out.sync!.value.version)).toEqual(upstreamLines(upstream, files))
      for (const b of Object.values(files)) expect((yield* storage.stat(sha(b)))?.size).toBe(b.length)

      // The publication's manifest is the version's content, stored as an artifact.
      const db = yield* Db
      const [pub] = yield* db.rows<{ sha256: string }>(sql`
        SELECT a.sha256 FROM publication_files p JOIN artifacts a ON a.id = p.artifact_id
        WHERE p.publication_id = ${out.publish!.value.publication} AND p.relative_path = 'PULP_MANIFEST'`)
      const stream = yield* storage.open(pub!.sha256)
      const text = yield* Effect.promise(async () => {
        const parts: Array<Buffer> = []
        for await (const c of stream) parts.push(c as Buffer)
        return Buffer.concat(parts).toString("utf8")
      })
      expect(text.trim().split("\n").sort()).toEqual(Object.entries(files).map(([p, b]) => `${p},${sha(b)},${b.length}`).sort())

      // The distribution's current revision points at the publication future.
      const d = yield* getNamed("distribution", "dist")
      const [pubFuture] = yield* db.rows<{ future_id: string }>(
        sql`SELECT future_id FROM publications WHERE id = ${out.publish!.value.publication}`
      )
      expect(d.publication).toBe(pubFuture!.future_id)

      // The last progress report lands before the task settles: every file done.
      const [progress] = yield* db.rows<{ progress: { done: number; total: number; unit: string } }>(
        sql`SELECT progress FROM tasks WHERE kind = 'file.sync' ORDER BY seq LIMIT 1`
      )
      expect(progress!.progress).toEqual({ done: 12, total: 12, unit: "files" })

      // Sync again: nothing changed, the latest version is the answer; nothing is downloaded again.
      const before = new Map(upstream.requests)
      const again = yield* runGraph({ sync: { task: "file.sync", params: { repository: "repo", remote: "up" } } })
      expect(again.sync!.value.version).toBe(out.sync!.value.version)
      expect(again.sync!.value.number).toBe(1)
      for (const p of Object.keys(files)) expect(upstream.requests.get(p)).toBe(before.get(p))

      // Change the upstream: one file changed, one added, one removed (not mirror: removal is kept).
      const [changed, removed] = Object.keys(files)
      upstream.setFile(changed!, "new content of the changed file")
      upstream.setFile("added/new.txt", "brand new")
      upstream.removeFile(removed!)
      const third = yield* runGraph({ sync: { task: "file.sync", params: { repository: "repo", remote: "up" } } })
      expect(third.sync!.value.number).toBe(2)
      const v2 = yield* contentOf(third.sync!.value.version)
      expect(v2).toContain(`${changed},${sha("new content of the changed file")},31,stored`)
      expect(v2).toContain(`added/new.txt,${sha("brand new")},9,stored`)
      expect(v2.filter((l) => l.startsWith(`${changed},`))).toHaveLength(1) // replaced, not both
      expect(v2.some((l) => l.startsWith(`${removed},`))).toBe(true) // additive sync keeps it
      const [versions] = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM repository_versions v JOIN names n ON n.resource_id = v.repository_id WHERE n.name = 'repo'`)
      expect(versions!.n).toBe(3) // 0, 1, 2

      // Mirror: exactly the manifest.
      const mirror = yield* runGraph({ sync: { task: "file.sync", params: { repository: "repo", remote: "up", mirror: true } } })
      expect(mirror.sync!.value.number).toBe(3)
      expect((yield* contentOf(mirror.sync!.value.version)).some((l) => l.startsWith(`${removed},`))).toBe(false)
      expect(yield* contentOf(mirror.sync!.value.version)).toHaveLength(12)

      upstream.setFile(removed!, files[removed!]!)
      upstream.removeFile("added/new.txt")
      upstream.setFile(changed!, files[changed!]!)
    }))
  })

  it("on_demand records content without downloading it", async () => {
    const up = await startUpstream(makeFiles(5, { seed: 99 }))
    try {
      await run(Effect.gen(function*() {
        yield* createNamed("remote", "lazy", { url: up.url, policy: "on_demand", download_concurrency: 2 })
        yield* createNamed("repository", "lazy-repo", {})
        const out = yield* runGraph({ sync: { task: "file.sync", params: { repository: "lazy-repo", remote: "lazy" } } })
        expect(out.sync!.state, JSON.stringify(out.sync!.error)).toBe("resolved")
        const lines = yield* contentOf(out.sync!.value.version)
        expect(lines).toHaveLength(5)
        for (const l of lines) expect(l.endsWith(",on_demand")).toBe(true)
        expect([...up.requests.keys()]).toEqual(["PULP_MANIFEST"])
        const db = yield* Db
        const [sources] = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM content_sources s JOIN content_units c ON c.id = s.content_id`)
        expect(sources!.n).toBeGreaterThanOrEqual(5)
      }))
    } finally {
      await up.close()
    }
  })

  it("a corrupted upstream file fails the sync with digest_mismatch and stores neither it nor a version", async () => {
    const files = makeFiles(4, { seed: 3 })
    const up = await startUpstream(files)
    const bad = Object.keys(files)[2]!
    up.faults.corrupt(bad)
    try {
      await run(Effect.gen(function*() {
        const storage = yield* ArtifactStorage
        yield* createNamed("remote", "corrupt", { url: up.url, policy: "immediate", download_concurrency: 1 })
        yield* createNamed("repository", "corrupt-repo", {})
        const out = yield* runGraph({ sync: { task: "file.sync", params: { repository: "corrupt-repo", remote: "corrupt" } } })
        expect(out.sync!.state).toBe("failed")
        expect(out.sync!.error.code).toBe("digest_mismatch")
        expect(out.sync!.error.message).toContain(bad)
        const db = yield* Db
        expect(yield* storage.stat(sha(files[bad]!))).toBeUndefined()
        const [v] = yield* db.rows<{ n: number }>(sql`
          SELECT count(*)::int AS n FROM repository_versions v JOIN names n ON n.resource_id = v.repository_id WHERE n.name = 'corrupt-repo'`)
        expect(v!.n).toBe(1) // only version 0
      }))
    } finally {
      await up.close()
    }
  })

  it("modify adds and removes by id on a base version, and a name that does not exist is a 400", async () => {
    await run(Effect.gen(function*() {
      yield* createNamed("repository", "mod-src", {})
      yield* createNamed("repository", "mod", {})
      yield* createNamed("remote", "up2", { url: upstream.url, policy: "immediate", download_concurrency: 4 })
      const src = yield* runGraph({ sync: { task: "file.sync", params: { repository: "mod-src", remote: "up2" } } })
      const units = yield* versionContent(src.sync!.value.version)
      const [a, b, c] = units
      const first = yield* runGraph({ m: { task: "repository.modify", params: { repository: "mod", add: [a!.id, b!.id, c!.id] } } })
      expect(first.m!.state, JSON.stringify(first.m!.error)).toBe("resolved")
      expect(first.m!.value.number).toBe(1)
      const second = yield* runGraph({ m: { task: "repository.modify", params: { repository: "mod", remove: [b!.id] } } })
      expect((yield* versionContent(second.m!.value.version)).map((u) => u.id).sort()).toEqual([a!.id, c!.id].sort())
      // On base version 1 (a, b, c), remove a: the result is b, c.
      const third = yield* runGraph({
        m: { task: "repository.modify", params: { repository: "mod", remove: [a!.id], base_version: { $ref: yield* futureOf(first.m!.value.version) } } }
      })
      expect(third.m!.state, JSON.stringify(third.m!.error)).toBe("resolved")
      expect((yield* versionContent(third.m!.value.version)).map((u) => u.id).sort()).toEqual([b!.id, c!.id].sort())
      const all = yield* runGraph({ m: { task: "repository.modify", params: { repository: "mod", remove: "*" } } })
      expect(yield* versionContent(all.m!.value.version)).toHaveLength(0)
      const err = yield* Effect.flip(submitGraph({ nodes: { m: { task: "repository.modify", params: { repository: "nope" } } } }))
      expect(JSON.stringify(err)).toContain("no repository named")
      // Relative paths given with an artifact are checked like a manifest's: no traversal.
      for (const bad of ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "a/\u0000"]) {
        const refused = yield* Effect.flip(submitGraph({
          nodes: { m: { task: "repository.modify", params: { repository: "mod", add: [{ relative_path: bad, artifact: "01M84PSERFQ3Z404JJF2HW8V7Z" }] } } }
        }))
        expect(JSON.stringify(refused), bad).toContain("relative path")
      }
    }))
  })
})

/** The future a version was created by. */
const futureOf = (versionId: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [v] = yield* db.rows<{ future_id: string }>(sql`SELECT future_id FROM repository_versions WHERE id = ${versionId}`)
    return v!.future_id
  })
