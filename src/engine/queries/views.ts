/**
 * The read models' statements (src/engine/views.ts). A view of n tasks is four statements, whatever
 * n is: the task rows, then their outputs, inputs and blockers by id array.
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../../db/client.js"
import type { ErrorView, FutureState, TaskState, TaskView } from "../views.js"

/** Which tasks, in which order: every condition given must hold. */
export interface TaskSelection {
  readonly id?: string | undefined
  readonly graph?: string | undefined
  readonly state?: TaskState | undefined
  readonly kind?: string | undefined
  /** Only tasks with an id below this one (ids are ULIDs: older tasks). */
  readonly before?: string | undefined
  /** `seq`: FCFS order (a graph's nodes); `newest`: by id, newest first. */
  readonly order: "seq" | "newest"
  readonly limit?: number | undefined
}

export interface TaskRow {
  readonly id: string
  readonly graph_id: string
  readonly node: string
  readonly kind: string
  readonly state: TaskState
  readonly params: unknown
  readonly exclusive: Array<string>
  readonly shared: Array<string>
  /** The worker's name, or its id once its row is gone. */
  readonly worker: string | null
  readonly attempts: number
  readonly max_attempts: number
  readonly priority: number
  readonly retry_backoff_ms: number
  /** Set while a ready task waits for its retry. */
  readonly run_after: Date | null
  readonly created_at: Date
  readonly ready_at: Date | null
  readonly started_at: Date | null
  readonly finished_at: Date | null
  readonly error: ErrorView | null
  readonly progress: TaskView["progress"] | null
  readonly seq: string
}

export const taskRows = (on: Tx, s: TaskSelection) => {
  const conds: Array<SQL> = [sql`true`]
  if (s.id !== undefined) conds.push(sql`t.id = ${s.id}`)
  if (s.graph) conds.push(sql`t.graph_id = ${s.graph}`)
  if (s.state) conds.push(sql`t.state = ${s.state}`)
  if (s.kind) conds.push(sql`t.kind = ${s.kind}`)
  if (s.before) conds.push(sql`t.id < ${s.before}`)
  return txRows<TaskRow>(on, sql`
    SELECT t.id, t.graph_id, t.node, t.kind, t.state, t.params, t.exclusive, t.shared,
           coalesce(w.name, t.worker_id) AS worker, t.attempts, t.max_attempts, t.priority, t.retry_backoff_ms, t.run_after,
           t.created_at, t.ready_at,
           t.started_at, t.finished_at, t.error, t.progress, t.seq
    FROM tasks t LEFT JOIN workers w ON w.id = t.worker_id
    WHERE ${sql.join(conds, sql` AND `)} ORDER BY ${s.order === "seq" ? sql`t.seq` : sql`t.id DESC`}
    ${s.limit === undefined ? sql`` : sql`LIMIT ${s.limit}`}`)
}

export interface OutputRow {
  readonly producer_task: string
  readonly output: string
  readonly id: string
}

/** The output futures of these tasks. */
export const outputsOf = (on: Tx, tasks: ReadonlyArray<string>) =>
  txRows<OutputRow>(on, sql`SELECT producer_task, output, id FROM futures WHERE producer_task = ANY(${sql.param(tasks)}::text[])`)

export interface InputRow {
  readonly task_id: string
  readonly future: string
  readonly producer: string
  readonly state: FutureState
}

/** The input futures of these tasks, with their producers and states. */
export const inputsOf = (on: Tx, tasks: ReadonlyArray<string>) =>
  txRows<InputRow>(on, sql`
    SELECT ti.task_id, f.id AS future, f.producer_task AS producer, f.state
    FROM task_inputs ti JOIN futures f ON f.id = ti.future_id
    WHERE ti.task_id = ANY(${sql.param(tasks)}::text[]) ORDER BY f.id`)

export interface BlockerRow {
  readonly task_id: string
  readonly key: string
  readonly blocker: string | null
}

/** For each key these (blocked) tasks wait on: the nearest earlier unsettled task they conflict with. */
export const blockersOf = (on: Tx, tasks: ReadonlyArray<string>) =>
  txRows<BlockerRow>(on, sql`
    SELECT tk.task_id, tk.key,
           (SELECT o.task_id FROM task_keys o
            WHERE o.key = tk.key AND o.seq < tk.seq AND (o.exclusive OR tk.exclusive)
            ORDER BY o.seq DESC LIMIT 1) AS blocker
    FROM task_keys tk WHERE tk.task_id = ANY(${sql.param(tasks)}::text[]) AND NOT tk.free ORDER BY tk.key`)

export interface GraphRow {
  readonly id: string
  readonly label: string | null
  readonly created_at: Date
}

export const graphRow = (on: Tx, graph: string) =>
  Effect.map(txRows<GraphRow>(on, sql`SELECT id, label, created_at FROM graphs WHERE id = ${graph}`), (rows) => rows[0])

export interface FutureRow {
  readonly id: string
  readonly kind: string
  readonly state: FutureState
  readonly producer_task: string
  readonly created_at: Date
  readonly settled_at: Date | null
  readonly value: unknown
  readonly error: ErrorView | null
}

export const futureRow = (on: Tx, future: string) =>
  Effect.map(
    txRows<FutureRow>(on, sql`SELECT id, kind, state, producer_task, created_at, settled_at, value, error FROM futures WHERE id = ${future}`),
    (rows) => rows[0]
  )
