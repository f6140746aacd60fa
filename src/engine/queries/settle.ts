/**
 * Settling a running task: one engine function per outcome (src/engine/sql/cairn_resolve.sql,
 * cairn_fail.sql, cairn_release.sql), each matching `state = 'running' AND worker_id = $worker AND attempts = $attempt`, so a
 * worker that lost its task (reaped, canceled, taken over) changes nothing and gets no row back.
 *
 * Each call is wrapped in `cairn_notify`, which sends the wake-up from SQL and returns its argument:
 * on the pool it is one autocommit statement (one round trip, the NOTIFY in the same implicit
 * transaction); inside a `Commit` transaction it is the last statement before COMMIT.
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { type DbError, type Tx, txRows } from "../../db/client.js"
import type { OutputValues } from "../kind.js"
import { type Changes, toChanges } from "../notify.js"

/** One attempt of a task, as the worker that runs it names it in every settle. */
export interface Attempt {
  readonly task: string
  readonly worker: string
  readonly attempt: number
}

/**
 * `SELECT cairn_notify(<fn>)`: the changes the function reported (and announced), or undefined
 * when it matched nothing (the task is no longer this attempt's).
 */
export const notified = (on: Tx, fn: SQL): Effect.Effect<Changes | undefined, DbError> =>
  Effect.map(
    txRows<{ c: unknown }>(on, sql`SELECT cairn_notify(${fn}) AS c`),
    (rows) => (rows[0]?.c == null ? undefined : toChanges(rows[0].c))
  )

/** Succeeded: outputs resolved with `values`, consumers and queues released. */
export const resolve = (on: Tx, a: Attempt, values: OutputValues) =>
  notified(on, sql`cairn_resolve(${a.task}, ${a.worker}, ${a.attempt}, ${JSON.stringify(values)}::jsonb)`)

/** Failed or canceled: ready again while attempts remain (and not canceled), otherwise settled with a cascade. */
export const fail = (on: Tx, a: Attempt, how: "failed" | "canceled", code: string, message: string) =>
  notified(on, sql`cairn_fail(${a.task}, ${a.worker}, ${a.attempt}, ${how}, ${code}, ${message})`)

/** Handed back at shutdown: ready again, the attempt not spent. */
export const release = (on: Tx, a: Attempt) =>
  notified(on, sql`cairn_release(${a.task}, ${a.worker}, ${a.attempt})`)

/**
 * Takes the resource-key locks of `task` (and of the blocked tasks downstream it could cascade
 * into): keys before rows, the engine-wide lock order, so a `Commit` takes them before writing its
 * payload rows.
 */
export const lockTaskKeys = (on: Tx, task: string) =>
  Effect.asVoid(txRows(on, sql`SELECT cairn_lock_task_keys(ARRAY[${task}]::text[], false)`))
