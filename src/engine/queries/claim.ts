/**
 * Claiming ready work: one statement, `cairn_claim` (drizzle/0009_targeted_wakeups.sql). The
 * partial index `tasks_ready (seq) WHERE state = 'ready'` holds only ready rows, so the cost is
 * O(log ready + claimed) whatever the number of blocked or finished tasks; SKIP LOCKED hands
 * concurrent claimers disjoint rows without waiting. The same statement returns each task's
 * resolved input values, saving a round trip before it runs. Ready tasks are taken in submission
 * order (seq), so the oldest ready work goes first. A claim that filled its slots and saw ready work
 * left over wakes idle workers for it (the baton: wake-ups name only a few idle workers).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
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
  /** Milliseconds from ready to claimed. */
  readonly claimLatencyMs: number
}

interface ClaimRow {
  readonly id: string
  readonly graph_id: string
  readonly kind: string
  readonly params: unknown
  readonly attempts: number
  readonly inputs: Record<string, { kind: string; value: unknown }>
  readonly outputs: Record<string, string>
  readonly latency_ms: number
}

/** Claims up to `limit` ready tasks for `workerId`, oldest first. */
export const claim = (on: Tx, workerId: string, limit: number) =>
  Effect.map(
    txRows<ClaimRow>(on, sql`SELECT * FROM cairn_claim(${workerId}, ${limit}::int)`),
    (rows) =>
      rows.map((r): ClaimedTask => ({
        id: r.id,
        graphId: r.graph_id,
        kind: r.kind,
        params: r.params,
        attempts: r.attempts,
        inputs: r.inputs,
        outputs: r.outputs,
        claimLatencyMs: Number(r.latency_ms)
      }))
  )
