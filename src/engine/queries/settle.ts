/**
 * Settling a running task: one engine function per outcome (src/engine/sql/cairn_resolve.sql,
 * cairn_fail.sql, cairn_release.sql), each matching `state = 'running' AND worker_id = $worker AND attempts = $attempt`, so a
 * worker that lost its task (reaped, canceled, taken over) changes nothing and gets no row back.
 *
 * Each call is wrapped in `cairn_notify`, which sends the wake-up from SQL and returns its argument:
 * on the pool it is one autocommit statement (one round trip, the NOTIFY in the same implicit
 * transaction); inside a `Commit` transaction it is the last statement before COMMIT.
 *
 * A worker settles its autocommit settles in batches (`settleBatch`, src/engine/sql/
 * cairn_settle_batch.sql: each settle fenced as above) and claims the tasks for the slots they free
 * in the same statement: one round trip and one commit for a batch. The claim runs after the
 * settles (it is a lateral join on their result), so it sees what they made ready, and claims
 * nothing for a settle that matched nothing: a worker that lost its task may have lost its
 * registration too.
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { type DbError, type Tx, txRows } from "../../db/client.js"
import type { OutputValues } from "../kind.js"
import { type Changes, toChanges } from "../notify.js"
import { type ClaimedTask, claimedColumns } from "./claim.js"

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

/**
 * One settle of a batch (cairn_settle_batch's element): a success with its output values, or a
 * failure or cancel; `refill` tasks are claimed for its slot if it matched.
 */
export type BatchSettle =
  | { readonly task: string; readonly attempt: number; readonly refill: number; readonly values: OutputValues }
  | {
    readonly task: string
    readonly attempt: number
    readonly refill: number
    readonly how: "failed" | "canceled"
    readonly code: string
    readonly message: string
  }

const batchElement = (s: BatchSettle) =>
  "values" in s
    ? { t: s.task, a: s.attempt, n: s.refill, v: s.values }
    : { t: s.task, a: s.attempt, n: s.refill, s: s.how, c: s.code, m: s.message }

/**
 * The settles of one worker generation in one autocommit statement (cairn_settle_batch, each still
 * fenced by task, worker and attempt), then, in the same statement, `cairn_claim` of the tasks for
 * the slots of those that matched. `changes[i]` is what settle i changed (the batch's wake-up is
 * sent once), or undefined when its task was no longer this attempt's.
 */
export const settleBatch = (
  on: Tx,
  worker: string,
  settles: ReadonlyArray<BatchSettle>
): Effect.Effect<{ readonly changes: ReadonlyArray<Changes | undefined>; readonly claimed: ReadonlyArray<ClaimedTask> }, DbError> =>
  Effect.map(
    txRows<ClaimedTask & { b: { results: Array<unknown>; claim: number } }>(
      on,
      sql`WITH s AS MATERIALIZED (SELECT cairn_settle_batch(${worker}, ${JSON.stringify(settles.map(batchElement))}::jsonb) AS b)
          SELECT s.b, ${claimedColumns}
          FROM s LEFT JOIN LATERAL cairn_claim(${worker}, (s.b->>'claim')::int) cl ON true`
    ),
    (rows) => ({
      changes: settles.map((_, i) => {
        const c = rows[0]?.b.results[i]
        return c == null ? undefined : toChanges(c)
      }),
      claimed: rows.filter((r) => r.id != null).map(({ b: _, ...task }) => task)
    })
  )

/** The settle function of a success: outputs resolved with `values`, consumers and queues released. */
export const resolveCall = (a: Attempt, values: OutputValues) =>
  sql`cairn_resolve(${a.task}, ${a.worker}, ${a.attempt}, ${JSON.stringify(values)}::jsonb)`

/** The settle function of a failure or cancel: ready again while attempts remain (and not canceled), otherwise settled with a cascade. */
export const failCall = (a: Attempt, how: "failed" | "canceled", code: string, message: string) =>
  sql`cairn_fail(${a.task}, ${a.worker}, ${a.attempt}, ${how}, ${code}, ${message})`

/** Succeeded (resolveCall). */
export const resolve = (on: Tx, a: Attempt, values: OutputValues) => notified(on, resolveCall(a, values))

/** Failed or canceled (failCall). */
export const fail = (on: Tx, a: Attempt, how: "failed" | "canceled", code: string, message: string) =>
  notified(on, failCall(a, how, code, message))

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
