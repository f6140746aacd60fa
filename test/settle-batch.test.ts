/**
 * Batched settles (cairn_settle_batch through queries/settle.ts `settleBatch`, what a worker's
 * completer sends) against a model, at the SQL level on real connections: random graphs (chains
 * and fan-ins, tasks with several attempts) are claimed by two registered workers, and every round
 * settles what is running in random batches sent at once from both workers on separate pooled
 * connections, with the true settle of a task sometimes sent twice (in one batch or in two), and
 * stale copies (an earlier attempt, the other worker) mixed in. Checked after every round against
 * a sequential model of the engine:
 *   - exactly one copy of each true settle reports a change, and it is applied once; every stale
 *     copy reports nothing and changes nothing (fencing by task, worker and attempt);
 *   - the tasks claimed in the batches' statements were ready in the model, none is claimed twice
 *     or by two batches, each batch claims at most the refills of the settles that matched, and
 *     each claimed task is running under its claimer at the next attempt;
 *   - every task's row (state, attempts, worker) and every future's state agree with the model.
 */
import { sql } from "drizzle-orm"
import { Effect, ManagedRuntime } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { claim } from "../src/engine/queries/claim.js"
import { type BatchSettle, settleBatch } from "../src/engine/queries/settle.js"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

type State = "blocked" | "ready" | "running" | "succeeded" | "failed"
interface ModelTask {
  readonly id: string
  readonly inputs: ReadonlyArray<string>
  readonly maxAttempts: number
  state: State
  attempts: number
  worker: string | undefined
}

/** One copy of a settle in a round: which batch it goes in, and what it says. */
interface Copy {
  readonly worker: string
  readonly settle: BatchSettle
  /** The true settle of the task's running attempt (else a stale copy). */
  readonly genuine: boolean
}

const graphArb = fc.array(
  fc.record({
    // Inputs among earlier nodes (a DAG), at most two.
    inputs: fc.uniqueArray(fc.nat(20), { maxLength: 2 }),
    maxAttempts: fc.integer({ min: 1, max: 3 })
  }),
  { minLength: 2, maxLength: 9 }
)

/** The random choices of the rounds, read cyclically. */
const choicesArb = fc.array(
  fc.record({
    fail: fc.boolean(),
    refill: fc.integer({ min: 0, max: 2 }),
    copies: fc.constantFrom(0, 0, 0, 1, 2),
    stale: fc.constantFrom("none", "none", "attempt", "worker"),
    split: fc.boolean(),
    claimFirst: fc.integer({ min: 1, max: 3 })
  }),
  { minLength: 8, maxLength: 30 }
)

const W = ["wa-batch", "wb-batch"] as const

