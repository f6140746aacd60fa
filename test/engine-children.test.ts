/**
 * Child tasks (src/engine/children.ts): a handler spawns graphs any worker takes and awaits their
 * futures, lending its slot meanwhile; a failed child fails the parent with its root cause; the
 * parent's end cancels its unsettled children; a retried parent cancels an earlier attempt's.
 */
import { sql } from "drizzle-orm"
import { Deferred, Duration, Effect, Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { TaskFailure } from "../src/engine/errors.js"
import { defineKind, noResources } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { cancelTask } from "../src/engine/cancel.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/** Doubles its number; fails (every attempt) when told to. */
const double = defineKind({
  name: "test.double",
  params: Schema.Struct({ n: Schema.Number, fail: Schema.optional(Schema.Boolean) }),
  outputs: { out: "value" },
  resources: noResources,
  handler: ({ fail, n }) => fail ? Effect.fail(new TaskFailure({ code: "odd_failure", message: `cannot double ${n}` })) : Effect.succeed({ out: 2 * n })
})

/** Runs until canceled (a test ends it by canceling). */
const forever = defineKind({
  name: "test.forever",
  params: Schema.Struct({}),
  outputs: { out: "value" },
  resources: noResources,
  handler: () => Effect.never
})

/** Spawns one `test.double` graph per number (the child failing where `fail` says) and sums the results. */
const sum = defineKind({
  name: "test.sum",
  params: Schema.Struct({ numbers: Schema.Array(Schema.Number), fail: Schema.optional(Schema.Number), retries: Schema.optional(Schema.Number) }),
  outputs: { out: "value" },
  resources: noResources,
  handler: ({ fail, numbers, retries }, ctx) =>
    Effect.gen(function*() {
      const futures: Array<string> = []
      for (const n of numbers) {
        const g = yield* ctx.spawn({
          nodes: { d: { task: "test.double", params: { n, fail: n === fail }, max_attempts: retries ?? 1 } }
        })
        futures.push(g.nodes.d!.outputs.out!)
      }
      const values = yield* ctx.awaitFutures(futures)
      return { out: values.reduce((a: number, v) => a + (v as number), 0) }
    })
})

/** Spawns a child that never ends, says so, and awaits it. */
const spawned = Effect.runSync(Deferred.make<string>())
const hang = defineKind({
  name: "test.hang",
  params: Schema.Struct({}),
  outputs: { out: "value" },
  resources: noResources,
  handler: (_, ctx) =>
    Effect.gen(function*() {
      const g = yield* ctx.spawn({ nodes: { f: { task: "test.forever" } } })
      yield* Deferred.succeed(spawned, g.nodes.f!.task)
      yield* ctx.awaitFutures([g.nodes.f!.outputs.out!])
      return { out: null }
    })
})

/**
 * Attempt 1 waits until the test has linked a child graph to it (as a worker killed -9 after its
 * spawn would have left it) and fails; attempt 2 spawns and awaits one child.
 */
const linked = Effect.runSync(Deferred.make<void>())
const retried = defineKind({
  name: "test.retried",
  params: Schema.Struct({}),
  outputs: { out: "value" },
  resources: noResources,
  handler: (_, ctx) =>
    Effect.gen(function*() {
      if (ctx.attempt === 1) {
        yield* Deferred.await(linked)
        return yield* new TaskFailure({ code: "try_again", message: "first attempt" })
      }
      const g = yield* ctx.spawn({ nodes: { d: { task: "test.double", params: { n: 21 } } } })
      // By now (the spawn returned) attempt 1's children are canceled, or asked to stop if running.
      const db = yield* Db
      const earlier = yield* db.rows<{ stopped: boolean }>(sql`
        SELECT t.state = 'canceled' OR t.cancel_requested AS stopped FROM graphs g JOIN tasks t ON t.graph_id = g.id
        WHERE g.parent_task = ${ctx.taskId} AND g.parent_attempt < ${ctx.attempt}`).pipe(Effect.orDie)
      const [v] = yield* ctx.awaitFutures([g.nodes.d!.outputs.out!])
      return { out: { value: v, earlierStopped: earlier.map((e) => e.stopped) } }
    })
})

const kinds = [...builtinKinds, double, forever, sum, hang, retried]
const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(eff).pipe(Effect.provide(engineLayer(url, {}, kinds))) as Effect.Effect<A, E, never>)

interface TaskRow {
  readonly state: string
  readonly error: { code: string; message: string } | null
}

