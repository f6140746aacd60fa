/**
 * Being a live worker (DESIGN.md §6). One *generation* per database session:
 *
 *   register   the `workers` row and the session advisory lock (2, lock_key) on the Session's
 *              connection, in one statement: from then on "lock free" means "this worker is dead".
 *   heartbeat  every CAIRN_HEARTBEAT_MS; it also picks up cancel requests whose notification was
 *              lost. A worker whose heartbeat finds its row gone was declared dead: it fences
 *              itself at once. One that cannot heartbeat for 60% of CAIRN_HEARTBEAT_TIMEOUT_MS
 *              fences itself too, before anyone else may declare it dead and retry its tasks.
 *   reap       about once a second (jittered), cairn_reap: other workers whose lock is free or
 *              whose heartbeat is stale are declared dead and their tasks retried or failed.
 *
 * A generation ends when the session drops or the worker fences itself. Its running tasks are then
 * abandoned (interrupted, not settled: the other workers retry or fail them as worker_lost; with the
 * ownership check in every settle, a task taken over is never settled twice and never keeps running
 * beside its retry), and the next generation registers anew once a session is back.
 */
import { Duration, Effect, Option, Schedule, Schema, Stream } from "effect"
import * as os from "node:os"
import type pg from "pg"
import { monotonicFactory } from "ulid"
import { CairnConfig } from "../../config/config.js"
import { Db, DbError } from "../../db/client.js"
import type { Changes } from "../notify.js"
import * as Q from "../queries/worker.js"
import { Session } from "../session.js"
import type { RunningTasks } from "./running.js"

class Fenced extends Schema.TaggedError<Fenced>()("Fenced", { reason: Schema.String }) {}

const newId = monotonicFactory()

/** `onReaped` is told what each reap changed (the retry timer listens: retries.ts). */
export const makeLiveness = (
  running: RunningTasks,
  name: string | undefined,
  onReaped: (changes: Changes | undefined) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const db = yield* Db
    const session = yield* Session
    let currentId: string | undefined

    const register = (client: pg.Client) =>
      Effect.tryPromise({
        try: async () => {
          const id = newId()
          const registered = { id, name: name ?? `${os.hostname()}-${process.pid}-${id.slice(-4).toLowerCase()}` }
          await Q.register(client, { ...registered, host: os.hostname(), pid: process.pid, slots: running.slots })
          return registered
        },
        catch: (cause) => new DbError({ message: `worker registration failed: ${(cause as Error).message}`, cause })
      })

    const heartbeat = (workerId: string) =>
      Effect.gen(function*() {
        let lastOk = Date.now()
        const fenceAfter = Duration.toMillis(config.heartbeatTimeout) * 0.6
        for (;;) {
          yield* Effect.sleep(config.heartbeatInterval)
          // Bounded: across a dead link the statement gets no answer at all (TCP retransmits for
          // minutes), and a heartbeat that hangs would never let us fence ourselves in time.
          const beat = yield* Q.heartbeat(db.db, workerId).pipe(
            Effect.timeoutFail({
              duration: Duration.millis(Math.max(1, lastOk + fenceAfter - Date.now())),
              onTimeout: () => new DbError({ message: "the heartbeat got no answer" })
            }),
            Effect.either
          )
          if (beat._tag === "Right") {
            if (beat.right.length === 0) return yield* new Fenced({ reason: "this worker was declared dead by another worker" })
            lastOk = Date.now()
            yield* running.cancel(beat.right[0]!.cancels)
          } else if (Date.now() - lastOk > fenceAfter) {
            return yield* new Fenced({ reason: `no heartbeat for ${Date.now() - lastOk} ms` })
          }
        }
      })

    const reaper = (workerId: string) =>
      Effect.gen(function*() {
        for (;;) {
          const jitter = 0.75 + Math.random() * 0.5
          yield* Effect.sleep(Duration.times(config.reapInterval, jitter))
          const reaped = yield* Q.reap(db.db, workerId, Duration.toMillis(config.heartbeatTimeout)).pipe(Effect.either)
          if (reaped._tag === "Right" && reaped.right) {
            yield* Effect.logWarning("reaped dead workers").pipe(Effect.annotateLogs({ reaped: JSON.stringify(reaped.right) }))
            yield* onReaped(reaped.right)
          }
        }
      })

    /** One generation: register, run `work` beside the heartbeat and the reaper until the session drops or we fence. */
    const generation = <R>(work: (workerId: string) => Effect.Effect<void, never, R>) =>
      Effect.gen(function*() {
        if (running.draining) return yield* Effect.never
        const conn = yield* session.connected
        const me = yield* session.queries.withPermits(1)(register(conn.client)).pipe(
          Effect.tapError((e) => Effect.logWarning(e.message)),
          Effect.retry(Schedule.spaced(Duration.seconds(1)))
        )
        currentId = me.id
        yield* Effect.logInfo(`worker ${me.name} registered with ${running.slots} slot(s)`).pipe(Effect.annotateLogs({ worker: me.id }))
        const sessionLost = session.current.changes.pipe(
          Stream.filter((c) => Option.isNone(c) || c.value.generation !== conn.generation),
          Stream.runHead
        )
        const outcome = yield* Effect.raceFirst(
          Effect.map(sessionLost, () => "the database session was lost"),
          Effect.all([work(me.id), heartbeat(me.id), reaper(me.id)], { concurrency: "unbounded" }).pipe(
            Effect.map(() => "stopped"),
            Effect.catchTag("Fenced", (f) => Effect.succeed(f.reason))
          )
        )
        currentId = undefined
        // Whatever is still running is no longer ours to settle.
        yield* running.abandon(me.id)
        yield* Effect.logWarning(`worker ${me.name} stopped: ${outcome}; registering again`)
      })

    return {
      /** Generation after generation, forever. */
      generations: <R>(work: (workerId: string) => Effect.Effect<void, never, R>) =>
        Effect.forever(Effect.scoped(generation(work))),
      /** The registered generation's worker id, if one is registered now. */
      currentId: () => currentId
    }
  })