describe("batched settles", () => {
  it("apply each settle exactly once, fence stale ones, and claim each freed slot's task once, as the model says", { timeout: 300_000 }, async () => {
    const runtime = ManagedRuntime.make(engineLayer(url, {}, builtinKinds))
    const run = <A, E, R>(eff: Effect.Effect<A, E, R>) => runtime.runPromise(eff as Effect.Effect<A, E, never>)
    const exec = (q: ReturnType<typeof sql>) => run(Effect.flatMap(Db, (db) => db.rows(q)))
    let seen = { twice: 0, stale: 0, claimedInBatch: 0, retried: 0, cascaded: 0 }
    try {
      await fc.assert(
        fc.asyncProperty(graphArb, choicesArb, async (graph, choices) => {
          // A clean table per run: the claims must see only this run's tasks.
          await exec(sql`UPDATE tasks SET state = 'canceled', finished_at = now() WHERE state IN ('blocked', 'ready', 'running')`)
          await exec(sql`DELETE FROM workers`)
          for (const w of W) {
            await exec(sql`INSERT INTO workers (id, name, host, pid, slots, backend_pid) VALUES (${w}, ${w}, 'test', 1, 100, pg_backend_pid())`)
          }
          const nodes: Record<string, unknown> = {}
          graph.forEach((n, i) => {
            const ins = [...new Set(n.inputs.filter((j) => j < i))]
            nodes[`n${i}`] = {
              task: "debug.sleep",
              max_attempts: n.maxAttempts,
              params: { value: ins.map((j) => ({ $ref: `n${j}.result` })) }
            }
          })
          const submitted = await run(submitGraph({ nodes } as never).pipe(Effect.orDie))
          const model = new Map<string, ModelTask>()
          graph.forEach((n, i) => {
            const ins = [...new Set(n.inputs.filter((j) => j < i))].map((j) => submitted.nodes[`n${j}`]!.task)
            const id = submitted.nodes[`n${i}`]!.task
            model.set(id, { id, inputs: ins, maxAttempts: n.maxAttempts, state: ins.length ? "blocked" : "ready", attempts: 0, worker: undefined })
          })
          const producerOf = new Map(Object.values(submitted.nodes).map((n) => [n.outputs.result!, n.task]))

          /** Sequential model: what settling `t` does (success, or failure with or without attempts left). */
          const applyModel = (t: ModelTask, fail: boolean) => {
            // A settled task keeps the worker that ran it; a retry goes back to the queue without one.
            if (!fail) {
              t.state = "succeeded"
            } else if (t.attempts < t.maxAttempts) {
              t.state = "ready"
              t.worker = undefined
              seen.retried++
              return
            } else {
              t.state = "failed"
            }
            // Propagation and release to a fixpoint.
            for (let changed = true; changed;) {
              changed = false
              for (const d of model.values()) {
                if (d.state !== "blocked") continue
                const ins = d.inputs.map((i) => model.get(i)!.state)
                if (ins.some((s) => s === "failed")) {
                  d.state = "failed"
                  changed = true
                  seen.cascaded++
                } else if (ins.every((s) => s === "succeeded")) {
                  d.state = "ready"
                  changed = true
                }
              }
            }
          }
          /** A claimed task: it was ready, nobody runs it, it runs now under `w` at the next attempt. */
          const claimedBy = (w: string, c: { id: string; attempts: number }) => {
            const t = model.get(c.id)
            expect(t, `claimed a task of another run: ${c.id}`).toBeDefined()
            expect(t!.state, `claimed ${c.id} in model state ${t!.state}`).toBe("ready")
            expect(c.attempts).toBe(t!.attempts + 1)
            t!.state = "running"
            t!.attempts = c.attempts
            t!.worker = w
          }

          let k = 0
          const next = () => choices[k++ % choices.length]!
          for (let round = 0; round < 60 && [...model.values()].some((t) => t.state !== "succeeded" && t.state !== "failed"); round++) {
            // Plain claims fill some slots.
            for (const w of W) {
              for (const c of await run(Effect.flatMap(Db, (db) => claim(db.db, w, next().claimFirst)))) claimedBy(w, c)
            }
            const running = [...model.values()].filter((t) => t.state === "running")
            const copies: Array<Copy> = []
            const outcome = new Map<string, boolean>()
            for (const t of running) {
              const c = next()
              outcome.set(t.id, c.fail)
              const base = c.fail
                ? { task: t.id, attempt: t.attempts, refill: c.refill, how: "failed" as const, code: "boom", message: "boom" }
                : { task: t.id, attempt: t.attempts, refill: c.refill, values: { result: t.id } }
              copies.push({ worker: t.worker!, settle: base, genuine: true })
              for (let i = 0; i < c.copies; i++) {
                // A second copy of the true settle: in the same batch, or sent by the other worker's batch too (fenced there).
                copies.push({ worker: t.worker!, settle: base, genuine: true })
              }
              if (c.stale === "attempt" && t.attempts > 1) copies.push({ worker: t.worker!, settle: { ...base, attempt: t.attempts - 1 }, genuine: false })
              if (c.stale === "worker") copies.push({ worker: W.find((w) => w !== t.worker)!, settle: base, genuine: false })
            }
            // Each worker's copies in one or two batches, all sent at once (shuffled by the choices).
            const batches: Array<{ worker: string; settles: Array<Copy> }> = []
            for (const w of W) {
              const mine = copies.filter((c) => c.worker === w)
              if (mine.length === 0) continue
              if (next().split && mine.length > 1) {
                const cut = 1 + (k % (mine.length - 1))
                batches.push({ worker: w, settles: mine.slice(0, cut) }, { worker: w, settles: mine.slice(cut) })
              } else {
                batches.push({ worker: w, settles: mine })
              }
            }
            const results = await run(Effect.all(
              batches.map((b) => Effect.flatMap(Db, (db) => settleBatch(db.db, b.worker, b.settles.map((c) => c.settle)))),
              { concurrency: "unbounded" }
            ))
            // Fencing and exactly-once.
            const applied = new Map<string, number>()
            batches.forEach((b, i) => {
              let refills = 0
              b.settles.forEach((c, j) => {
                const changed = results[i]!.changes[j] !== undefined
                if (!c.genuine) {
                  expect(changed, `a stale settle of ${c.settle.task} reported a change`).toBe(false)
                  seen.stale++
                }
                if (changed) {
                  applied.set(c.settle.task, (applied.get(c.settle.task) ?? 0) + 1)
                  refills += c.settle.refill
                }
              })
              expect(results[i]!.claimed.length).toBeLessThanOrEqual(refills)
            })
            for (const t of running) {
              expect(applied.get(t.id), `settles of ${t.id} that reported a change`).toBe(1)
              if (copies.filter((c) => c.genuine && c.settle.task === t.id).length > 1) seen.twice++
              applyModel(t, outcome.get(t.id)!)
            }
            // Claims made in the settle statements, after all of this round's settles in the model.
            const ids = results.flatMap((r) => r.claimed.map((c) => c.id))
            expect(new Set(ids).size, "a task claimed twice").toBe(ids.length)
            batches.forEach((b, i) => {
              for (const c of results[i]!.claimed) {
                claimedBy(b.worker, c)
                seen.claimedInBatch++
              }
            })
            // The rows agree with the model.
            const rows = await exec(sql`SELECT id, state, attempts, worker_id FROM tasks WHERE id IN ${[...model.keys()]}`) as Array<{ id: string; state: string; attempts: number; worker_id: string | null }>
            for (const r of rows) {
              const t = model.get(r.id)!
              expect({ id: r.id, state: r.state, attempts: r.attempts, worker: r.worker_id ?? undefined }).toEqual({ id: t.id, state: t.state, attempts: t.attempts, worker: t.worker })
            }
            const futures = await exec(sql`SELECT id, state FROM futures WHERE producer_task IN ${[...model.keys()]}`) as Array<{ id: string; state: string }>
            for (const f of futures) {
              const s = model.get(producerOf.get(f.id)!)!.state
              expect(f.state).toBe(s === "succeeded" ? "resolved" : s === "failed" ? "failed" : "pending")
            }
          }
          for (const t of model.values()) expect(["succeeded", "failed"]).toContain(t.state)
        }),
        { numRuns: 40 }
      )
      // The runs reached every case they are meant to check.
      expect(seen.twice).toBeGreaterThan(0)
      expect(seen.stale).toBeGreaterThan(0)
      expect(seen.claimedInBatch).toBeGreaterThan(0)
      expect(seen.retried).toBeGreaterThan(0)
      expect(seen.cascaded).toBeGreaterThan(0)
    } finally {
      await runtime.dispose()
    }
  })
})
