/**
 * A clock for schedules that only the test moves (src/schedules/clock.ts): `set` and `advance`
 * wake every `sleepUntil` whose instant has come, at once, so no test ever sleeps to reach a tick.
 */
import { Deferred, Effect, FiberId } from "effect"
import type { SchedulerClockShape } from "../../src/schedules/clock.js"

export interface ManualClock {
  readonly clock: SchedulerClockShape
  readonly now: () => number
  readonly set: (epochMs: number) => void
  readonly advance: (ms: number) => void
}

export const manualClock = (start: number): ManualClock => {
  let now = start
  const sleepers = new Set<{ readonly at: number; readonly done: Deferred.Deferred<void> }>()
  const set = (t: number) => {
    if (t < now) throw new Error(`the test clock only moves forward (${new Date(t).toISOString()} < ${new Date(now).toISOString()})`)
    now = t
    for (const s of sleepers) {
      if (s.at > now) continue
      sleepers.delete(s)
      Deferred.unsafeDone(s.done, Effect.void)
    }
  }
  return {
    clock: {
      now: Effect.sync(() => now),
      sleepUntil: (at) =>
        Effect.suspend(() => {
          if (now >= at) return Effect.void
          const s = { at, done: Deferred.unsafeMake<void>(FiberId.none) }
          sleepers.add(s)
          return Deferred.await(s.done).pipe(Effect.onInterrupt(() => Effect.sync(() => sleepers.delete(s))))
        })
    },
    now: () => now,
    set,
    advance: (ms) => set(now + ms)
  }
}
