/**
 * Submission's statements (src/engine/submit/). A graph of any size is written by one statement
 * (`insertGraph`, rows passed as jsonb and unpacked by jsonb_to_recordset) and enqueued by one more
 * that also sends the wake-up; the key locks and the external inputs add one each when there are any.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type DbError, type Tx, txRows } from "../../db/client.js"
import { type Changes, toChanges } from "../notify.js"

const json = (v: unknown) => sql.param(JSON.stringify(v))

/** The kinds of these futures; a future id missing from the result does not exist. */
export const futureKinds = (on: Tx, futures: ReadonlyArray<string>) =>
  Effect.map(
    txRows<{ id: string; kind: string }>(on, sql`SELECT id, kind FROM futures WHERE id = ANY(${sql.param(futures)}::text[])`),
    (rows) => new Map(rows.map((r) => [r.id, r.kind]))
  )

/** cairn_lock_keys: the keys' transaction advisory locks, in hash order. */
export const lockKeys = (tx: Tx, keys: ReadonlyArray<string>) =>
  Effect.asVoid(txRows(tx, sql`SELECT cairn_lock_keys(${sql.param(keys)}::text[])`))

export interface LockedFuture {
  readonly id: string
  readonly state: "pending" | "resolved" | "failed" | "canceled"
}

/**
 * Locks these futures FOR SHARE (in id order) and reads their states: a settle of one of them
 * either committed before, and we see it settled, or waits for us, and then sees our consumers.
 */
export const lockFutures = (tx: Tx, futures: ReadonlyArray<string>) =>
  txRows<LockedFuture>(tx, sql`SELECT id, state FROM futures WHERE id = ANY(${sql.param(futures)}::text[]) ORDER BY id FOR SHARE`)

/** A `tasks` row to insert, in FCFS order. */
export interface TaskInsert {
  readonly id: string
  readonly node: string
  readonly kind: string
  readonly params: unknown
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
  readonly max_attempts: number
  readonly priority: number
  readonly retry_backoff_ms: number
  /** Inputs not yet resolved (see submit/plan.ts, `pendingInputs`). */
  readonly pending_inputs: number
}

export interface FutureInsert {
  readonly id: string
  readonly kind: string
  readonly producer: string
  readonly output: string
}

export interface InputInsert {
  readonly task: string
  readonly future: string
}

export interface KeyInsert {
  readonly task: string
  readonly key: string
  readonly exclusive: boolean
}

export interface GraphInsert {
  readonly id: string
  readonly label: string | null
  readonly tasks: ReadonlyArray<TaskInsert>
  readonly futures: ReadonlyArray<FutureInsert>
  readonly inputs: ReadonlyArray<InputInsert>
  readonly keys: ReadonlyArray<KeyInsert>
}

/**
 * Every row of the graph in one statement (one round trip, whatever the graph's size): graph,
 * tasks `blocked` with seq drawn in the order given (since PostgreSQL 9.6 volatile target-list
 * functions are evaluated after ORDER BY), futures `pending`, input edges, key rows with their
 * task's seq. The foreign keys between these rows are checked at the end of the statement, when
 * all exist.
 */
export const insertGraph = (tx: Tx, g: GraphInsert) =>
  Effect.asVoid(txRows(
    tx,
    sql`WITH g AS (
          INSERT INTO graphs (id, label) VALUES (${g.id}, ${g.label})
        ), t AS (
          INSERT INTO tasks (id, graph_id, node, kind, seq, params, state, pending_inputs, blocked_keys, exclusive, shared,
                             max_attempts, priority, retry_backoff_ms)
          SELECT t.id, ${g.id}, t.node, t.kind, nextval('tasks_seq_seq'), t.params, 'blocked', t.pending_inputs,
                 cardinality(t.exclusive) + cardinality(t.shared), t.exclusive, t.shared, t.max_attempts, t.priority, t.retry_backoff_ms
          FROM ROWS FROM (jsonb_to_recordset(${json(g.tasks)}::jsonb)
                 AS (id text, node text, kind text, params jsonb, exclusive text[], shared text[], max_attempts int,
                     priority int, retry_backoff_ms int, pending_inputs int))
               WITH ORDINALITY AS t(id, node, kind, params, exclusive, shared, max_attempts, priority, retry_backoff_ms, pending_inputs, ord)
          ORDER BY t.ord
          RETURNING id, seq
        ), f AS (
          INSERT INTO futures (id, kind, state, producer_task, output)
          SELECT f.id, f.kind, 'pending', f.producer, f.output
          FROM jsonb_to_recordset(${json(g.futures)}::jsonb) AS f(id text, kind text, producer text, output text)
        ), i AS (
          INSERT INTO task_inputs (task_id, future_id)
          SELECT i.task, i.future FROM jsonb_to_recordset(${json(g.inputs)}::jsonb) AS i(task text, future text)
        ), k AS (
          INSERT INTO task_keys (task_id, key, exclusive, seq)
          SELECT k.task, k.key, k.exclusive, t.seq
          FROM jsonb_to_recordset(${json(g.keys)}::jsonb) AS k(task text, key text, exclusive boolean)
          JOIN t ON t.id = k.task
        )
        SELECT 1`
  ))

/** Settles at once the consumers of these failed or canceled futures, and everything downstream. */
export const settleConsumers = (tx: Tx, futures: ReadonlyArray<string>): Effect.Effect<Changes, DbError> =>
  Effect.map(
    txRows<{ c: unknown }>(tx, sql`SELECT cairn_settle_cascade('{}'::text[], ${sql.param(futures)}::text[]) AS c`),
    (rows) => toChanges(rows[0]!.c)
  )

/**
 * Runs the submit hooks (cairn_on_submitted: other modules hold what the tasks will use, or refuse
 * with SQLSTATE CA002), enqueues the tasks behind their keys (cairn_enqueue: key rows with no
 * earlier conflict become free, tasks with nothing to wait for become ready), sends the
 * transaction's one NOTIFY with `changes` plus what became ready, and analyzes the engine's tables
 * if the graph is large next to what the planner knows of (cairn_refresh_statistics): one round
 * trip. (The hooks are in FROM, so they run before the target list; nothing commits if one raises.)
 */
export const enqueue = (tx: Tx, tasks: ReadonlyArray<string>, changes: Changes) =>
  Effect.asVoid(txRows(
    tx,
    sql`SELECT cairn_notify(jsonb_set(${json(changes)}::jsonb, '{ready}',
          to_jsonb(${changes.ready}::int + cairn_enqueue(${sql.param(tasks)}::text[])))),
          cairn_refresh_statistics(${tasks.length}::int)
        FROM (SELECT cairn_on_submitted(${sql.param(tasks)}::text[])) AS hooks`
  ))
