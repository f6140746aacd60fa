/**
 * Claiming ready work: one statement, `cairn_claim` (src/engine/sql/cairn_claim.sql). The
 * partial index `tasks_ready (seq) WHERE state = 'ready'` holds only ready rows, so the cost is
 * O(log ready + claimed) whatever the number of blocked or finished tasks; SKIP LOCKED hands
 * concurrent claimers disjoint rows without waiting. The same statement returns each task's
 * resolved input values, saving a round trip before it runs. Ready tasks are taken in submission
 * order (seq), so the oldest ready work goes first. A claim that filled its slots and saw ready work
 * left over wakes idle workers for it (the baton: wake-ups name only a few idle workers).
 * A worker also claims in its settle statement (queries/settle.ts, `settleBatch`), with the
 * columns below.
 */
import { type SQL, sql } from "drizzle-orm"
import { type Tx, txRows } from "../../db/client.js"

/** A task as a worker claimed it: everything it needs to run, without another statement. */
export interface ClaimedTask {
  readonly id: string
  readonly graphId: string
  readonly kind: string
  readonly params: unknown
  readonly attempts: number
  readonly inputs: Record<string, { kind: string; value: unknown }>
  /** Output name -> future id. */
  readonly outputs: Record<string, string>
  /** Milliseconds from ready to claimed (float8: node-pg reads it as a number). */
  readonly claimLatencyMs: number
}

/** The columns of a ClaimedTask, from a row of `cairn_claim` named `cl`. */
export const claimedColumns: SQL = sql.raw(
  `cl.id, cl.graph_id AS "graphId", cl.kind, cl.params, cl.attempts, cl.inputs, cl.outputs, cl.latency_ms AS "claimLatencyMs"`
)

/** Claims up to `limit` ready tasks for `workerId`, oldest first. */
export const claim = (on: Tx, workerId: string, limit: number) =>
  txRows<ClaimedTask>(on, sql`SELECT ${claimedColumns} FROM cairn_claim(${workerId}, ${limit}::int) cl`)
