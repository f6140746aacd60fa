/**
 * Running one claimed task: its params decoded by its kind's Schema, its handler in a fiber of its
 * own (so a cancel, the drain or a lost session stops it by interruption, see running.ts), with the
 * `cairn.run` span and log annotations naming the task; then one log line for the attempt, the last
 * progress write, and the settle (completer.ts). The task stays in the table of running tasks, and
 * so holds its slot, until it is settled.
 */
import { Cause, Context, Effect, Exit, Fiber, Option, Runtime, Schema } from "effect"
import { Db } from "../../db/client.js"
import { type ChildTasks, makeChildTasksFactory, mayHaveChildren } from "../children.js"
import { TaskFailure } from "../errors.js"
import { type HandlerResult, type Progress, type ResolvedInput, TaskKinds } from "../kind.js"
import * as Metrics from "../metrics.js"
import type { Changes } from "../notify.js"
import type { ClaimedTask } from "../queries/claim.js"
import { makeCompleter } from "./completer.js"
import { type ProgressWriter, progressWriter } from "./progress.js"
import type { RunningTasks } from "./running.js"

/** One line per finished attempt: info for success, warning with the error otherwise. */
const logOutcome = (task: ClaimedTask, exit: Exit.Exit<HandlerResult, TaskFailure>, ms: number) => {
  if (Exit.isSuccess(exit)) return Effect.logInfo(`task ${task.kind} succeeded in ${ms} ms`)
  if (Cause.isInterruptedOnly(exit.cause)) return Effect.logInfo(`task ${task.kind} was interrupted after ${ms} ms`)
  const failure = Cause.failureOption(exit.cause)
  const why = Option.isSome(failure) ? `${failure.value.code}: ${failure.value.message}` : Cause.pretty(exit.cause).split("\n")[0]
  return Effect.logWarning(`task ${task.kind} failed after ${ms} ms (attempt ${task.attempts}): ${why}`)
}

/**
 * `finished` runs after each task has settled and left the table (the producer's wake-up: a slot
 * is free); `settled` is told what each settle changed (a retry to wake later, retries.ts).
 */
export const makeExecutor = (
  running: RunningTasks,
  finished: Effect.Effect<void>,
  settled: (changes: Changes | undefined) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const db = yield* Db
    const registry = yield* TaskKinds
    const completer = yield* makeCompleter(settled)
    const childTasks = yield* makeChildTasksFactory
    // Every task's fiber is forked from this runtime, never from the fiber that claimed it: a task
    // whose settle claimed the next one would otherwise be that one's parent, and each fiber's
    // FiberRefs keep one entry per forking ancestor that changed them (annotations, spans), a stack
    // as deep as the slot's history, copied at every change.
    const runtime = yield* Effect.runtime<never>()

    // Params decoders, made once per kind.
    const decoders = new Map([...registry.kinds].map(([name, kind]) => [name, Schema.decodeUnknown(kind.params)] as const))
    // The handlers' services, provided once: every task's fiber runs on a runtime that has them.
    const taskRuntime = Runtime.make({
      context: Context.merge(runtime.context, registry.context),
      fiberRefs: runtime.fiberRefs,
      runtimeFlags: runtime.runtimeFlags
    })

    /** The handler of the task's kind with its params decoded, or the failure saying why it cannot run. */
    const handlerOf = (task: ClaimedTask, workerId: string, progress: (p: Progress) => Effect.Effect<void>, children: () => ChildTasks) => {
      const kind = registry.kinds.get(task.kind)
      const decode = decoders.get(task.kind)
      if (!kind || !decode) {
        return Effect.fail(new TaskFailure({ code: "unknown_task_kind", message: `this worker does not know task kind ${task.kind}` }))
      }
      return decode(task.params).pipe(
        Effect.mapError((e) => new TaskFailure({ code: "bad_params", message: e.message })),
        Effect.flatMap((params) =>
          kind.handler(params, {
            taskId: task.id,
            graphId: task.graphId,
            attempt: task.attempts,
            outputs: task.outputs,
            workerId,
            inputs: new Map(Object.entries(task.inputs) as Array<[string, ResolvedInput]>),
            progress,
            spawn: (spec) => children().spawn(spec),
            awaitFutures: (futures) => children().awaitFutures(futures)
          }) as Effect.Effect<HandlerResult, TaskFailure>
        )
      )
    }

    /** Starts the task in the background; it takes its slot at once. */
    const start = (task: ClaimedTask, workerId: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const { running: r, finished: leave } = running.add(task, workerId)
        Metrics.claimToStart(task.claimLatencyMs)
        // The progress writer and the child-task operations are made when the handler first uses
        // them: most handlers use neither.
        let progress: ProgressWriter | undefined
        const report = (p: Progress) => (progress ??= progressWriter(db.db, task.id, workerId)).report(p)
        let children: ChildTasks | undefined
        const childrenOf = () =>
          (children ??= childTasks({ task: task.id, attempt: task.attempts }, {
            // A lent slot is free for other work: the producer looks for some.
            lend: Effect.zipRight(Effect.sync(() => running.lend(r)), finished),
            reclaim: Effect.sync(() => running.reclaim(r))
          }))
        const handler = handlerOf(task, workerId, report, childrenOf).pipe(
          // Before the task settles: children do not outlive the attempt that spawned them (nor
          // those of an earlier attempt, which only a later attempt needs to look for). Only a
          // handler that used the child-task operations can have spawned.
          Effect.ensuring(Effect.suspend(() => (mayHaveChildren(children !== undefined, task.attempts) ? childrenOf().cancelAll : Effect.void)))
        )
        const began = Date.now()
        return Effect.gen(function*() {
          yield* Effect.logDebug(`task ${task.kind} started (attempt ${task.attempts})`)
          // Its fiber inherits the log annotations below.
          const fiber = yield* Effect.forkDaemon(
            Effect.withSpan(handler, "cairn.run", { attributes: { task: task.id, graph: task.graphId, kind: task.kind }, captureStackTrace: false })
          )
          r.fiber = fiber
          // Stopped before its fiber existed (a cancel or a lost session in between).
          if (r.reason !== undefined) yield* Fiber.interruptFork(fiber)
          const exit = yield* Fiber.await(fiber)
          Metrics.taskFinished(task.kind, Date.now() - began, exit)
          yield* logOutcome(task, exit, Date.now() - began)
          if (progress) yield* progress.flush
          // Its slot, refilled by the settle statement unless the worker is draining.
          const next = yield* completer.complete(r, exit, running.refill)
          // Started before this task leaves the table: the producer never sees the slot free.
          for (const t of next) yield* start(t, workerId)
          return next.length
        }).pipe(
          Effect.annotateLogs({ task: task.id, graph: task.graphId, kind: task.kind, worker: workerId }),
          Effect.ensuring(Effect.sync(leave)),
          // A slot left empty: the producer looks for work.
          Effect.flatMap((refilled) => (refilled > 0 ? Effect.void : finished)),
          (run) => Effect.sync(() => void Runtime.runFork(taskRuntime)(run))
        )
      })

    return { start }
  })
