/**
 * The time schedules are computed in: what "now" is, and sleeping until an instant. Everything
 * about schedules reads it (the scheduler's ticks, a revision's `created_at`, `next_run`), so a test
 * can put them all on one clock it moves by hand and never sleep; everything else in the process
 * keeps the real clock (database retries, timeouts).
 *
 * It is a `Context.Reference`: code that reads it needs no layer, and gets the process's real clock
 * (Effect's `Clock`) unless a caller provided another with `Effect.provideService`.
 */
import { Clock, Context, Duration, Effect } from "effect"

export interface SchedulerClockShape {
  /** Milliseconds since the epoch. */
  readonly now: Effect.Effect<number>
  /** Resolves once `now` has reached `epochMs` (at once if it has); interruptible. */
  readonly sleepUntil: (epochMs: number) => Effect.Effect<void>
}

export const liveSchedulerClock: SchedulerClockShape = {
  now: Clock.currentTimeMillis,
  // A timer can fire a little early, and the wall clock can be stepped back meanwhile: sleep
  // again until the clock agrees.
  sleepUntil: (epochMs) =>
    Effect.gen(function*() {
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        if (now >= epochMs) return
        yield* Effect.sleep(Duration.millis(epochMs - now))
      }
    })
}

export class SchedulerClock extends Context.Reference<SchedulerClock>()("cairn/SchedulerClock", {
  defaultValue: () => liveSchedulerClock
}) {}
