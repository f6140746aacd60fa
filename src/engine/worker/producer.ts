/**
 * Fetching work when woken. The producer claims up to the number of free slots with one statement
 * (queries/claim.ts) and hands each task to the executor; it claims again at once while a claim
 * fills every free slot (more may be ready), and otherwise waits for a wake-up:
 *
 *   - ready work on `cairn_work` (any idle worker) or on this generation's own channel
 *     `cairn_w_<id>`, if the wake-up names this worker or nobody (it names a few idle workers when
 *     more are idle than there is work, see notify.ts);
 *   - a slot freed (the executor settled a task, and its settle statement claimed nothing for it:
 *     completer.ts);
 *   - the slow safety-net poll (CAIRN_POLL_INTERVAL_MS).
 *
 * The same wake-ups carry cancel requests, which stop the listed tasks running here ("*": every
 * running task of this worker whose cancel was requested).
 */
import { Effect, Queue, Stream } from "effect"
import { CairnConfig } from "../../config/config.js"
import { Db } from "../../db/client.js"
import { workerChannel, WORKERS_CHANNEL } from "../notify.js"
import { claim, type ClaimedTask } from "../queries/claim.js"
import * as Q from "../queries/worker.js"
import { Session } from "../session.js"
import type { RunningTasks } from "./running.js"

/** Listens on `cairn_work` until the scope closes. */
export const makeProducer = (running: RunningTasks) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const db = yield* Db
    const session = yield* Session
    const kick = yield* Queue.sliding<void>(1)
    yield* session.listen(WORKERS_CHANNEL)

    /** Makes the claim loop look for work (again). */
    const wake = Effect.asVoid(Queue.offer(kick, undefined))

    const claimLoop = (workerId: string, start: (task: ClaimedTask, workerId: string) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        for (;;) {
          const free = running.free
          if (free > 0) {
            const claimed = yield* claim(db.db, workerId, free).pipe(
              Effect.withSpan("cairn.claim", { captureStackTrace: false }),
              Effect.tapError((e) => Effect.logWarning(`claim failed: ${e.message}`)),
              Effect.orElseSucceed(() => [] as ReadonlyArray<ClaimedTask>)
            )
            for (const t of claimed) yield* start(t, workerId)
            if (claimed.length === free) continue
          }
          yield* Queue.take(kick)
        }
      })

    /**
     * Ready work wakes the claim loop from the notification's own callback (`onWakeup`), so that
     * the claim is sent without first waiting for another fiber to take the wake-up off the
     * session's PubSub: at idle that hop sits between a submission's commit and its task's claim.
     */
    const wakeOnReady = (workerId: string) =>
      session.onWakeup((w) => {
        if (w.ready > 0 && (w.workers === undefined || w.workers.includes(workerId))) Queue.unsafeOffer(kick, undefined)
      })

    /** Cancel requests stop our tasks. */
    const forwardCancels = (workerId: string) =>
      Stream.fromPubSub(session.wakeups).pipe(
        Stream.filter((w) => w.cancel === "*" || w.cancel.length > 0),
        Stream.runForEach((w) =>
          Effect.gen(function*() {
            const cancels = w.cancel === "*"
              ? yield* Q.cancelRequested(db.db, workerId).pipe(Effect.orElseSucceed(() => []))
              : w.cancel
            yield* running.cancel(cancels)
          })
        )
      )

    /**
     * The safety-net poll: a wake-up every poll interval, from a fiber of its own. (A timeout on
     * the claim loop's wait would put a race of two fibers between every wake-up and its claim.)
     */
    const poll = Effect.forever(Effect.zipRight(Effect.sleep(config.pollInterval), wake))

    /**
     * Claims for the worker generation `workerId` until interrupted. Its wake-up callback and its
     * own channel are in place first; the first claim covers whatever was sent before.
     */
    const run = (workerId: string, start: (task: ClaimedTask, workerId: string) => Effect.Effect<void>) =>
      Effect.zipRight(
        Effect.zipRight(wakeOnReady(workerId), session.listen(workerChannel(workerId))),
        Effect.all([claimLoop(workerId, start), forwardCancels(workerId), poll], { concurrency: "unbounded", discard: true })
      )

    return { wake, run }
  })
