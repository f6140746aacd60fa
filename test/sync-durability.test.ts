/**
 * A sync's durability per batch (src/content/fetch.ts): the lanes only stage files (bytes durable,
 * names not yet), and no artifact is adopted, so no row committed, before a `persist` covering it
 * returned. The real local store, wrapped to record the order: staged digests, persisted digests,
 * and every digest the adoption protocol checks under its lock (`stat`, just before the adopting
 * transaction). A digest checked while staged and not yet persisted would be a row that a crash of
 * the machine could leave pointing at nothing.
 */
import { sql } from "drizzle-orm"
import { createHash } from "node:crypto"
import { Context, Duration, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed } from "../src/content/named.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { Db } from "../src/db/client.js"
import { TaskKinds } from "../src/engine/kind.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

let url: string
let upstream: Upstream
const files = makeFiles(40, { seed: 7, maxSize: 20_000 })
beforeAll(async () => {
  url = await createTestDatabase()
  upstream = await startUpstream(files)
})
afterAll(async () => {
  await upstream?.close()
})

describe("sync durability per batch", () => {
  it("persists every staged file before the adoption that commits its row", async () => {
    const out = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Db
      const real = yield* ArtifactStorage
      const staged = new Set<string>()
      const persisted = new Set<string>()
      const early: Array<string> = []
      let persists = 0
      const recording = ArtifactStorage.of({
        ...real,
        stage: (source, expected) => real.stage(source, expected).pipe(Effect.tap((r) => Effect.sync(() => staged.add(r.sha256)))),
        persist: (digests) =>
          real.persist(digests).pipe(Effect.tap(() =>
            Effect.sync(() => {
              persists++
              for (const d of digests) persisted.add(d)
            })
          )),
        stat: (sha) =>
          Effect.suspend(() => {
            if (staged.has(sha) && !persisted.has(sha)) early.push(sha)
            return real.stat(sha)
          })
      })
      // Handlers get their services from the registry, which captured them when it was built.
      const kinds = yield* TaskKinds
      yield* runWorker({ slots: 1 }).pipe(
        Effect.provideService(TaskKinds, { ...kinds, context: Context.add(kinds.context, ArtifactStorage, recording) })
      )
      yield* createNamed("remote", "up", { url: upstream.url, policy: "immediate", download_concurrency: 4 })
      yield* createNamed("repository", "repo", {})
      const g = yield* submitGraph({ nodes: { s: { task: "file.sync", params: { repository: "repo", remote: "up" } } } })
      const id = g.nodes.s!.outputs.version!
      for (;;) {
        const [f] = yield* db.rows<{ state: string }>(sql`SELECT state FROM futures WHERE id = ${id}`)
        if (f!.state !== "pending") break
        yield* Effect.sleep(Duration.millis(20))
      }
      const [f] = yield* db.rows<{ state: string }>(sql`SELECT state FROM futures WHERE id = ${id}`)
      const [rows] = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM artifacts`)
      return { state: f!.state, staged: staged.size, persisted: [...staged].filter((d) => persisted.has(d)).length, early, persists, rows: rows!.n }
    })).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<
      { state: string; staged: number; persisted: number; early: Array<string>; persists: number; rows: number },
      unknown,
      never
    >)
    const distinct = new Set(Object.values(files).map((b) => createHash("sha256").update(b).digest("hex"))).size
    expect(out.state).toBe("resolved")
    expect(out.staged).toBe(distinct)
    expect(out.rows).toBe(distinct)
    expect(out.persisted).toBe(distinct)
    expect(out.early).toEqual([])
    expect(out.persists).toBeGreaterThan(0)
  })
})