/** The task's state and error once `done` holds (polled: the test waits for an event, not a clock). */
const taskWhen = (id: string, done: (t: TaskRow) => boolean, what: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const deadline = Date.now() + 60_000
    for (;;) {
      const [t] = yield* db.rows<TaskRow>(sql`SELECT state, error FROM tasks WHERE id = ${id}`)
      if (t && done(t)) return t
      if (Date.now() > deadline) throw new Error(`task ${id} never ${what}: ${JSON.stringify(t)}`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })
const settled = (t: TaskRow) => t.state === "succeeded" || t.state === "failed" || t.state === "canceled"

const valueOf = (future: string) =>
  Effect.flatMap(Db, (db) => Effect.map(db.rows<{ value: unknown }>(sql`SELECT value FROM futures WHERE id = ${future}`), (r) => r[0]?.value))

describe("child tasks", () => {
  it("runs a parent and its children on one slot: the waiting parent lends it", async () => {
    const { children, t, value } = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({ nodes: { s: { task: "test.sum", params: { numbers: [1, 2, 3, 4] } } } })
      const t = yield* taskWhen(g.nodes.s!.task, settled, "settled")
      const db = yield* Db
      const children = yield* db.rows<{ parent_task: string; parent_attempt: number; state: string }>(sql`
        SELECT g.parent_task, g.parent_attempt, t.state FROM graphs g JOIN tasks t ON t.graph_id = g.id
        WHERE g.parent_task IS NOT NULL`)
      return { children, t, value: yield* valueOf(g.nodes.s!.outputs.out!) }
    }))
    expect(t.state).toBe("succeeded")
    expect(value).toBe(20)
    expect(children).toHaveLength(4)
    expect(children.every((c) => c.state === "succeeded" && c.parent_attempt === 1)).toBe(true)
  })

  it("does not deadlock however many parents wait: five parents on one slot", async () => {
    const states = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const ids: Array<{ task: string; out: string }> = []
      for (let i = 0; i < 5; i++) {
        const g = yield* submitGraph({ nodes: { s: { task: "test.sum", params: { numbers: [i, 10] } } } })
        ids.push({ task: g.nodes.s!.task, out: g.nodes.s!.outputs.out! })
      }
      const out: Array<unknown> = []
      for (const { out: f, task } of ids) {
        yield* taskWhen(task, settled, "settled")
        out.push(yield* valueOf(f))
      }
      return out
    }))
    expect(states).toEqual([20, 22, 24, 26, 28])
  })

  it("fails the parent with a failed child's root cause, after the child's retries", async () => {
    const { child, parent } = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      const g = yield* submitGraph({ nodes: { s: { task: "test.sum", params: { numbers: [1, 7], fail: 7, retries: 2 } } } })
      const parent = yield* taskWhen(g.nodes.s!.task, settled, "settled")
      const db = yield* Db
      const [child] = yield* db.rows<{ state: string; attempts: number }>(sql`
        SELECT t.state, t.attempts FROM graphs g JOIN tasks t ON t.graph_id = g.id
        WHERE g.parent_task = ${g.nodes.s!.task} AND t.params->>'n' = '7'`)
      return { child, parent }
    }))
    expect(child).toEqual({ state: "failed", attempts: 2 })
    expect(parent.state).toBe("failed")
    expect(parent.error?.code).toBe("odd_failure")
    expect(parent.error?.message).toMatch(/cannot double 7/)
  })

  it("cancels the children of a canceled parent", async () => {
    const { child, parent } = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({ nodes: { h: { task: "test.hang" } } })
      const childTask = yield* Deferred.await(spawned)
      // The child runs (in the slot its parent lent) before the parent is canceled.
      yield* taskWhen(childTask, (t) => t.state === "running", "ran")
      yield* cancelTask(g.nodes.h!.task)
      const parent = yield* taskWhen(g.nodes.h!.task, settled, "settled")
      const child = yield* taskWhen(childTask, settled, "settled")
      return { child, parent }
    }))
    expect(parent.state).toBe("canceled")
    expect(child.state).toBe("canceled")
  })

  it("cancels an earlier attempt's children at a retried parent's first spawn", async () => {
    const { earlier, parent, value } = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      const g = yield* submitGraph({ nodes: { r: { task: "test.retried", max_attempts: 2 } } })
      const parentTask = g.nodes.r!.task
      yield* taskWhen(parentTask, (t) => t.state === "running", "ran")
      // What a worker killed after attempt 1's spawn leaves: a child graph linked to attempt 1,
      // its task running on (here: a second) worker.
      const orphan = yield* submitGraph({ nodes: { f: { task: "test.forever" } } })
      const db = yield* Db
      yield* db.rows(sql`UPDATE graphs SET parent_task = ${parentTask}, parent_attempt = 1 WHERE id = ${orphan.id}`)
      yield* taskWhen(orphan.nodes.f!.task, (t) => t.state === "running", "ran")
      yield* Deferred.succeed(linked, undefined)
      const parent = yield* taskWhen(parentTask, settled, "settled")
      const earlier = yield* taskWhen(orphan.nodes.f!.task, settled, "settled")
      return { earlier, parent, value: yield* valueOf(g.nodes.r!.outputs.out!) }
    }))
    expect(parent.state).toBe("succeeded")
    expect(value).toEqual({ value: 42, earlierStopped: [true] })
    expect(earlier.state).toBe("canceled")
  })

  it("fails the parent, writing nothing, when its child graph does not validate", async () => {
    const bad = defineKind({
      name: "test.bad-spawn",
      params: Schema.Struct({}),
      outputs: { out: "value" },
      resources: noResources,
      handler: (_, ctx) => Effect.as(ctx.spawn({ nodes: { x: { task: "no.such.kind" } } }), { out: null })
    })
    const { graphs, t } = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({ nodes: { b: { task: "test.bad-spawn" } } })
      const t = yield* taskWhen(g.nodes.b!.task, settled, "settled")
      const db = yield* Db
      const graphs = yield* db.rows(sql`SELECT id FROM graphs WHERE parent_task = ${g.nodes.b!.task}`)
      return { graphs, t }
    })).pipe(Effect.provide(engineLayer(url, {}, [...kinds, bad]))))
    expect(t.state).toBe("failed")
    expect(t.error?.code).toBe("bad_child_graph")
    expect(graphs).toHaveLength(0)
  })
})
