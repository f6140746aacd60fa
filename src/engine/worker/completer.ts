/**
 * Settling a finished attempt: the handler's exit and why it was stopped (if it was) decide the
 * outcome (`outcomeOf`, pure), and one engine function records it (queries/settle.ts):
 *
 *   success           cairn_resolve with the output values; a `Commit` result writes its payload
 *                     rows and resolves in one transaction, which takes the task's resource keys
 *                     before any row (keys before rows, the engine's lock order) and rolls back,
 *                     payload and all, if the task is no longer ours;
 *   failure           cairn_fail 'failed' with the handler's code (`task_crashed` for a defect);
 *   interrupted       by a cancel request (or by itself): cairn_fail 'canceled'; by the drain:
 *                     cairn_release (ready again, attempt not spent); by a lost generation: nothing,
 *                     it is no longer ours to settle.
 *
 * Every call names the worker generation and the attempt (fencing): a worker that lost its task
 * (reaped, canceled, taken over) matches no row and changes nothing. A settle that fails on the
 * database is retried for up to the heartbeat timeout; after that the reaper retries or fails the
 * task, as for a lost worker.
 *
 * Settles that can be one autocommit statement (success without a `Commit`, failure, cancel) go
 * through the process's settle batches: a settle is sent at once while fewer than `IN_FLIGHT`
 * batch statements are in flight, and those that become due while that many are go together in
 * the next one (group commit: no timer, so a lone settle is never held). A batch is one statement, cairn_settle_batch (queries/settle.ts, `settleBatch`): each
 * settle still fenced by its task, worker and attempt, and, unless the worker is draining, the
 * tasks for the slots it frees claimed in the same statement and handed to those slots. A batch
 * that fails is not retried as one: each of its settles is then retried on its own, as a single
 * settle always was, so one settle's error never holds up another's.
 */
import type { SQL } from "drizzle-orm"
import { Cause, Deferred, Duration, Effect, Exit, FiberId, Option, Runtime, Schedule, Schema } from "effect"
import { CairnConfig } from "../../config/config.js"
import { Db, DbError } from "../../db/client.js"
import type { TaskFailure } from "../errors.js"
import { Commit, type HandlerResult } from "../kind.js"
import type { Changes } from "../notify.js"
import type { ClaimedTask } from "../queries/claim.js"
import * as Q from "../queries/settle.js"
import type { Running, StopReason } from "./running.js"

export type Outcome =
  | { readonly _tag: "resolve"; readonly result: HandlerResult }
  | { readonly _tag: "fail"; readonly how: "failed" | "canceled"; readonly code: string; readonly message: string }
  | { readonly _tag: "release" }
  | { readonly _tag: "abandon" }

/** What to record for an attempt that ended with `exit`, having been stopped for `reason` (if it was). */
export const outcomeOf = (exit: Exit.Exit<HandlerResult, TaskFailure>, reason: StopReason | undefined): Outcome => {
  if (Exit.isSuccess(exit)) return { _tag: "resolve", result: exit.value }
  if (Cause.isInterruptedOnly(exit.cause)) {
    if (reason === "lost") return { _tag: "abandon" }
    if (reason === "shutdown") return { _tag: "release" }
    return { _tag: "fail", how: "canceled", code: "canceled", message: "canceled by request" }
  }
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure)
    ? { _tag: "fail", how: "failed", code: failure.value.code, message: failure.value.message }
    : { _tag: "fail", how: "failed", code: "task_crashed", message: Cause.pretty(exit.cause).split("\n")[0] ?? "the handler crashed" }
}

class LostOwnership extends Schema.TaggedError<LostOwnership>()("LostOwnership", {}) {}

type Settled = { readonly changes: Changes | undefined; readonly claimed: ReadonlyArray<ClaimedTask> }

const nothingClaimed: ReadonlyArray<ClaimedTask> = []

/**
 * At most this many batch statements in flight per process. With one, the two slots of a default
 * worker alternated (each settling alone while the other's statement was in flight) and lost the
 * overlap of two statements: fewer jobs/s and more CPU per job in bench:throughput than settling
 * each on its own; with two, such a worker settles as before, and a busy one still batches.
 */
const IN_FLIGHT = 2

/** A settle waiting for the next batch of its worker generation; `done` gets undefined if the batch failed. */
interface Queued {
  readonly worker: string
  readonly settle: Q.BatchSettle
  readonly done: Deferred.Deferred<Settled | undefined>
}

/**
 * The settles of a batch with the tasks claimed for their slots: each settle that matched gets up
 * to its `refill` of them, in order (the claim asked for the sum of those).
 */
export const handOut = (
  settles: ReadonlyArray<Q.BatchSettle>,
  changes: ReadonlyArray<Changes | undefined>,
  claimed: ReadonlyArray<ClaimedTask>
): ReadonlyArray<Settled> => {
  let next = 0
  return settles.map((s, i) => {
    const c = changes[i]
    if (c === undefined) return { changes: c, claimed: nothingClaimed }
    const mine = claimed.slice(next, next + s.refill)
    next += mine.length
    return { changes: c, claimed: mine }
  })
}

