/**
 * Writing a planned graph: one call of cairn_submit (src/engine/sql/cairn_submit.sql), which locks
 * the graph's resource keys, locks its external inputs FOR SHARE and counts each task's pending
 * inputs from their states, inserts every row, settles at once the consumers of failed or canceled
 * inputs, runs the submit hooks, enqueues the tasks, sends the one NOTIFY and refreshes the
 * planner's statistics when the graph is large.
 *
 * A plain submission is that call alone, one autocommit statement on a pooled connection: one
 * round trip, no BEGIN or COMMIT (DESIGN.md §15 "Submission's round trips"); a deadlock or
 * serialization failure runs it again, as it would a transaction. A schedule's tick makes the same
 * call inside its own claim transaction (`writeGraphIn`).
 *
 * A refusal is SQLSTATE CA002 with a DETAIL { task id: [sentence, ...] }, from a submit hook (a
 * named resource deleted since validation) or from cairn_submit itself (an external input purged
 * since validation saw it): a 400 naming the nodes, with nothing written.
 */
import { Effect } from "effect"
import { Db, type DbError, retryConflicts, type Tx } from "../../db/client.js"
import { InvalidRequest } from "../errors.js"
import * as Q from "../queries/submit.js"
import type { GraphPlan } from "./plan.js"

/** SQLSTATE of a refused submission (src/engine/sql/cairn_submit.sql, cairn_on_submitted.sql). */
export const SUBMISSION_REFUSED = "CA002"

const refused = (sentences: Record<string, Array<string>>) => {
  const count = Object.keys(sentences).length
  return new InvalidRequest({
    message: `the graph is invalid: ${count} node${count === 1 ? "" : "s"} failed validation`,
    details: { nodes: sentences }
  })
}

/** Per node, the sentences of a refusal (its DETAIL: task id -> sentences). */
const refusal = (e: DbError, plan: GraphPlan): InvalidRequest | DbError => {
  let cause = e.cause as { detail?: unknown; cause?: unknown } | undefined
  while (cause && typeof cause.detail !== "string" && cause.cause) cause = cause.cause as typeof cause
  let detail: Record<string, Array<string>> = {}
  try {
    detail = JSON.parse(String(cause?.detail ?? "{}")) as Record<string, Array<string>>
  } catch {
    return e
  }
  const byNode: Record<string, Array<string>> = Object.create(null)
  for (const t of plan.tasks) if (detail[t.id]) byNode[t.node] = detail[t.id]!
  return Object.keys(byNode).length > 0 ? refused(byNode) : e
}

type GraphRow = { readonly id: string; readonly label: string | null }

const submit = (on: Tx, graph: GraphRow, plan: GraphPlan) =>
  Q.submit(on, { ...graph, tasks: plan.tasks, futures: plan.futures, inputs: plan.inputs, keys: plan.keys }).pipe(
    Effect.catchIf((e) => e.code === SUBMISSION_REFUSED, (e) => Effect.fail(refusal(e, plan)))
  )

/** One autocommit statement. */
export const writeGraph = (graph: GraphRow, plan: GraphPlan) =>
  Effect.flatMap(Db, (db) => retryConflicts(submit(db.db, graph, plan)))

/** The same call in a transaction the caller owns (a schedule's tick commits its claim with it). */
export const writeGraphIn = (tx: Tx, graph: GraphRow, plan: GraphPlan) => submit(tx, graph, plan)
