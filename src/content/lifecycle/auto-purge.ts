/**
 * The automatic history purge: with `CAIRN_HISTORY_RETENTION_SECONDS` set, every worker process
 * tries, every quarter of that window (at least a second, at most ten minutes, jittered), to purge
 * history older than the window (./history.ts). One purge runs at a time across the cluster: the
 * session advisory lock (5, 0) (`historyPurge`, src/db/locks.ts) is only tried, on a connection
 * held for the run, so a process that finds it taken skips this round, and a process that dies
 * mid-run lets go of it with its connection. Nothing else waits for it: the purge itself takes
 * disjoint rows in short batches (SKIP LOCKED).
 */
import { Duration, Effect, Option, Random, Schedule } from "effect"
import { CairnConfig } from "../../config/config.js"
import { Db, toDbError } from "../../db/client.js"
import { LockClass } from "../../db/locks.js"
import { purgeHistory } from "./history.js"

/** Run `body` if the cluster-wide purge lock is free (else `undefined`); the lock is held for the run. */
const withPurgeLock = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Db, (db) =>
    Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => db.pool.connect(), catch: toDbError }),
      (client) =>
        Effect.tryPromise({
          try: () => client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LockClass.historyPurge}, 0) AS ok`),
          catch: toDbError
        }).pipe(
          Effect.flatMap((r) =>
            r.rows[0]?.ok
              ? body.pipe(
                Effect.map(Option.some),
                Effect.ensuring(Effect.promise(() => client.query(`SELECT pg_advisory_unlock(${LockClass.historyPurge}, 0)`).catch(() => undefined)))
              )
              : Effect.succeed(Option.none<A>())
          )
        ),
      // A connection whose unlock may have failed is not given back to the pool with the lock on it.
      (client, exit) => Effect.sync(() => client.release(exit._tag === "Failure" ? true : undefined))
    ))

/** How often: a quarter of the window, between 1 s and 10 min. */
export const purgeInterval = (window: Duration.Duration) =>
  Duration.millis(Math.min(600_000, Math.max(1_000, Duration.toMillis(window) / 4)))

/** For a worker process's scope: purge periodically if configured, else nothing. */
export const runHistoryRetention = Effect.gen(function*() {
  const config = yield* CairnConfig
  if (Option.isNone(config.historyRetention)) return
  const window = config.historyRetention.value
  const every = purgeInterval(window)
  const round = withPurgeLock(purgeHistory({ olderThanSeconds: Duration.toSeconds(window) })).pipe(
    Effect.tap((r) =>
      Option.isSome(r) && r.value.graphs + r.value.revisions + r.value.resources > 0
        ? Effect.logInfo(`history purge: ${r.value.graphs} graph(s), ${r.value.tasks} task(s), ${r.value.futures} future(s), ` +
          `${r.value.revisions} revision(s), ${r.value.resources} resource(s) older than ${Duration.format(window)}`)
        : Effect.void
    ),
    Effect.catchAll((e) => Effect.logWarning(`history purge failed, trying again later: ${e.message}`))
  )
  const jittered = Effect.flatMap(Random.nextRange(0.5, 1.5), (f) => Effect.sleep(Duration.times(every, f)))
  yield* jittered.pipe(Effect.zipRight(round), Effect.repeat(Schedule.forever), Effect.forkScoped)
})
