import { sql } from "drizzle-orm"
import { Duration, Effect, Layer } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { getFuture, getGraph } from "../src/engine/views.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

const waitSettled = (futureId: string, timeoutMs = 20_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const f = yield* getFuture(futureId)
      if (f && f.state !== "pending") return f
      if (Date.now() > deadline) throw new Error(`future ${futureId} still pending after ${timeoutMs} ms`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(eff).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<A, E, never>)

describe("engine basics", () => {
  it("runs a chain, passing values through refs", async () => {
    const out = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      const g = yield* submitGraph({
        nodes: {
          a: { task: "debug.sleep", params: { ms: 10, value: { n: 1 } } },
          b: { task: "debug.sleep", params: { value: { got: { $ref: "a.result" } } } }
        }
      })
      const fb = yield* waitSettled(g.nodes.b!.outputs.result!)
      const graph = yield* getGraph(g.id)
      return { fb, graph }
    }))
    expect(out.fb.state).toBe("resolved")
    expect((out.fb as { value: unknown }).value).toEqual({ got: { n: 1 } })
    expect(out.graph!.state).toBe("succeeded")
  })

  it("propagates a failure downstream with its root cause", async () => {
    const out = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      const g = yield* submitGraph({
        nodes: {
          a: { task: "debug.sleep", params: { fail: "boom" } },
          b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }] } },
          c: { task: "debug.sleep", params: { inputs: [{ $ref: "b.result" }] } }
        }
      })
      const fc = yield* waitSettled(g.nodes.c!.outputs.result!)
      return { g, fc }
    }))
    expect(out.fc.state).toBe("failed")
    expect(out.fc.error).toMatchObject({
      code: "upstream_failed",
      cause_task: out.g.nodes.a!.task,
      cause_future: out.g.nodes.b!.outputs.result
    })
  })

  it("refuses to change a settled future (trigger)", async () => {
    const err = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({ nodes: { a: { task: "debug.sleep", params: { value: 1 } } } })
      const f = yield* waitSettled(g.nodes.a!.outputs.result!)
      const db = yield* Db
      return yield* db.rows(sql`UPDATE futures SET value = '2' WHERE id = ${f.id}`).pipe(Effect.flip)
    }))
    expect(err.message).toMatch(/settled future is immutable/)
  })
})
