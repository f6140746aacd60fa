/**
 * Waking retries when their wait is over (DESIGN.md §4 "Retries"). A task that failed with a
 * `retry_backoff_ms` stays `ready` with a `run_after` time, which keeps it out of the claim's index;
 * nothing polls for it. The worker that settled the failure (or reaped the lost worker) learns from
 * the settle how long the wait is, and this timer, one per worker runtime, goes off at the earliest
 * wait it knows of: `cairn_wake_retries` moves the due retries into the ready queue, its
 * `cairn_notify` wakes idle workers for them, and its result names the next retry still waiting,
 * for which the timer sets itself again. So one timer chain covers every retry it hears about.
 *
 * A timer lost with its worker (crash, shutdown) is covered by every claim, which promotes due
 * retries first: the next claim anywhere (a slot freeing, the slow safety-net poll) picks them up.
 */
import { Duration, Effect, Queue } from "effect"
import { Db } from "../../db/client.js"
import type { Changes } from "../notify.js"
import * as Q from "../queries/worker.js"

/** After a failed wake-up statement (database down), try again this much later. */
const RETRY_AFTER_ERROR_MS = 1_000

export const makeRetryTimer = Effect.gen(function*() {
  const db = yield* Db
  /** Local clock (ms) of the earliest wake-up wanted; undefined: none. */
  let next: number | undefined
  const changed = yield* Queue.sliding<void>(1)

  /** Asks for a wake-up in `ms` (by the database's clock, which the wait is measured in). */
  const wakeIn = (ms: number) =>
    Effect.suspend(() => {
      const at = Date.now() + Math.max(0, ms)
      if (next !== undefined && next <= at) return Effect.void
      next = at
      return Effect.asVoid(Queue.offer(changed, undefined))
    })

  /** Arms the timer for whatever retry a settle, a reap or a wake-up reported. */
  const heard = (c: Changes | undefined) => (c?.retryInMs === undefined ? Effect.void : wakeIn(c.retryInMs))

  const loop = Effect.gen(function*() {
    for (;;) {
      const wait = next === undefined ? Duration.infinity : Duration.millis(Math.max(0, next - Date.now()))
      // A new, earlier wake-up ends the wait early.
      yield* Queue.take(changed).pipe(Effect.timeout(wait), Effect.ignore)
      if (next === undefined || Date.now() < next) continue
      next = undefined
      const woken = yield* Q.wakeRetries(db.db).pipe(Effect.either)
      if (woken._tag === "Left") {
        yield* Effect.logWarning(`could not wake due retries: ${woken.left.message}; trying again`)
        yield* wakeIn(RETRY_AFTER_ERROR_MS)
      } else yield* heard(woken.right)
    }
  })

  return { heard, loop }
})
