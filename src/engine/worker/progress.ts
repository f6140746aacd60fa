/**
 * Progress of a running task, as its handler reports it (`ctx.progress`).
 *
 * `report` keeps the latest value and writes at most one every 250 ms, so a handler may call it as
 * often as it likes; `flush` writes the latest unwritten value at once. The executor flushes before
 * the task settles, so that the last value always lands: a write after settling would match no row
 * (it names the running task and its worker). Writes go one at a time: two in flight on different
 * pooled connections could land out of order, the older value last.
 */
import { Duration, Effect } from "effect"
import type { Tx } from "../../db/client.js"
import type { Progress } from "../kind.js"
import * as Q from "../queries/worker.js"

const THROTTLE = Duration.millis(250)

export interface ProgressWriter {
  readonly report: (p: Progress) => Effect.Effect<void>
  readonly flush: Effect.Effect<void>
}

export const progressWriter = (on: Tx, task: string, workerId: string): ProgressWriter => {
  let latest: Progress | undefined
  let unwritten = false
  let scheduled = false
  const writing = Effect.unsafeMakeSemaphore(1)
  const flush = writing.withPermits(1)(Effect.suspend(() => {
    if (!unwritten) return Effect.void
    unwritten = false
    return Q.writeProgress(on, task, workerId, latest).pipe(Effect.ignore)
  }))
  const report = (p: Progress) =>
    Effect.suspend(() => {
      latest = p
      unwritten = true
      if (scheduled) return Effect.void
      scheduled = true
      return Effect.sleep(THROTTLE).pipe(
        Effect.zipRight(Effect.suspend(() => {
          scheduled = false
          return flush
        })),
        Effect.forkDaemon,
        Effect.asVoid
      )
    })
  return { report, flush }
}
