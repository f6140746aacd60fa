/**
 * The worker runtime: `slots` tasks at a time in this process, no dispatcher anywhere.
 *
 * Life of a worker (one "generation" per database session):
 *   register  a `workers` row and take the session advisory lock (2, lock_key) on the Session's
 *             connection, in one transaction: from then on "lock free" means "this worker is dead".
 *   claim     when woken (NOTIFY with ready work that names this worker or nobody, a slot freed, or
 *             the slow safety-net poll), claim up to the number of free slots with one SKIP LOCKED
 *             statement (claim.ts).
 *   run       each task's handler in its own fiber; cancel = Fiber.interrupt, triggered by a NOTIFY
 *             (or found by the heartbeat, if the notification was lost).
 *   settle    one function call per outcome (cairn_resolve / cairn_fail / cairn_release), each
 *             naming worker and attempt, so a worker that lost its task changes nothing.
 *   heartbeat every CAIRN_HEARTBEAT_MS; a worker that cannot heartbeat for 60% of the timeout fences
 *             itself (stops its tasks) before anyone else may declare it dead and retry them.
 *   reap      every worker checks, about once a second, for dead workers (cairn_reap).
 *
 * If the session drops, every running task is abandoned (interrupted, not settled: the others will
 * retry or fail it as worker_lost) and the worker registers anew when the session is back.
 * On shutdown it stops claiming, lets running tasks finish within the grace period, then hands the
 * rest back (cairn_release) and unregisters.
 */
import { type SQL, sql } from "drizzle-orm"
import { Cause, Duration, Effect, Exit, Fiber, Option, Queue, Schedule, Schema, Stream } from "effect"
import * as os from "node:os"
import { monotonicFactory } from "ulid"
import { CairnConfig } from "../config/config.js"
import { Db, DbError, type Tx, txRows } from "../db/client.js"
import { claimTasks, type ClaimedTask } from "./claim.js"
import { TaskFailure } from "./errors.js"
import { Commit, type HandlerResult, type OutputValues, type Progress, type ResolvedInput, TaskKinds } from "./kind.js"
import { type Changes, toChanges, workerChannel, WORKERS_CHANNEL } from "./notify.js"
import { Session } from "./session.js"
import * as Metrics from "./metrics.js"

type StopReason = "cancel" | "shutdown" | "lost"

interface Running {
  readonly task: ClaimedTask
  readonly workerId: string
  reason: StopReason | undefined
  fiber: Fiber.RuntimeFiber<HandlerResult, TaskFailure> | undefined
  done: Promise<void>
}

class LostOwnership extends Schema.TaggedError<LostOwnership>()("LostOwnership", {}) {}

class Fenced extends Schema.TaggedError<Fenced>()("Fenced", { reason: Schema.String }) {}

const newId = monotonicFactory()

