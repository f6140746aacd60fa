/**
 * Cancellation's statements (src/engine/cancel.ts): what there is to cancel, and `cairn_cancel`,
 * which settles blocked and ready tasks at once and flags running ones.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type DbError, type Tx, txRows } from "../../db/client.js"
import type { TaskState } from "../views.js"
import { type Changes, toChanges } from "../notify.js"

/** The task's state, or undefined if there is no such task. */
export const taskState = (on: Tx, task: string) =>
  Effect.map(txRows<{ state: TaskState }>(on, sql`SELECT state FROM tasks WHERE id = ${task}`), (rows) => rows[0]?.state)

export const graphExists = (on: Tx, graph: string) =>
  Effect.map(txRows<{ id: string }>(on, sql`SELECT id FROM graphs WHERE id = ${graph}`), (rows) => rows.length > 0)

/** The graph's tasks that are not settled yet. */
export const unsettledTasks = (on: Tx, graph: string) =>
  Effect.map(
    txRows<{ id: string }>(on, sql`SELECT id FROM tasks WHERE graph_id = ${graph} AND state IN ('blocked', 'ready', 'running')`),
    (rows) => rows.map((r) => r.id)
  )

/** cairn_cancel: what it settled or flagged, for the transaction's one NOTIFY. */
export const cancel = (on: Tx, tasks: ReadonlyArray<string>): Effect.Effect<Changes, DbError> =>
  Effect.map(txRows<{ c: unknown }>(on, sql`SELECT cairn_cancel(${sql.param(tasks)}::text[]) AS c`), (rows) => toChanges(rows[0]!.c))
