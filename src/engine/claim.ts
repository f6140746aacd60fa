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
import { Db } from "../db/client.js"

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

export const claimTasks = (workerId: string, limit: number) =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = yield* db.rows<{
      id: string
      graph_id: string
      kind: string
      params: unknown
      attempts: number
      inputs: Record<string, { kind: string; value: unknown }>
      outputs: Record<string, string>
      latency_ms: number
    }>(sql`SELECT * FROM cairn_claim(${workerId}, ${limit}::int)`)
    return rows.map((r): ClaimedTask => ({
      id: r.id,
      graphId: r.graph_id,
      kind: r.kind,
      params: r.params,
      attempts: r.attempts,
      inputs: r.inputs,
      outputs: r.outputs,
      claimLatencyMs: Number(r.latency_ms)
    }))
  }).pipe(Effect.withSpan("cairn.claim", { captureStackTrace: false }))