export const runWorker = (opts?: { readonly slots?: number; readonly name?: string }) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const db = yield* Db
    const session = yield* Session
    const registry = yield* TaskKinds
    const slots = opts?.slots ?? config.workers
    const running = new Map<string, Running>()
    const kick = yield* Queue.sliding<void>(1)
    let stopping = false
    let currentId: string | undefined

    /**
     * Settling is one engine function call wrapped in cairn_notify, which sends the wake-up from
     * SQL: alone it is one autocommit statement (one round trip); inside a payload transaction it is
     * the last statement before COMMIT. `fn` is the call, e.g. sql`cairn_resolve(...)`.
     */
    const settleStatement = (fn: SQL) => sql`SELECT cairn_notify(${fn}) AS c`
    const changesOf = (rows: ReadonlyArray<{ c: unknown }>) => (rows[0]?.c == null ? undefined : toChanges(rows[0].c))
    const call = (fn: SQL): Effect.Effect<Changes | undefined, DbError> =>
      Effect.map(db.rows<{ c: unknown }>(settleStatement(fn)), changesOf)
    const apply = (tx: Tx, fn: SQL) => Effect.map(txRows<{ c: unknown }>(tx, settleStatement(fn)), changesOf)

    // ---- registration ---------------------------------------------------------------------------
    const register = (client: import("pg").Client) =>
      Effect.tryPromise({
        try: async () => {
          const id = newId()
          const name = opts?.name ?? `${os.hostname()}-${process.pid}-${id.slice(-4).toLowerCase()}`
          // One statement, so one implicit transaction on the shared session connection.
          await client.query(
            `WITH w AS (
               INSERT INTO workers (id, name, host, pid, slots, backend_pid)
               VALUES ($1, $2, $3, $4, $5, pg_backend_pid()) RETURNING lock_key
             )
             SELECT pg_advisory_lock(2, lock_key::integer) FROM w`,
            [id, name, os.hostname(), process.pid, slots]
          )
          return { id, name }
        },
        catch: (cause) => new DbError({ message: `worker registration failed: ${(cause as Error).message}`, cause })
      })

    // ---- running one task -------------------------------------------------------------------------
    const settle = (r: Running, exit: Exit.Exit<HandlerResult, TaskFailure>) => {
      const { id, attempts } = r.task
      const me = r.workerId
      if (Exit.isSuccess(exit)) {
        const result = exit.value
        const resolve = (values: OutputValues) => sql`cairn_resolve(${id}, ${me}, ${attempts}, ${JSON.stringify(values)}::jsonb)`
        if (!(result instanceof Commit)) return call(resolve(result))
        // Payload rows and resolution in one transaction; if we no longer own the task, roll back.
        return db.transaction((tx) =>
          Effect.gen(function*() {
            // Keys before rows (see cairn_lock_task_keys), payload rows included.
            yield* txRows(tx, sql`SELECT cairn_lock_task_keys(ARRAY[${id}]::text[], false)`)
            const values = yield* result.run(tx)
            const changes = yield* apply(tx, resolve(values))
            if (!changes) return yield* new LostOwnership()
            return changes
          })
        ).pipe(
          Effect.catchTag("LostOwnership", () => Effect.succeed(undefined)),
          Effect.catchTag("TaskFailure", (f) =>
            call(sql`cairn_fail(${id}, ${me}, ${attempts}, 'failed', ${f.code}, ${f.message})`))
        )
      }
      if (Cause.isInterruptedOnly(exit.cause)) {
        if (r.reason === "lost") return Effect.succeed(undefined)
        if (r.reason === "shutdown") return call(sql`cairn_release(${id}, ${me}, ${attempts})`)
        return call(sql`cairn_fail(${id}, ${me}, ${attempts}, 'canceled', 'canceled', 'canceled by request')`)
      }
      const failure = Cause.failureOption(exit.cause)
      const [code, message] = Option.isSome(failure)
        ? [failure.value.code, failure.value.message]
        : ["task_crashed", Cause.pretty(exit.cause).split("\n")[0] ?? "the handler crashed"]
      return call(sql`cairn_fail(${id}, ${me}, ${attempts}, 'failed', ${code}, ${message})`)
    }

    /**
     * Progress of a running task: `report` throttles writes to one per 250 ms; `flush` writes the
     * latest unwritten value at once, and runs before the task settles so that the last value
     * always lands (a write after settling would match no row). Writes go one at a time: two in
     * flight on different pooled connections could land out of order, the older value last.
     */
    const progressWriter = (task: ClaimedTask, me: string) => {
      let latest: Progress | undefined
      let unwritten = false
      let scheduled = false
      const writing = Effect.unsafeMakeSemaphore(1)
      const flush = writing.withPermits(1)(Effect.suspend(() => {
        if (!unwritten) return Effect.void
        unwritten = false
        return db.rows(sql`UPDATE tasks SET progress = ${JSON.stringify(latest)}::jsonb
                           WHERE id = ${task.id} AND state = 'running' AND worker_id = ${me}`).pipe(Effect.ignore)
      }))
      const report = (p: Progress) =>
        Effect.suspend(() => {
          latest = p
          unwritten = true
          if (scheduled) return Effect.void
          scheduled = true
          return Effect.sleep(Duration.millis(250)).pipe(
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

    /** One line per finished attempt: info for success, warning with the error otherwise. */
    const logOutcome = (task: ClaimedTask, exit: Exit.Exit<HandlerResult, TaskFailure>, ms: number) => {
      if (Exit.isSuccess(exit)) return Effect.logInfo(`task ${task.kind} succeeded in ${ms} ms`)
      if (Cause.isInterruptedOnly(exit.cause)) return Effect.logInfo(`task ${task.kind} was interrupted after ${ms} ms`)
      const failure = Cause.failureOption(exit.cause)
      const why = Option.isSome(failure) ? `${failure.value.code}: ${failure.value.message}` : Cause.pretty(exit.cause).split("\n")[0]
      return Effect.logWarning(`task ${task.kind} failed after ${ms} ms (attempt ${task.attempts}): ${why}`)
    }

    const start = (task: ClaimedTask, me: string) => {
      let resolveDone!: () => void
      const r: Running = { task, workerId: me, reason: undefined, fiber: undefined, done: new Promise((res) => (resolveDone = res)) }
      running.set(task.id, r)
      Metrics.claimToStart(task.claimLatencyMs)
      const kind = registry.kinds.get(task.kind)
      const progress = progressWriter(task, me)
      const handler = kind
        ? Schema.decodeUnknown(kind.params)(task.params).pipe(
          Effect.mapError((e) => new TaskFailure({ code: "bad_params", message: e.message })),
          Effect.flatMap((params) =>
            kind.handler(params, {
              taskId: task.id,
              graphId: task.graphId,
              attempt: task.attempts,
              outputs: task.outputs,
              workerId: me,
              inputs: new Map(Object.entries(task.inputs) as Array<[string, ResolvedInput]>),
              progress: progress.report
            })
          ),
          // Handlers' services were captured with the registry; nothing is left to provide.
          (eff) => Effect.provide(eff, registry.context) as Effect.Effect<HandlerResult, TaskFailure>
        )
        : Effect.fail(new TaskFailure({ code: "unknown_task_kind", message: `this worker does not know task kind ${task.kind}` }))
      const began = Date.now()
      return Effect.gen(function*() {
        yield* Effect.logDebug(`task ${task.kind} started (attempt ${task.attempts})`)
        const fiber = yield* Effect.forkDaemon(
          handler.pipe(
            Effect.withSpan("cairn.run", { attributes: { task: task.id, graph: task.graphId, kind: task.kind }, captureStackTrace: false }),
            Effect.annotateLogs({ task: task.id, graph: task.graphId })
          )
        )
        r.fiber = fiber
        if (r.reason !== undefined) yield* Fiber.interruptFork(fiber)
        const exit = yield* Fiber.await(fiber)
        Metrics.taskFinished(task.kind, Date.now() - began, exit)
        yield* logOutcome(task, exit, Date.now() - began)
        yield* progress.flush
        yield* settle(r, exit).pipe(
          Effect.withSpan("cairn.settle", { attributes: { task: task.id, graph: task.graphId, kind: task.kind }, captureStackTrace: false }),
          Effect.retry({ while: (e) => e instanceof DbError, schedule: Schedule.exponential(Duration.millis(50)).pipe(Schedule.upTo(config.heartbeatTimeout)) }),
          Effect.tapError((e) => Effect.logWarning(`could not settle task ${task.id}: ${e.message}; the reaper will retry it`)),
          Effect.ignore,
          Effect.uninterruptible
        )
      }).pipe(
        Effect.annotateLogs({ task: task.id, graph: task.graphId, kind: task.kind, worker: me }),
        Effect.ensuring(Effect.sync(() => {
          running.delete(task.id)
          resolveDone()
        })),
        Effect.zipRight(Queue.offer(kick, undefined)),
        Effect.forkDaemon
      )
    }

    const stop = (r: Running, reason: StopReason) => {
      r.reason ??= reason
      return r.fiber ? Fiber.interruptFork(r.fiber) : Effect.void
    }

    // ---- the loops of one generation -------------------------------------------------------------
    const claimer = (me: string) =>
      Effect.gen(function*() {
        for (;;) {
          const free = slots - running.size
          if (!stopping && free > 0) {
            const claimed = yield* claimTasks(me, free).pipe(
              Effect.tapError((e) => Effect.logWarning(`claim failed: ${e.message}`)),
              Effect.orElseSucceed(() => [] as ReadonlyArray<ClaimedTask>)
            )
            for (const t of claimed) yield* start(t, me)
            if (claimed.length === free) continue
          }
          yield* Queue.take(kick).pipe(Effect.timeout(config.pollInterval), Effect.ignore)
        }
      })

    const heartbeat = (me: string) =>
      Effect.gen(function*() {
        let lastOk = Date.now()
        const fenceAfter = Duration.toMillis(config.heartbeatTimeout) * 0.6
        for (;;) {
          yield* Effect.sleep(config.heartbeatInterval)
          const beat = yield* db.rows<{ cancels: Array<string> }>(
            sql`UPDATE workers SET last_heartbeat = now() WHERE id = ${me}
                RETURNING (SELECT coalesce(array_agg(id), '{}') FROM tasks
                           WHERE state = 'running' AND worker_id = ${me} AND cancel_requested) AS cancels`
          ).pipe(Effect.either)
          if (beat._tag === "Right") {
            if (beat.right.length === 0) return yield* new Fenced({ reason: "this worker was declared dead by another worker" })
            lastOk = Date.now()
            for (const id of beat.right[0]!.cancels) {
              const r = running.get(id)
              if (r) yield* stop(r, "cancel")
            }
          } else if (Date.now() - lastOk > fenceAfter) {
            return yield* new Fenced({ reason: `no heartbeat for ${Date.now() - lastOk} ms` })
          }
        }
      })

    const reaper = (me: string) =>
      Effect.gen(function*() {
        for (;;) {
          const jitter = 0.75 + Math.random() * 0.5
          yield* Effect.sleep(Duration.times(config.reapInterval, jitter))
          const reaped = yield* call(
            sql`cairn_reap(${me}, ${`${Duration.toMillis(config.heartbeatTimeout)} milliseconds`}::interval)`
          ).pipe(Effect.either)
          if (reaped._tag === "Right" && reaped.right) {
            yield* Effect.logWarning("reaped dead workers").pipe(Effect.annotateLogs({ reaped: JSON.stringify(reaped.right) }))
          }
        }
      })

    /**
     * Forwards wakeups: ready work kicks the claimer, if the wake-up names us or nobody (it names a
     * few idle workers when more are idle than there is work); cancel requests interrupt our fibers.
     */
    const listen = (me: string) =>
      Stream.fromPubSub(session.wakeups).pipe(
        Stream.runForEach((w) =>
          Effect.gen(function*() {
            if (w.ready > 0 && (w.workers === undefined || w.workers.includes(me))) yield* Queue.offer(kick, undefined)
            if (w.cancel === "*") {
              const rows = yield* db.rows<{ id: string }>(
                sql`SELECT id FROM tasks WHERE state = 'running' AND worker_id = ${me} AND cancel_requested`
              ).pipe(Effect.orElseSucceed(() => []))
              for (const { id } of rows) {
                const r = running.get(id)
                if (r) yield* stop(r, "cancel")
              }
            } else {
              for (const id of w.cancel) {
                const r = running.get(id)
                if (r) yield* stop(r, "cancel")
              }
            }
          })
        )
      )

    const generation = Effect.gen(function*() {
      if (stopping) return yield* Effect.never
      const conn = yield* session.connected
      const me = yield* session.queries.withPermits(1)(register(conn.client)).pipe(
        Effect.tapError((e) => Effect.logWarning(e.message)),
        Effect.retry(Schedule.spaced(Duration.seconds(1)))
      )
      currentId = me.id
      // Wake-ups that name this worker (for this generation's id); the claimer's first claim
      // covers whatever was sent before.
      yield* session.listen(workerChannel(me.id))
      yield* Effect.logInfo(`worker ${me.name} registered with ${slots} slot(s)`).pipe(Effect.annotateLogs({ worker: me.id }))
      const sessionLost = session.current.changes.pipe(
        Stream.filter((c) => Option.isNone(c) || c.value.generation !== conn.generation),
        Stream.runHead
      )
      const outcome = yield* Effect.raceFirst(
        Effect.map(sessionLost, () => "the database session was lost"),
        Effect.all([claimer(me.id), heartbeat(me.id), reaper(me.id), listen(me.id)], { concurrency: "unbounded" }).pipe(
          Effect.map(() => "stopped"),
          Effect.catchTag("Fenced", (f) => Effect.succeed(f.reason))
        )
      )
      currentId = undefined
      // Whatever is still running is no longer ours to settle.
      for (const r of running.values()) if (r.workerId === me.id) yield* stop(r, "lost")
      yield* Effect.logWarning(`worker ${me.name} stopped: ${outcome}; registering again`)
    })

    const drain = Effect.gen(function*() {
      stopping = true
      const deadline = Date.now() + Duration.toMillis(config.shutdownGrace)
      if (running.size > 0) {
        yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(config.shutdownGrace)} for ${running.size} running task(s)`)
      }
      while (running.size > 0 && Date.now() < deadline) {
        yield* Effect.promise(() => Promise.race([...[...running.values()].map((r) => r.done), new Promise((r) => setTimeout(r, 100))]))
      }
      const left = [...running.values()]
      for (const r of left) yield* stop(r, "shutdown")
      yield* Effect.promise(() => Promise.race([Promise.all(left.map((r) => r.done)), new Promise((r) => setTimeout(r, 10_000))]))
      if (currentId) {
        const id = currentId
        yield* db.rows(sql`DELETE FROM workers WHERE id = ${id}`).pipe(Effect.ignore)
      }
    })

    yield* session.listen(WORKERS_CHANNEL)
    yield* Effect.forever(Effect.scoped(generation)).pipe(Effect.forkScoped)
    // Added last, so it runs first when the scope closes: the generation (heartbeat, session) stays
    // alive while running tasks finish.
    yield* Effect.addFinalizer(() => drain)
  })
