/**
 * Submission's statements (src/engine/submit/): the kinds of referenced futures, read while
 * validating, and the submission itself, one call of cairn_submit whatever the graph's size.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../../db/client.js"

const json = (v: unknown) => sql.param(JSON.stringify(v))

/** The kinds of these futures; a future id missing from the result does not exist. */
export const futureKinds = (on: Tx, futures: ReadonlyArray<string>) =>
  Effect.map(
    txRows<{ id: string; kind: string }>(on, sql`SELECT id, kind FROM futures WHERE id = ANY(${sql.param(futures)}::text[])`),
    (rows) => new Map(rows.map((r) => [r.id, r.kind]))
  )

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
 * The whole submission in one statement (cairn_submit, src/engine/sql/cairn_submit.sql): key
 * locks, the external inputs locked FOR SHARE, every row, the cascade from failed inputs, the
 * submit hooks, enqueue, the NOTIFY and the statistics. On a pooled connection it is one
 * autocommit round trip; in a transaction, one statement of it. Rows go as jsonb, whatever the
 * graph's size.
 */
export const submit = (on: Tx, g: GraphInsert) =>
  Effect.asVoid(txRows(
    on,
    sql`SELECT cairn_submit(${g.id}, ${g.label}, ${json(g.tasks)}::jsonb, ${json(g.futures)}::jsonb,
                            ${json(g.inputs)}::jsonb, ${json(g.keys)}::jsonb)`
  ))
