/**
 * No head-of-line blocking: a long task holding key A exclusively delays only what conflicts with
 * it. Tasks submitted after it on key B, and tasks with no key, start and finish while it still
 * runs; a task queued behind it on A waits. The long task waits on a gate that the test opens only
 * once the later tasks have finished, so the test orders events, not clocks: an engine that ran
 * one task at a time (or let a busy key hold up the ready queue) never finishes them, and the test
 * fails naming what stayed unsettled.
 */
import { sql } from "drizzle-orm"
import { Deferred, Effect, Layer, Logger, LogLevel, Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { defineKind, noResources } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/** Opened by the test once the tasks behind it have finished. */
const gate = Effect.runSync(Deferred.make<void>())

/** Runs until the gate opens. */
const gated = defineKind({
  name: "test.gated",
  params: Schema.Struct({}),
  outputs: { result: "value" },
  resources: noResources,
  handler: () => Effect.as(Deferred.await(gate), { result: "released" })
})

interface Row {
  readonly node: string
  readonly state: string
  /** Microseconds since the epoch, from the database's clock (null: never started / not finished). */
  readonly started: bigint | null
  readonly finished: bigint | null
}

const rowsOf = (graphIds: ReadonlyArray<string>) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ node: string; state: string; started: string | null; finished: string | null }>(sql`
      SELECT node, state,
             (extract(epoch FROM started_at) * 1000000)::bigint::text AS started,
             (extract(epoch FROM finished_at) * 1000000)::bigint::text AS finished
      FROM tasks WHERE graph_id = ANY(${sql.param([...graphIds])}::text[])`)
  ).pipe(Effect.map((rows) =>
    new Map(rows.map((r): [string, Row] => [r.node, {
      node: r.node,
      state: r.state,
      started: r.started === null ? null : BigInt(r.started),
      finished: r.finished === null ? null : BigInt(r.finished)
    }]))
  ))

/** Poll the rows until `done` holds; fail after `timeoutMs` with the rows as they are. */
const waitFor = (what: string, graphIds: ReadonlyArray<string>, done: (rows: Map<string, Row>) => boolean, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const rows = yield* rowsOf(graphIds)
      if (done(rows)) return rows
      if (Date.now() > deadline) {
        const state = [...rows.values()].map((r) => `${r.node}=${r.state}`).sort().join(", ")
        return yield* Effect.dieMessage(`timed out after ${timeoutMs} ms waiting for ${what}; tasks: ${state}`)
      }
      yield* Effect.sleep("20 millis")
    }
  })

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    Effect.scoped(eff).pipe(
      Effect.provide(Layer.merge(engineLayer(url, {}, [...builtinKinds, gated]), Logger.minimumLogLevel(LogLevel.Warning)))
    ) as Effect.Effect<A, E, never>
  )

describe("head-of-line blocking", () => {
  it("later tasks on another key and without keys run to completion while a long task holds key A", async () => {
    const later = ["b1", "b2", "b3", "free1", "free2", "free3"]
    const { rows, whileHeld } = await run(Effect.gen(function*() {
      // Two workers of two slots: four tasks can run at once, so only the engine's ordering can
      // make a later task wait.
      yield* runWorker({ slots: 2, name: "hol-w0" })
      yield* runWorker({ slots: 2, name: "hol-w1" })
      const first = yield* submitGraph({
        label: "holder",
        nodes: {
          a: { task: "test.gated", resources: { exclusive: ["hol:A"] } },
          // Behind `a` on A: must wait for it (shows the keys are enforced at all).
          a2: { task: "debug.sleep", params: { value: "a2" }, resources: { exclusive: ["hol:A"] } }
        }
      })
      yield* waitFor("a to run", [first.id], (r) => r.get("a")?.state === "running", 60_000)
      const second = yield* submitGraph({
        label: "later",
        nodes: {
          b1: { task: "debug.sleep", params: { ms: 20, value: "b1" }, resources: { exclusive: ["hol:B"] } },
          b2: { task: "debug.sleep", params: { ms: 20, value: "b2" }, resources: { exclusive: ["hol:B"] } },
          b3: { task: "debug.sleep", params: { ms: 20, value: "b3" }, resources: { shared: ["hol:B"] } },
          free1: { task: "debug.sleep", params: { ms: 20, value: "free1" } },
          free2: { task: "debug.sleep", params: { ms: 20, value: "free2" } },
          free3: { task: "debug.sleep", params: { ms: 20, value: "free3" } }
        }
      })
      const graphs = [first.id, second.id]
      // The event the gate waits for: every later task settled. If they cannot run while `a`
      // does, this never happens; the bound only turns that into a failure with the rows in it.
      const whileHeld = yield* waitFor(
        "the later tasks to settle while a runs",
        graphs,
        (r) => later.every((n) => ["succeeded", "failed", "canceled"].includes(r.get(n)?.state ?? "")),
        60_000
      ).pipe(Effect.ensuring(Deferred.succeed(gate, undefined)))
      const rows = yield* waitFor("every task to settle", graphs, (r) => [...r.values()].every((t) => t.state === "succeeded"), 60_000)
      return { rows, whileHeld }
    }))

    // At the moment the later tasks had all finished, `a` was still running and `a2` still waited.
    expect(whileHeld.get("a")!.state).toBe("running")
    expect(whileHeld.get("a2")!.state).toBe("blocked")
    for (const n of later) expect(whileHeld.get(n)!.state, n).toBe("succeeded")

    // The same from the timestamps: each later task ran inside a's run; a2 only after it.
    const a = rows.get("a")!
    for (const n of later) {
      const t = rows.get(n)!
      expect(t.started! >= a.started!, `${n} started after a`).toBe(true)
      expect(t.finished! < a.finished!, `${n} finished before a`).toBe(true)
    }
    expect(rows.get("a2")!.started! >= a.finished!).toBe(true)
    // Key B is still ordered: b1, then b2, then b3 (shared after an exclusive holder).
    expect(rows.get("b2")!.started! >= rows.get("b1")!.finished!).toBe(true)
    expect(rows.get("b3")!.started! >= rows.get("b2")!.finished!).toBe(true)
  })
})
