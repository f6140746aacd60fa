/**
 * Claiming ready work: one statement. The partial index `tasks_ready (seq) WHERE state = 'ready'`
 * holds only ready rows, so the cost is O(log ready + claimed) whatever the number of blocked or
 * finished tasks; SKIP LOCKED hands concurrent claimers disjoint rows without waiting. The same
 * statement returns each task's resolved input values, saving a round trip before it runs.
 * Ready tasks are taken in submission order (seq), so the oldest ready work goes first.
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
    }>(sql`
      WITH picked AS (
        SELECT id FROM tasks WHERE state = 'ready' ORDER BY seq LIMIT ${limit} FOR UPDATE SKIP LOCKED
      )
      UPDATE tasks t
      SET state = 'running', worker_id = ${workerId}, started_at = clock_timestamp(), attempts = t.attempts + 1
      FROM picked
      WHERE t.id = picked.id
      RETURNING t.id, t.graph_id, t.kind, t.params, t.attempts,
        extract(epoch FROM clock_timestamp() - t.ready_at) * 1000 AS latency_ms,
        (SELECT coalesce(jsonb_object_agg(f.id, jsonb_build_object('kind', f.kind, 'value', f.value)), '{}'::jsonb)
         FROM task_inputs ti JOIN futures f ON f.id = ti.future_id WHERE ti.task_id = t.id) AS inputs,
        (SELECT coalesce(jsonb_object_agg(o.output, o.id), '{}'::jsonb) FROM futures o WHERE o.producer_task = t.id) AS outputs`)
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
