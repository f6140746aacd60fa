/**
 * Retry backoff (DESIGN.md §4 "Retries"): a task that fails with attempts left and a
 * `retry_backoff_ms` waits, still `ready` and in its place on its keys, until its retry time, and
 * is then woken by the timer of the worker that settled it (or reaped its worker), not by a poll:
 * these tests run with a safety-net poll of a minute and wait far less than that. Times are the
 * database's (clock_timestamp() in the handler, the rows' timestamps).
 */
import { sql } from "drizzle-orm"
import { Duration, Effect, Layer, Logger, LogLevel, Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db, txRows } from "../src/db/client.js"
import { cancelTask } from "../src/engine/cancel.js"
import { TaskFailure } from "../src/engine/errors.js"
import { defineKind, noResources, VALUE } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { getTask, type TaskView } from "../src/engine/views.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/** Per task: each attempt's start (the row's started_at) and, for a failed one, when it failed (ms since the epoch, database clock). */
const seen = new Map<string, Array<{ attempt: number; started: number; failed?: number }>>()

/** Fails its first `fails` attempts, recording when each attempt started and failed. */
const flaky = defineKind({
  name: "test.flaky",
  params: Schema.Struct({ fails: Schema.Int }),
  outputs: { result: VALUE },
  resources: noResources,
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const db = yield* Db
      const [row] = yield* db.rows<{ started: number; now: number }>(sql`
        SELECT extract(epoch FROM started_at) * 1000 AS started, extract(epoch FROM clock_timestamp()) * 1000 AS now
        FROM tasks WHERE id = ${ctx.taskId}`).pipe(Effect.orDie)
      const mine = seen.get(ctx.taskId) ?? seen.set(ctx.taskId, []).get(ctx.taskId)!
      if (ctx.attempt > p.fails) {
        mine.push({ attempt: ctx.attempt, started: Number(row!.started) })
        return { result: ctx.attempt }
      }
      mine.push({ attempt: ctx.attempt, started: Number(row!.started), failed: Number(row!.now) })
      return yield* new TaskFailure({ code: "task_failed", message: `attempt ${ctx.attempt} fails` })
    })
})

/** A safety-net poll far longer than any wait below: only the retry timer can wake a retry in time. */
const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    Effect.scoped(eff).pipe(
      Effect.provide(Layer.merge(
        engineLayer(url, { pollInterval: Duration.minutes(1) }, [...builtinKinds, flaky]),
        Logger.minimumLogLevel(LogLevel.Error)
      ))
    ) as Effect.Effect<A, E, never>
  )

