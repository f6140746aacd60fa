/**
 * Child tasks: a running task's handler submits graphs whose tasks any worker takes, and awaits
 * their futures (`ctx.spawn`, `ctx.awaitFutures`, kind.ts). Other engines call this child workflows
 * or dynamic task mapping; a large sync uses it to spread its downloads over the cluster
 * (src/content/sync-shards.ts). DESIGN.md §4 "Child tasks".
 *
 *   spawn   validates and writes the graph like any submission (submit.ts), and in the same
 *           transaction links it to its parent: `graphs.parent_task` and `parent_attempt`. The
 *           write is not interruptible, so a handler stopped meanwhile still finds it to cancel.
 *   await   waits for the futures to settle, woken by the settles' NOTIFY on `cairn` (the slow
 *           poll as a safety net); while it waits the task lends its slot (worker/running.ts), so
 *           its process claims other work, its own children included: however many parents wait,
 *           their children are ready work and the parents hold no slot, so nothing deadlocks.
 *
 * Failure semantics:
 *   - A child that fails (after its own retries) or is canceled fails the awaiting parent with the
 *     root cause: the code and message of the task where the failure began.
 *   - When the handler ends, whatever the outcome (success, failure, cancel, drain, lost session),
 *     its unsettled children are canceled before the task settles; so canceling the parent cancels
 *     its children, and children never outlive a settled parent that could still reach them.
 *   - A parent whose worker died is retried (or failed) by the reaper as any task; its children
 *     keep running until its next attempt's first spawn cancels those of earlier attempts, so a
 *     retried parent never counts an earlier attempt's children. A parent the reaper fails for
 *     good leaves its children to finish on their own; their results reach nobody (a kind whose
 *     children hold something for the parent checks that the parent still runs, as the download
 *     shards do).
 *   - A child settling after its parent settled changes nothing: the parent's settle is fenced by
 *     its attempt, and nothing reads a child's future but the parent's handler.
 */
import { sql } from "drizzle-orm"
import { Effect, PubSub, Queue } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db, txRows } from "../db/client.js"
import { cancelIds } from "./cancel.js"
import { TaskFailure } from "./errors.js"
import { CLIENTS_CHANNEL } from "./notify.js"
import { Session } from "./session.js"
import type { TaskKinds } from "./kind.js"
import { type GraphSpec, prepareGraph, type SubmittedGraph } from "./submit.js"
import { writeGraphIn } from "./submit/write.js"

