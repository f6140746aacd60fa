import { type SQL, sql } from "drizzle-orm"
import { Duration, Effect } from "effect"
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

  it("settles the whole downstream cone of a failure in a 10,000-node graph in one transaction", async () => {
    const out = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      // A random DAG: every node takes input from one or two earlier nodes; node 0 fails.
      let seed = 42
      const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n)
      const nodes: Record<string, unknown> = { n0: { task: "debug.sleep", params: { ms: 200, fail: "root cause" } } }
      for (let i = 1; i < 10_000; i++) {
        const deps = [...new Set([rand(i), rand(i)])].map((d) => ({ $ref: `n${d}.result` }))
        nodes[`n${i}`] = { task: "debug.sleep", params: { inputs: deps } }
      }
      const g = yield* submitGraph({ nodes })
      const db = yield* Db
      const deadline = Date.now() + 60_000
      for (;;) {
        const [r] = yield* db.rows<{ open: number }>(
          sql`SELECT count(*)::int AS open FROM tasks WHERE graph_id = ${g.id} AND state IN ('blocked', 'ready', 'running')`
        )
        if (r!.open === 0) break
        if (Date.now() > deadline) throw new Error(`${r!.open} tasks still open`)
        yield* Effect.sleep(Duration.millis(50))
      }
      const rows = yield* db.rows<{ node: string; state: string; code: string; cause_task: string; finished_at: string }>(
        sql`SELECT node, state, error->>'code' AS code, error->>'cause_task' AS cause_task, finished_at FROM tasks WHERE graph_id = ${g.id}`
      )
      return { g, rows }
    }))
    const root = out.rows.find((r) => r.node === "n0")!
    const cone = out.rows.filter((r) => r.node !== "n0")
    expect(root).toMatchObject({ state: "failed", code: "task_failed" })
    // Every other node descends from n0 (node i depends on a node < i), so all of them failed...
    expect(cone.every((r) => r.state === "failed" && r.code === "upstream_failed")).toBe(true)
    expect(new Set(cone.map((r) => r.cause_task))).toEqual(new Set([out.g.nodes.n0!.task]))
    // ...in the root's settle transaction (now() is the transaction's timestamp).
    expect(new Set(cone.map((r) => r.finished_at)).size).toBe(1)
    expect(cone[0]!.finished_at).toBe(root.finished_at)
  })

  it("analyzes the engine's tables when a graph is large next to what the planner knows of", async () => {
    const fresh = await createTestDatabase()
    const known = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const db = yield* Db
      const reltuples = () =>
        Effect.map(
          db.rows<{ tasks: number; futures: number }>(sql`
            SELECT (SELECT reltuples FROM pg_class WHERE oid = 'tasks'::regclass)::int AS tasks,
                   (SELECT reltuples FROM pg_class WHERE oid = 'futures'::regclass)::int AS futures`),
          (rows) => rows[0]!
        )
      const graph = (n: number) => {
        const nodes: Record<string, unknown> = {}
        for (let i = 0; i < n; i++) nodes[`n${i}`] = { task: "debug.sleep", params: i === 0 ? {} : { inputs: [{ $ref: `n${i - 1}.result` }] } }
        return submitGraph({ nodes })
      }
      const start = yield* reltuples()
      yield* graph(20) // small: nothing to do
      const afterSmall = yield* reltuples()
      yield* graph(150) // never analyzed: analyze, counting the submission's own rows
      const afterLarge = yield* reltuples()
      yield* graph(20) // small again
      const afterSmallAgain = yield* reltuples()
      yield* graph(100) // 100 >= a fifth of the 170 known: analyze
      const afterGrowth = yield* reltuples()
      return { start, afterSmall, afterLarge, afterSmallAgain, afterGrowth }
    })).pipe(Effect.provide(engineLayer(fresh))) as Effect.Effect<any, never, never>)
    expect(known.afterSmall).toEqual(known.start)
    expect(known.afterLarge).toEqual({ tasks: 170, futures: 170 })
    expect(known.afterSmallAgain).toEqual({ tasks: 170, futures: 170 })
    expect(known.afterGrowth).toEqual({ tasks: 290, futures: 290 })
  })

  it("reaps a task left running under a worker row that no longer exists, once it is older than half the stale interval", async () => {
    const states = await run(Effect.gen(function*() {
      const db = yield* Db
      // No worker runs: the tasks stay ready until they are made orphans by hand.
      const g = yield* submitGraph({
        nodes: {
          old: { task: "debug.sleep", params: {}, max_attempts: 2 },
          fresh: { task: "debug.sleep", params: {}, max_attempts: 2 }
        }
      })
      // Half the stale interval is five minutes: a slow machine between these statements cannot make
      // the fresh one old enough.
      yield* db.rows(sql`UPDATE tasks SET state = 'running', worker_id = 'ghost-1', attempts = 1, started_at = now() - interval '1 hour'
                         WHERE id = ${g.nodes.old!.task}`)
      yield* db.rows(sql`UPDATE tasks SET state = 'running', worker_id = 'ghost-2', attempts = 1, started_at = now()
                         WHERE id = ${g.nodes.fresh!.task}`)
      const [reaped] = yield* db.rows<{ r: { dead: Array<string> } | null }>(sql`SELECT cairn_reap('nobody', interval '10 minutes') AS r`)
      const rows = yield* db.rows<{ node: string; state: string; code: string | null }>(
        sql`SELECT node, state, error->>'code' AS code FROM tasks WHERE graph_id = ${g.id} ORDER BY node`
      )
      return { dead: reaped!.r?.dead, rows }
    }))
    expect(states.dead).toEqual(["ghost-1"])
    expect(states.rows).toEqual([
      { node: "fresh", state: "running", code: null },
      { node: "old", state: "ready", code: "worker_lost" }
    ])
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

  it("the guards refuse every change but settling, and deleting unsettled work or what history still references", async () => {
    const refusals = await run(Effect.gen(function*() {
      const db = yield* Db
      const refusal = (q: SQL) => db.rows(q).pipe(Effect.flip, Effect.map((e) => e.message))
      // No worker yet: b stays blocked on a, and both futures stay pending.
      const g = yield* submitGraph({
        nodes: {
          a: { task: "debug.sleep", params: { value: 1 } },
          b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }] } }
        }
      })
      const a = g.nodes.a!
      const b = g.nodes.b!
      const pending = {
        futureValue: yield* refusal(sql`UPDATE futures SET value = '2' WHERE id = ${a.outputs.result}`),
        futureIdentity: yield* refusal(sql`UPDATE futures SET state = 'resolved', settled_at = now(), output = 'x' WHERE id = ${a.outputs.result}`),
        futureDelete: yield* refusal(sql`DELETE FROM futures WHERE id = ${b.outputs.result}`),
        taskParams: yield* refusal(sql`UPDATE tasks SET params = '{}' WHERE id = ${b.task}`),
        taskNode: yield* refusal(sql`UPDATE tasks SET node = 'x' WHERE id = ${b.task}`),
        taskDelete: yield* refusal(sql`DELETE FROM tasks WHERE id = ${b.task}`)
      }
      yield* runWorker({ slots: 1 })
      yield* waitSettled(b.outputs.result!)
      const settled = {
        taskError: yield* refusal(sql`UPDATE tasks SET error = '{}' WHERE id = ${a.task}`),
        futureState: yield* refusal(sql`UPDATE futures SET state = 'failed' WHERE id = ${a.outputs.result}`),
        // Settled, but b's input edge (history) references a's future, and a's future its task.
        settledFutureDelete: yield* refusal(sql`DELETE FROM futures WHERE id = ${a.outputs.result}`),
        settledTaskDelete: yield* refusal(sql`DELETE FROM tasks WHERE id = ${a.task}`)
      }
      return { ...pending, ...settled }
    }))
    expect(refusals.futureValue).toMatch(/is pending: it may change only by settling/)
    expect(refusals.futureIdentity).toMatch(/only its settlement may be written/)
    expect(refusals.futureDelete).toMatch(/is pending: only a settled future may be deleted/)
    expect(refusals.taskParams).toMatch(/identity and params are immutable/)
    expect(refusals.taskNode).toMatch(/identity and params are immutable/)
    expect(refusals.taskDelete).toMatch(/is blocked: only a settled task may be deleted/)
    expect(refusals.settledFutureDelete).toMatch(/violates foreign key constraint .* on table "task_inputs"/)
    expect(refusals.settledTaskDelete).toMatch(/violates foreign key constraint .* on table "futures"/)
    expect(refusals.taskError).toMatch(/already succeeded: a settled task is immutable/)
    expect(refusals.futureState).toMatch(/already resolved: a settled future is immutable/)
  })
})
