/**
 * The worker runtime: `slots` tasks at a time in this process, no dispatcher anywhere.
 *
 * Life of a worker (one "generation" per database session), one module per job under worker/:
 *   register  a `workers` row and take the session advisory lock (2, lock_key) on the Session's
 *             connection, in one transaction: from then on "lock free" means "this worker is dead"
 *             (liveness.ts).
 *   claim     when woken (NOTIFY with ready work that names this worker or nobody, a slot freed, or
 *             the slow safety-net poll), claim up to the number of free slots with one SKIP LOCKED
 *             statement (producer.ts, queries/claim.ts).
 *   run       each task's handler in its own fiber; cancel = Fiber.interrupt, triggered by a NOTIFY
 *             (or found by the heartbeat, if the notification was lost) (executor.ts, running.ts);
 *             progress is written throttled, one write at a time, the last one before the settle
 *             (progress.ts).
 *   settle    one function call per outcome (cairn_resolve / cairn_fail / cairn_release), each
 *             naming worker and attempt, so a worker that lost its task changes nothing; the
 *             settles that come due while one is in flight go together in one statement
 *             (cairn_settle_batch), which claims the tasks for the slots they free, when it can
 *             (completer.ts, queries/settle.ts).
 *   heartbeat every CAIRN_HEARTBEAT_MS; a worker that cannot heartbeat for 60% of the timeout fences
 *             itself (stops its tasks) before anyone else may declare it dead and retry them
 *             (liveness.ts).
 *   reap      every worker checks, about once a second, for dead workers (cairn_reap, liveness.ts).
 *   retries   a task that failed with a retry backoff waits in the database; the worker that settled
 *             it (or reaped its worker) keeps a timer for it and wakes it when due (retries.ts).
 *
 * If the session drops, every running task is abandoned (interrupted, not settled: the others will
 * retry or fail it as worker_lost) and the worker registers anew when the session is back.
 * On shutdown it stops claiming, lets running tasks finish within the grace period, then hands the
 * rest back (cairn_release) and unregisters (drain.ts).
 */
import { Effect } from "effect"
import { CairnConfig } from "../config/config.js"
import { makeDrain } from "./worker/drain.js"
import { makeExecutor } from "./worker/executor.js"
import { makeLiveness } from "./worker/liveness.js"
import { makeProducer } from "./worker/producer.js"
import { makeRetryTimer } from "./worker/retries.js"
import { RunningTasks } from "./worker/running.js"

export const runWorker = (opts?: { readonly slots?: number; readonly name?: string }) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const running = new RunningTasks(opts?.slots ?? config.workers)
    const producer = yield* makeProducer(running)
    const retries = yield* makeRetryTimer
    const executor = yield* makeExecutor(running, producer.wake, retries.heard)
    const liveness = yield* makeLiveness(running, opts?.name, retries.heard)
    const drain = yield* makeDrain(running, liveness.currentId)
    yield* retries.loop.pipe(Effect.forkScoped)
    yield* liveness.generations((workerId) => producer.run(workerId, executor.start)).pipe(Effect.forkScoped)
    // Added last, so it runs first when the scope closes: the generation (heartbeat, session) stays
    // alive while running tasks finish.
    yield* Effect.addFinalizer(() => drain)
  })
