/**
 * The worker runtime's statements besides claiming and settling: registration on the session
 * connection, heartbeat, cancel flags, reaping, progress, unregistration (src/engine/worker/).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import type pg from "pg"
import { type Tx, txRows } from "../../db/client.js"
import type { Progress } from "../kind.js"
import { notified } from "./settle.js"

export interface Registration {
  readonly id: string
  readonly name: string
  readonly host: string
  readonly pid: number
  readonly slots: number
}

/**
 * Inserts the worker's row and takes its liveness lock, the session advisory lock (2, lock_key),
 * in one statement, so one implicit transaction: the lock is held exactly when the row exists.
 * It runs on the session's own connection, not the pool's, because the lock must live and die with
 * that connection: "lock free" means "this worker is dead".
 */
export const register = (client: pg.Client, w: Registration) =>
  client.query(
    `WITH w AS (
       INSERT INTO workers (id, name, host, pid, slots, backend_pid)
       VALUES ($1, $2, $3, $4, $5, pg_backend_pid()) RETURNING lock_key
     )
     SELECT pg_advisory_lock(2, lock_key::integer) FROM w`,
    [w.id, w.name, w.host, w.pid, w.slots]
  )

export interface HeartbeatRow {
  /** Running tasks of this worker whose cancel was requested (a lost notification's safety net). */
  readonly cancels: Array<string>
}

/** Stamps the heartbeat. No row: the worker's row is gone, another worker declared it dead. */
export const heartbeat = (on: Tx, worker: string) =>
  txRows<HeartbeatRow>(
    on,
    sql`UPDATE workers SET last_heartbeat = now() WHERE id = ${worker}
        RETURNING (SELECT coalesce(array_agg(id), '{}') FROM tasks
                   WHERE state = 'running' AND worker_id = ${worker} AND cancel_requested) AS cancels`
  )

/** Running tasks of `worker` whose cancel was requested. */
export const cancelRequested = (on: Tx, worker: string) =>
  Effect.map(
    txRows<{ id: string }>(on, sql`SELECT id FROM tasks WHERE state = 'running' AND worker_id = ${worker} AND cancel_requested`),
    (rows) => rows.map((r) => r.id)
  )

/**
 * One round of the reaper (cairn_reap): declares dead every worker whose liveness lock is free or
 * whose heartbeat is older than `staleMs`, and retries, cancels or fails their running tasks.
 * Undefined when another reaper was at work (it try-locks) or nothing was found.
 */
export const reap = (on: Tx, worker: string, staleMs: number) =>
  notified(on, sql`cairn_reap(${worker}, ${`${staleMs} milliseconds`}::interval)`)

/**
 * cairn_wake_retries: retries whose wait is over join the ready queue, idle workers are woken for
 * them, and the result says when the next retry still waiting is due (`retryInMs`).
 */
export const wakeRetries = (on: Tx) => notified(on, sql`cairn_wake_retries()`)

/** Writes a running task's progress, if `worker` still runs it. */
export const writeProgress = (on: Tx, task: string, worker: string, progress: Progress | undefined) =>
  Effect.asVoid(txRows(
    on,
    sql`UPDATE tasks SET progress = ${JSON.stringify(progress)}::jsonb
        WHERE id = ${task} AND state = 'running' AND worker_id = ${worker}`
  ))

/** Deletes the worker's row (its tasks have been settled or handed back). */
export const unregister = (on: Tx, worker: string) =>
  Effect.asVoid(txRows(on, sql`DELETE FROM workers WHERE id = ${worker}`))