/** Polls the task's view (every 20 ms) until `done` holds; fails after 30 s (half the poll interval). */
const waitForTask = (id: string, done: (t: TaskView) => boolean, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 30_000
    for (;;) {
      const t = yield* getTask(id)
      if (t && done(t)) return t
      if (Date.now() > deadline) return yield* Effect.dieMessage(`task ${id} never became ${what}: ${JSON.stringify(t)}`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })

const settled = (t: TaskView) => t.state === "succeeded" || t.state === "failed" || t.state === "canceled"

describe("retry backoff", () => {
  it("waits at least the backoff before the first retry and twice that before the second, woken by the timer", async () => {
    const out = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 2 })
      const g = yield* submitGraph({
        nodes: { a: { task: "test.flaky", params: { fails: 2 }, max_attempts: 3, retry_backoff_ms: 400 } }
      })
      const id = g.nodes.a!.task
      const t = yield* waitForTask(id, settled, "settled")
      return { t, attempts: seen.get(id)! }
    }))
    expect(out.t.state).toBe("succeeded")
    expect(out.attempts.map((a) => a.attempt)).toEqual([1, 2, 3])
    const [first, second, third] = out.attempts as [typeof out.attempts[0], typeof out.attempts[0], typeof out.attempts[0]]
    expect(second.started - first.failed!).toBeGreaterThanOrEqual(400)
    expect(third.started - second.failed!).toBeGreaterThanOrEqual(800)
  })

  it("keeps the task's place on its keys but not its worker slot while it waits, says so in waiting_on, and a cancel settles it at once", async () => {
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      // One slot: the unrelated task below can only run if the waiting retry does not hold it.
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({
        nodes: {
          first: { task: "test.flaky", params: { fails: 5 }, max_attempts: 3, retry_backoff_ms: 60_000, resources: { exclusive: ["retry:k"] } },
          // A later task on the same key, of higher priority: it must still wait behind `first`.
          later: { task: "debug.sleep", params: {}, priority: 10, resources: { exclusive: ["retry:k"] } },
          // Unrelated, submitted after `first` at the same priority: it runs in the slot `first` left.
          other: { task: "debug.sleep", params: {} }
        }
      })
      const first = g.nodes.first!.task
      const later = g.nodes.later!.task
      const waiting = yield* waitForTask(first, (t) => t.waiting_on.some((w) => w.reason === "retry"), "waiting for its retry")
      const otherDone = yield* waitForTask(g.nodes.other!.task, settled, "settled")
      const firstAfterOther = yield* getTask(first)
      const [clock] = yield* db.rows<{ now: number }>(sql`SELECT extract(epoch FROM clock_timestamp()) * 1000 AS now`)
      const laterWhileWaiting = yield* getTask(later)
      yield* cancelTask(first)
      const canceled = yield* getTask(first)
      const laterDone = yield* waitForTask(later, settled, "settled")
      return {
        first, waiting, now: Number(clock!.now), otherDone, firstAfterOther: firstAfterOther!,
        laterWhileWaiting: laterWhileWaiting!, canceled: canceled!, laterDone, attempts: seen.get(first)!
      }
    }))
    // Waiting: ready, but claimable only at retry_at, a minute (plus up to a quarter) after the failure.
    expect(out.waiting.state).toBe("ready")
    expect(out.waiting.attempts).toBe(1)
    expect(out.waiting.error).toMatchObject({ code: "task_failed", retrying: true })
    const retry = out.waiting.waiting_on.find((w) => w.reason === "retry")!
    expect(retry.task).toBe(out.first)
    const retryAt = Date.parse(retry.retry_at!)
    expect(retryAt - out.attempts[0]!.failed!).toBeGreaterThanOrEqual(60_000)
    expect(retryAt - out.now).toBeLessThanOrEqual(75_000)
    // The only slot ran the unrelated task while `first` kept waiting for its retry.
    expect(out.otherDone.state).toBe("succeeded")
    expect(Date.parse(out.otherDone.started_at!)).toBeGreaterThanOrEqual(Math.floor(out.attempts[0]!.failed!))
    expect(out.firstAfterOther.state).toBe("ready")
    expect(out.firstAfterOther.waiting_on.map((w) => w.reason)).toEqual(["retry"])
    // The later task on its key stays blocked behind it, its higher priority notwithstanding.
    expect(out.laterWhileWaiting.state).toBe("blocked")
    expect(out.laterWhileWaiting.waiting_on).toEqual([{ task: out.first, reason: "resource", key: "retry:k" }])
    // The cancel settled it at once, without another attempt, and released the key.
    expect(out.canceled.state).toBe("canceled")
    expect(out.canceled.attempts).toBe(1)
    expect(out.canceled.waiting_on).toEqual([])
    expect(out.attempts.map((a) => a.attempt)).toEqual([1])
    expect(out.laterDone.state).toBe("succeeded")
  })

  it("makes a task whose worker was lost wait for its retry too, and the reaping worker wakes it", async () => {
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      // Two tasks left running by workers whose rows are gone (as a crashed worker leaves them),
      // started long enough ago for the reaper to take them (half the stale interval).
      const g = yield* submitGraph({
        nodes: {
          direct: { task: "debug.sleep", params: {}, max_attempts: 2, retry_backoff_ms: 30_000 },
          reaped: { task: "debug.sleep", params: {}, max_attempts: 2, retry_backoff_ms: 700 }
        }
      })
      const orphan = (task: string, worker: string) =>
        db.rows(sql`UPDATE tasks SET state = 'running', worker_id = ${worker}, attempts = 1, started_at = now() - interval '1 minute'
                    WHERE id = ${task}`)
      // 1. cairn_reap itself: the wait is set from the reap's own clock, in the reap's transaction.
      yield* orphan(g.nodes.direct!.task, "ghost-direct")
      const direct = yield* db.transaction((tx) =>
        Effect.gen(function*() {
          const [r] = yield* txRows<{ r: { retry_in_ms?: number; ready: number } }>(tx, sql`SELECT cairn_reap('nobody', interval '10 seconds') AS r`)
          const [row] = yield* txRows<{ wait: number; state: string }>(
            tx,
            sql`SELECT extract(epoch FROM run_after - now()) * 1000 AS wait, state FROM tasks WHERE id = ${g.nodes.direct!.task}`
          )
          return { result: r!.r, wait: Number(row!.wait), state: row!.state }
        })
      )
      const directView = yield* getTask(g.nodes.direct!.task)
      // 2. A worker's reaper: its timer wakes the retry, long before the safety-net poll.
      yield* orphan(g.nodes.reaped!.task, "ghost-reaped")
      yield* runWorker({ slots: 1 })
      const reaped = yield* waitForTask(g.nodes.reaped!.task, settled, "settled")
      const [times] = yield* db.rows<{ gap: number }>(sql`SELECT extract(epoch FROM started_at - ready_at) * 1000 AS gap FROM tasks WHERE id = ${g.nodes.reaped!.task}`)
      return { direct, directView: directView!, reaped, gap: Number(times!.gap) }
    }))
    expect(out.direct.state).toBe("ready")
    expect(out.direct.result.ready).toBe(0) // nothing claimable yet: no wake-up for it
    expect(out.direct.wait).toBeGreaterThanOrEqual(30_000)
    expect(out.direct.wait).toBeLessThanOrEqual(37_500)
    expect(out.direct.result.retry_in_ms).toBeGreaterThanOrEqual(30_000)
    expect(out.directView.error).toMatchObject({ code: "worker_lost", retrying: true })
    expect(out.directView.waiting_on.map((w) => w.reason)).toEqual(["retry"])
    // ready_at is when the wait ended; the retry did not start before it.
    expect(out.reaped.state).toBe("succeeded")
    expect(out.reaped.attempts).toBe(2)
    expect(out.gap).toBeGreaterThanOrEqual(0)
  })
})
