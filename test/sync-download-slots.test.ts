/**
 * Host download slots held per sync (src/content/fetch.ts): two syncs of one host, each wanting
 * more parallel downloads than the host allows, never hold more than CAIRN_HOST_DOWNLOAD_SLOTS
 * slot rows between them, both complete, and nothing (slot nor waiting row) is left afterwards.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect, Fiber } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed } from "../src/content/named.js"
import { Db } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const SLOTS = 2
let url: string
let upstream: Upstream
const files = makeFiles(24, { seed: 11, maxSize: 4_000 })
beforeAll(async () => {
  url = await createTestDatabase()
  upstream = await startUpstream(files)
  // Slow responses, so that the two syncs' downloads overlap.
  for (const p of Object.keys(files)) upstream.faults.delay(p, 40)
})
afterAll(async () => {
  await upstream?.close()
})

describe("host download slots", () => {
  it("two syncs of one host share its slots: never more than N held, both complete, none left", async () => {
    const out = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Db
      yield* runWorker({ slots: 2 })
      yield* createNamed("remote", "up", { url: upstream.url, policy: "immediate", download_concurrency: 4 })
      yield* createNamed("repository", "one", {})
      yield* createNamed("repository", "two", {})
      let most = 0
      const held = db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM slot_locks WHERE name LIKE 'host(%).slot(%'`)
      const sampler = yield* Effect.fork(Effect.forever(Effect.flatMap(held, ([r]) => Effect.sync(() => (most = Math.max(most, r!.n))))))
      const g = yield* submitGraph({
        nodes: {
          a: { task: "file.sync", params: { repository: "one", remote: "up" } },
          b: { task: "file.sync", params: { repository: "two", remote: "up" } }
        }
      })
      const ids = [g.nodes.a!.outputs.version!, g.nodes.b!.outputs.version!]
      for (;;) {
        const rows = yield* db.rows<{ state: string }>(sql`SELECT state FROM futures WHERE id = ANY(${sql.param(ids)}::text[])`)
        if (rows.every((r) => r.state !== "pending")) break
        yield* Effect.sleep(Duration.millis(20))
      }
      yield* Fiber.interrupt(sampler)
      const states = yield* db.rows<{ state: string }>(sql`SELECT state FROM futures WHERE id = ANY(${sql.param(ids)}::text[])`)
      const left = yield* db.rows<{ name: string }>(sql`SELECT name FROM slot_locks`)
      const owned = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM task_artifacts`)
      return { most, states: states.map((s) => s.state), left, owned: owned[0]!.n }
    })).pipe(Effect.provide(engineLayer(url, { hostDownloadSlots: SLOTS }))) as Effect.Effect<
      { most: number; states: Array<string>; left: ReadonlyArray<{ name: string }>; owned: number },
      unknown,
      never
    >)
    expect(out.states).toEqual(["resolved", "resolved"])
    expect(out.most).toBeGreaterThan(0)
    expect(out.most).toBeLessThanOrEqual(SLOTS)
    expect(out.left).toEqual([])
    expect(out.owned).toBe(0)
  })
})