/** `settled` is told what each settle changed (the retry timer listens: retries.ts). */
export const makeCompleter = (settled: (changes: Changes | undefined) => Effect.Effect<void>) => Effect.gen(function*() {
  const config = yield* CairnConfig
  const db = yield* Db
  // The batch loop runs on the executor's runtime, not in the fiber of the settle that started it.
  const runtime = yield* Effect.runtime<never>()

  const retried = <A>(eff: Effect.Effect<A, DbError>) =>
    Effect.retry(eff, {
      while: (e) => e instanceof DbError,
      schedule: Schedule.exponential(Duration.millis(50)).pipe(Schedule.upTo(config.heartbeatTimeout))
    })
  const alone = (changes: Effect.Effect<Changes | undefined, DbError>): Effect.Effect<Settled, DbError> =>
    Effect.map(changes, (c) => ({ changes: c, claimed: nothingClaimed }))

  /** One settle in a statement of its own (a failed batch's settles, retried each). */
  const single = (worker: string, s: Q.BatchSettle) =>
    Effect.map(Q.settleBatch(db.db, worker, [s]), ({ changes, claimed }) => ({ changes: changes[0], claimed }))

  let queue: Array<Queued> = []
  /** Batch statements in flight. */
  let flushing = 0
  /** Sends the queued settles, one batch per worker generation, until none is left. */
  const flush: Effect.Effect<void> = Effect.gen(function*() {
    while (queue.length > 0) {
      const worker = queue[0]!.worker
      const batch = queue.filter((q) => q.worker === worker)
      queue = queue.filter((q) => q.worker !== worker)
      const settles = batch.map((q) => q.settle)
      const exit = yield* Effect.exit(Q.settleBatch(db.db, worker, settles))
      const results = Exit.isSuccess(exit) ? handOut(settles, exit.value.changes, exit.value.claimed) : undefined
      batch.forEach((q, i) => Deferred.unsafeDone(q.done, Effect.succeed(results?.[i])))
    }
    flushing--
  })

  /** Joins the next batch (sent at once while fewer than IN_FLIGHT are in flight); a failed batch's settle is retried alone. */
  const batched = (worker: string, s: Q.BatchSettle): Effect.Effect<Settled, DbError> =>
    Effect.suspend(() => {
      const done = Deferred.unsafeMake<Settled | undefined>(FiberId.none)
      queue.push({ worker, settle: s, done })
      if (flushing < IN_FLIGHT) {
        flushing++
        Runtime.runFork(runtime)(flush)
      }
      return Effect.flatMap(Deferred.await(done), (r) => (r ? Effect.succeed(r) : retried(single(worker, s))))
    })

  /**
   * Records the outcome: the changes it announced (undefined if the task was no longer ours), and
   * the tasks claimed for its slot.
   */
  const settle = (r: Running, exit: Exit.Exit<HandlerResult, TaskFailure>, refill: number): Effect.Effect<Settled, DbError> => {
    const attempt: Q.Attempt = { task: r.task.id, worker: r.workerId, attempt: r.task.attempts }
    const outcome = outcomeOf(exit, r.reason)
    switch (outcome._tag) {
      case "abandon":
        return Effect.succeed({ changes: undefined, claimed: nothingClaimed })
      case "release":
        return retried(alone(Q.release(db.db, attempt)))
      case "fail":
        return batched(attempt.worker, { task: attempt.task, attempt: attempt.attempt, refill, how: outcome.how, code: outcome.code, message: outcome.message })
      case "resolve": {
        const result = outcome.result
        if (!(result instanceof Commit)) return batched(attempt.worker, { task: attempt.task, attempt: attempt.attempt, refill, values: result })
        return retried(alone(db.transaction((tx) =>
          Effect.gen(function*() {
            yield* Q.lockTaskKeys(tx, attempt.task)
            const values = yield* result.run(tx)
            const changes = yield* Q.resolve(tx, attempt, values)
            if (!changes) return yield* new LostOwnership()
            return changes
          })
        ).pipe(
          Effect.catchTag("LostOwnership", () => Effect.succeed(undefined)),
          Effect.catchTag("TaskFailure", (f) => Q.fail(db.db, attempt, "failed", f.code, f.message))
        )))
      }
    }
  }

  /**
   * Settles, retrying database errors for up to the heartbeat timeout; never fails and is not
   * interrupted halfway. Returns the tasks claimed for the slot (none if the settle could not
   * claim, or failed).
   */
  const complete = (r: Running, exit: Exit.Exit<HandlerResult, TaskFailure>, refill: number) =>
    settle(r, exit, refill).pipe(
      Effect.withSpan("cairn.settle", {
        attributes: { task: r.task.id, graph: r.task.graphId, kind: r.task.kind },
        captureStackTrace: false
      }),
      Effect.tap(({ changes }) => settled(changes)),
      Effect.map(({ claimed }) => claimed),
      Effect.tapError((e) => Effect.logWarning(`could not settle task ${r.task.id}: ${e.message}; the reaper will retry it`)),
      Effect.orElseSucceed(() => nothingClaimed),
      Effect.uninterruptible
    )

  return { complete }
})
