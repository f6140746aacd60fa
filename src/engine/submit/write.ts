/**
 * Writing a planned graph: one transaction.
 *
 *   1. lock every resource key the graph uses (cairn_lock_keys: per key, in hash order; keys come
 *      before any row lock, the engine-wide order that keeps transactions from deadlocking);
 *   2. lock the referenced futures of earlier graphs FOR SHARE and read their states (a settle of one
 *      of them either committed before, and we see it settled, or waits for us, and then sees our
 *      consumers), which decide the pending input counts;
 *   3. insert graph, tasks (seq in FCFS order), futures, input edges and key rows: one statement;
 *      A referenced future that is gone by now (history.purge deleted it after validation saw it)
 *      refuses the submission: 400 naming the nodes;
 *   4. settle at once the tasks whose inputs already failed or were canceled (cascade);
 *   5. let other modules hold what the tasks will use (cairn_on_submitted runs the registered
 *      submit hooks; one refuses with SQLSTATE CA002, which is a 400 naming the nodes), enqueue the
 *      tasks (cairn_enqueue: key rows with no earlier conflict become free; tasks with nothing to
 *      wait for become ready) and send one NOTIFY; and, if the graph is large next to the tasks the
 *      planner knows of, analyze the engine's tables before committing (cairn_refresh_statistics),
 *      so that its first failure or claim is not planned from statistics that predate it.
 */
import { Effect } from "effect"
import { Db, type DbError, type Tx } from "../../db/client.js"
import { InvalidRequest } from "../errors.js"
import { toChanges } from "../notify.js"
import * as Q from "../queries/submit.js"
import { type GraphPlan, pendingInputs } from "./plan.js"

/** SQLSTATE a submit hook raises to refuse a submission (src/engine/sql/cairn_on_submitted.sql). */
export const SUBMISSION_REFUSED = "CA002"

const refused = (sentences: Record<string, Array<string>>) => {
  const count = Object.keys(sentences).length
  return new InvalidRequest({
    message: `the graph is invalid: ${count} node${count === 1 ? "" : "s"} failed validation`,
    details: { nodes: sentences }
  })
}

/** Per node, the sentences of a submit hook's refusal (its DETAIL: task id -> sentences). */
const hookProblems = (e: DbError, plan: GraphPlan): InvalidRequest | DbError => {
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

export const writeGraph = (graph: GraphRow, plan: GraphPlan) =>
  Effect.flatMap(Db, (db) => db.transaction((tx) => writeGraphIn(tx, graph, plan)))

/** The same steps in a transaction the caller owns (a schedule's tick commits its claim with them). */
export const writeGraphIn = (tx: Tx, graph: GraphRow, plan: GraphPlan) =>
  Effect.gen(function*() {
    if (plan.allKeys.length > 0) yield* Q.lockKeys(tx, plan.allKeys)
    const external = plan.external.length > 0 ? yield* Q.lockFutures(tx, plan.external) : []
    if (external.length < plan.external.length) {
      const found = new Set(external.map((f) => f.id))
      const gone = new Set(plan.external.filter((f) => !found.has(f)))
      const byNode: Record<string, Array<string>> = Object.create(null)
      for (const i of plan.inputs) {
        if (!gone.has(i.future)) continue
        const node = plan.tasks.find((t) => t.id === i.task)!.node
        ;(byNode[node] ??= []).push(`input ${i.future} no longer exists (its graph was purged)`)
      }
      return yield* refused(byNode)
    }
    const { tasks, failed } = pendingInputs(plan, external)
    yield* Q.insertGraph(tx, { ...graph, tasks, futures: plan.futures, inputs: plan.inputs, keys: plan.keys })
    const changes = failed.length > 0 ? yield* Q.settleConsumers(tx, failed) : toChanges({})
    yield* Q.enqueue(tx, tasks.map((t) => t.id), changes).pipe(
      Effect.catchIf((e) => e.code === SUBMISSION_REFUSED, (e) => Effect.fail(hookProblems(e, plan)))
    )
  })
