/**
 * The submission's write (cairn_submit, one call): what it decides from the database's state under
 * its locks (each task's pending inputs from the states of its external inputs, the cascade from
 * failed or canceled ones), and the refusal of an external input purged between validation and the
 * write. Validation's own refusals are test/submit-validation.test.ts; a submit hook's refusal is
 * test/lifecycle.test.ts.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { cancelTask } from "../src/engine/cancel.js"
import { purgeGraphs } from "../src/engine/purge.js"
import { prepareGraph, submitGraph } from "../src/engine/submit.js"
import { writeGraph } from "../src/engine/submit/write.js"
import { getFuture } from "../src/engine/views.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(eff).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<A, E, never>)

const waitSettled = (futureId: string) =>
  Effect.gen(function*() {
    for (;;) {
      const f = yield* getFuture(futureId)
      if (f && f.state !== "pending") return f.state
      yield* Effect.sleep(Duration.millis(20))
    }
  })

/** A resolved and a failed future (run by a worker), then no worker any more. */
const settledInputs = () =>
  run(Effect.gen(function*() {
    yield* runWorker({ slots: 2 })
    const g = yield* submitGraph({
      nodes: { r: { task: "debug.sleep", params: { value: 1 } }, f: { task: "debug.sleep", params: { fail: "boom" } } }
    })
    const r = g.nodes.r!.outputs.result!
    const f = g.nodes.f!.outputs.result!
    expect([yield* waitSettled(r), yield* waitSettled(f)]).toEqual(["resolved", "failed"])
    return { r, f }
  }))

const taskRows = (graph: string) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ node: string; state: string; pending_inputs: number; error: { code?: string } | null }>(
      sql`SELECT node, state, pending_inputs, error FROM tasks WHERE graph_id = ${graph} ORDER BY node`
    ))

describe("cairn_submit", () => {
  it("refuses an external input purged after validation with a 400 naming its nodes, and writes nothing", async () => {
    const { r } = await settledInputs()
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      const p = yield* prepareGraph({
        nodes: {
          a: { task: "debug.sleep", params: { inputs: [{ $ref: r }] } },
          b: { task: "debug.sleep" }
        }
      })
      // The purge takes every settled graph, r's among them (nothing unsettled references r yet).
      const purged = yield* purgeGraphs({ olderThanSeconds: 0 })
      const refused = yield* Effect.flip(writeGraph(p.graph, p.plan))
      const written = yield* db.rows(sql`SELECT 1 FROM graphs WHERE id = ${p.graph.id}`)
      return { purged, refused, written }
    }))
    expect(out.purged.graphs).toBeGreaterThanOrEqual(1)
    expect(out.refused).toMatchObject({
      _tag: "InvalidRequest",
      message: "the graph is invalid: 1 node failed validation",
      details: { nodes: { a: [`input ${r} no longer exists (its graph was purged)`] } }
    })
    expect(out.written).toEqual([])
  })

  it("counts every input but a resolved external one, and settles at once what consumes a failed or canceled one", async () => {
    const { r, f } = await settledInputs()
    const out = await run(Effect.gen(function*() {
      // No worker: p stays pending, q is canceled at once.
      const g0 = yield* submitGraph({ nodes: { p: { task: "debug.sleep" }, q: { task: "debug.sleep" } } })
      yield* cancelTask(g0.nodes.q!.task)
      const p = g0.nodes.p!.outputs.result!
      const q = g0.nodes.q!.outputs.result!
      const g1 = yield* submitGraph({
        nodes: {
          a: { task: "debug.sleep", params: { inputs: [{ $ref: r }, { $ref: p }, { $ref: r }] } },
          b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }, { $ref: p }, { $ref: r }] } },
          c: { task: "debug.sleep", params: { inputs: [{ $ref: r }] } }
        }
      })
      const g2 = yield* submitGraph({
        nodes: {
          x: { task: "debug.sleep", params: { inputs: [{ $ref: r }, { $ref: f }] } },
          y: { task: "debug.sleep", params: { inputs: [{ $ref: "x.result" }] } },
          z: { task: "debug.sleep", params: { inputs: [{ $ref: q }] } }
        }
      })
      return { g1: yield* taskRows(g1.id), g2: yield* taskRows(g2.id) }
    }))
    expect(out.g1.map((t) => [t.node, t.state, t.pending_inputs])).toEqual([
      ["a", "blocked", 1],
      ["b", "blocked", 2],
      ["c", "ready", 0]
    ])
    expect(out.g2.map((t) => [t.node, t.state, t.error?.code])).toEqual([
      ["x", "failed", "upstream_failed"],
      ["y", "failed", "upstream_failed"],
      ["z", "canceled", "upstream_canceled"]
    ])
  })
})
