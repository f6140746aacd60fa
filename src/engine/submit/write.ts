/**
 * Writing a planned graph: one transaction.
 *
 *   1. lock every resource key the graph uses (cairn_lock_keys: per key, in hash order; keys come
 *      before any row lock, the engine-wide order that keeps transactions from deadlocking);
 *   2. lock the referenced futures of earlier graphs FOR SHARE and read their states (a settle of one
 *      of them either committed before, and we see it settled, or waits for us, and then sees our
 *      consumers), which decide the pending input counts;
 *   3. insert graph, tasks (seq in FCFS order), futures, input edges and key rows: one statement;
 *   4. settle at once the tasks whose inputs already failed or were canceled (cascade);
 *   5. enqueue the rest (cairn_enqueue: key rows with no earlier conflict become free; tasks with
 *      nothing to wait for become ready) and send one NOTIFY; and, if the graph is large next to the
 *      tasks the planner knows of, analyze the engine's tables before committing
 *      (cairn_refresh_statistics), so that its first failure or claim is not planned from
 *      statistics that predate it.
 */
import { Effect } from "effect"
import { Db, type Tx } from "../../db/client.js"
import { toChanges } from "../notify.js"
import * as Q from "../queries/submit.js"
import { type GraphPlan, pendingInputs } from "./plan.js"

type GraphRow = { readonly id: string; readonly label: string | null }

export const writeGraph = (graph: GraphRow, plan: GraphPlan) =>
  Effect.flatMap(Db, (db) => db.transaction((tx) => writeGraphIn(tx, graph, plan)))

/** The same steps in a transaction the caller owns (a schedule's tick commits its claim with them). */
export const writeGraphIn = (tx: Tx, graph: GraphRow, plan: GraphPlan) =>
  Effect.gen(function*() {
    if (plan.allKeys.length > 0) yield* Q.lockKeys(tx, plan.allKeys)
    const external = plan.external.length > 0 ? yield* Q.lockFutures(tx, plan.external) : []
    const { tasks, failed } = pendingInputs(plan, external)
    yield* Q.insertGraph(tx, { ...graph, tasks, futures: plan.futures, inputs: plan.inputs, keys: plan.keys })
    const changes = failed.length > 0 ? yield* Q.settleConsumers(tx, failed) : toChanges({})
    yield* Q.enqueue(tx, tasks.map((t) => t.id), changes)
  })
