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
 * The slot the task leaves is refilled by the settle itself when it is one autocommit statement
 * (success without a `Commit`, failure, cancel) and the worker is not draining: it claims up to
 * `refill` tasks in the same statement (queries/settle.ts, `settleAndClaim`) and returns them to be
 * started in that slot, saving the claim's round trip and commit.
 */
import type { SQL } from "drizzle-orm"
import { Cause, Duration, Effect, Exit, Option, Schedule, Schema } from "effect"
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

/** `settled` is told what each settle changed (the retry timer listens: retries.ts). */
export const makeCompleter = (settled: (changes: Changes | undefined) => Effect.Effect<void>) => Effect.gen(function*() {
  const config = yield* CairnConfig
  const db = yield* Db

  const nothingClaimed: ReadonlyArray<ClaimedTask> = []
  const alone = (changes: Effect.Effect<Changes | undefined, DbError>) =>
    Effect.map(changes, (c) => ({ changes: c, claimed: nothingClaimed }))
  /** One autocommit statement: with a claim of up to `refill` tasks, or alone. */
  const statement = (fn: SQL, attempt: Q.Attempt, refill: number) =>
    refill > 0 ? Q.settleAndClaim(db.db, fn, attempt.worker, refill) : alone(Q.notified(db.db, fn))

  /**
   * Records the outcome: the changes it announced (undefined if the task was no longer ours), and
   * the tasks claimed for its slot.
   */
  const settle = (r: Running, exit: Exit.Exit<HandlerResult, TaskFailure>, refill: number) => {
    const attempt: Q.Attempt = { task: r.task.id, worker: r.workerId, attempt: r.task.attempts }
    const outcome = outcomeOf(exit, r.reason)
    switch (outcome._tag) {
      case "abandon":
        return Effect.succeed({ changes: undefined, claimed: nothingClaimed })
      case "release":
        return alone(Q.release(db.db, attempt))
      case "fail":
        return statement(Q.failCall(attempt, outcome.how, outcome.code, outcome.message), attempt, refill)
      case "resolve": {
        const result = outcome.result
        if (!(result instanceof Commit)) return statement(Q.resolveCall(attempt, result), attempt, refill)
        return alone(db.transaction((tx) =>
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
        ))
      }
    }
  }

  /**
   * Settles, retrying database errors; never fails and is not interrupted halfway. Returns the
   * tasks claimed for the slot (none if the settle could not claim, or failed).
   */
  const complete = (r: Running, exit: Exit.Exit<HandlerResult, TaskFailure>, refill: number) =>
    settle(r, exit, refill).pipe(
      Effect.withSpan("cairn.settle", {
        attributes: { task: r.task.id, graph: r.task.graphId, kind: r.task.kind },
        captureStackTrace: false
      }),
      Effect.retry({
        while: (e) => e instanceof DbError,
        schedule: Schedule.exponential(Duration.millis(50)).pipe(Schedule.upTo(config.heartbeatTimeout))
      }),
      Effect.tap(({ changes }) => settled(changes)),
      Effect.map(({ claimed }) => claimed),
      Effect.tapError((e) => Effect.logWarning(`could not settle task ${r.task.id}: ${e.message}; the reaper will retry it`)),
      Effect.orElseSucceed(() => nothingClaimed),
      Effect.uninterruptible
    )

  return { complete }
})