export interface ChildTasks {
  readonly spawn: (spec: GraphSpec) => Effect.Effect<SubmittedGraph, TaskFailure>
  readonly awaitFutures: (futures: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<unknown>, TaskFailure>
  /**
   * Run when the handler ends: cancels every unsettled child of the task, if it may have any (this
   * attempt spawned, or an earlier attempt may have). Never fails.
   */
  readonly cancelAll: Effect.Effect<void>
}

/** How the running task lends its slot while it awaits (worker/running.ts). */
export interface SlotLending {
  readonly lend: Effect.Effect<void>
  readonly reclaim: Effect.Effect<void>
}

/**
 * Whether an attempt may have unsettled children to cancel when its handler ends: it spawned some,
 * or an earlier attempt may have (a retry cancels those at its first spawn, or at its end).
 */
export const mayHaveChildren = (spawned: boolean, attempt: number) => spawned || attempt > 1

const asFailure = (code: string) => (e: { readonly message: string }) => new TaskFailure({ code, message: e.message })

/** Makes the child-task operations of running tasks, with the worker runtime's services. */
export const makeChildTasksFactory = Effect.gen(function*() {
  const db = yield* Db
  const config = yield* CairnConfig
  const session = yield* Session
  const services = yield* Effect.context<Db | TaskKinds>()

  /** Unsettled tasks of the task's child graphs (of attempts before `before`, if given). */
  const unsettledChildren = (task: string, before?: number) =>
    Effect.map(
      db.rows<{ id: string }>(sql`
        SELECT t.id FROM graphs g JOIN tasks t ON t.graph_id = g.id
        WHERE g.parent_task = ${task} ${before === undefined ? sql`` : sql`AND g.parent_attempt < ${before}`}
          AND t.state IN ('blocked', 'ready', 'running')`),
      (rows) => rows.map((r) => r.id)
    )
  const cancelChildren = (task: string, before?: number) =>
    Effect.flatMap(unsettledChildren(task, before), (ids) => (ids.length > 0 ? cancelIds(ids) : Effect.void)).pipe(
      Effect.provideService(Db, db)
    )

  return (parent: { readonly task: string; readonly attempt: number }, lending: SlotLending): ChildTasks => {
    let spawned = false
    let earlierCanceled = false

    const spawn = (spec: GraphSpec) =>
      Effect.gen(function*() {
        if (!earlierCanceled) {
          yield* cancelChildren(parent.task, parent.attempt)
          earlierCanceled = true
        }
        const prepared = yield* prepareGraph(spec).pipe(Effect.mapError((e) =>
          e._tag === "InvalidRequest"
            ? new TaskFailure({ code: "bad_child_graph", message: `${e.message}: ${JSON.stringify(e.details ?? {})}` })
            : asFailure("db_error")(e)
        ))
        yield* Effect.uninterruptible(
          db.transaction((tx) =>
            Effect.gen(function*() {
              yield* writeGraphIn(tx, prepared.graph, prepared.plan)
              yield* txRows(tx, sql`UPDATE graphs SET parent_task = ${parent.task}, parent_attempt = ${parent.attempt}
                                    WHERE id = ${prepared.graph.id}`)
            })
          ).pipe(Effect.tap(() => Effect.sync(() => (spawned = true))))
        ).pipe(Effect.mapError((e) => new TaskFailure({ code: e._tag === "DbError" ? "db_error" : "bad_child_graph", message: e.message })))
        return prepared.submitted
      }).pipe(
        Effect.mapError((e) => (e instanceof TaskFailure ? e : asFailure("db_error")(e))),
        Effect.provide(services)
      )

    /** The futures' states, and for failed ones the error of the task where the failure began. */
    const states = (ids: ReadonlyArray<string>) =>
      db.rows<{ id: string; state: string; value: unknown; root: { code?: string; message?: string } | null; root_task: string }>(sql`
        SELECT f.id, f.state, f.value, coalesce(f.error->>'cause_task', f.producer_task) AS root_task,
               CASE WHEN f.state IN ('failed', 'canceled')
                    THEN coalesce((SELECT t.error FROM tasks t WHERE t.id = coalesce(f.error->>'cause_task', f.producer_task)), f.error)
               END AS root
        FROM futures f WHERE f.id = ANY(${sql.param([...ids])}::text[])`)

    const awaitFutures = (ids: ReadonlyArray<string>) =>
      Effect.scoped(Effect.gen(function*() {
        const wanted = new Set(ids)
        // Subscribed and listening before the first look, so no settle between them is missed.
        const wakeups = yield* PubSub.subscribe(session.wakeups)
        yield* session.listen(CLIENTS_CHANNEL)
        yield* Effect.acquireRelease(lending.lend, () => lending.reclaim)
        for (;;) {
          const rows = yield* states(ids).pipe(Effect.mapError(asFailure("db_error")))
          if (rows.length < wanted.size) {
            const found = new Set(rows.map((r) => r.id))
            return yield* new TaskFailure({ code: "not_found", message: `future ${ids.find((i) => !found.has(i))} does not exist` })
          }
          const bad = rows.find((r) => r.state === "failed" || r.state === "canceled")
          if (bad) {
            return yield* new TaskFailure({
              code: bad.root?.code ?? bad.state,
              message: `child task ${bad.root_task}: ${bad.root?.message ?? bad.state}`
            })
          }
          if (rows.every((r) => r.state === "resolved")) {
            const byId = new Map(rows.map((r) => [r.id, r.value]))
            return ids.map((i) => byId.get(i))
          }
          const relevant = (w: { futures: ReadonlyArray<string> | "*" }) => w.futures === "*" || w.futures.some((f) => wanted.has(f))
          yield* Queue.take(wakeups).pipe(
            Effect.repeat({ until: relevant }),
            Effect.timeout(config.pollInterval),
            Effect.ignore
          )
        }
      }))

    return {
      spawn,
      awaitFutures,
      cancelAll: Effect.suspend(() =>
        !mayHaveChildren(spawned, parent.attempt) ? Effect.void : cancelChildren(parent.task).pipe(
          Effect.timeout(config.heartbeatTimeout),
          Effect.tapError((e) => Effect.logWarning(`could not cancel the children of task ${parent.task}: ${String(e)}`)),
          Effect.ignore
        )
      )
    }
  }
})
