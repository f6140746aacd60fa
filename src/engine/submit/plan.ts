/**
 * Planning a valid graph's rows, without the database.
 *
 * FCFS order within a graph is the order of `nodes` in the request body, except that a node is
 * never placed before a node it takes data from (a stable topological order): the literal body order
 * would deadlock a node that needs the output of a later node holding the same key. When body order
 * is already topological (the usual case) it is exactly body order.
 */
import type { FutureInsert, InputInsert, KeyInsert, TaskInsert } from "../queries/submit.js"
import type { ReferencingNode, ValidNode } from "./validate.js"

/**
 * Kahn's algorithm, always taking the earliest node in body order (array order) among those
 * available. Nodes on or behind a dependency cycle are never available: they are `cyclic`.
 */
export const stableTopologicalOrder = <N extends Pick<ReferencingNode, "name" | "refs">>(nodes: ReadonlyArray<N>) => {
  const indexOf = new Map(nodes.map((n, i) => [n.name, i]))
  const indeg = nodes.map(() => 0)
  const dependents = nodes.map((): Array<number> => [])
  nodes.forEach((n, i) => {
    const deps = new Set(n.refs.flatMap((r) => (r.local ? [r.node] : [])))
    for (const d of deps) {
      indeg[i]! += 1
      dependents[indexOf.get(d)!]!.push(i)
    }
  })
  // A binary heap would be O(n log n); body order is usually already topological, so a sorted
  // insertion into a small "available" list is fine and simpler.
  const available = nodes.flatMap((_, i) => (indeg[i] === 0 ? [i] : []))
  const order: Array<N> = []
  while (available.length > 0) {
    const i = available.shift()!
    order.push(nodes[i]!)
    for (const m of dependents[i]!) {
      indeg[m]! -= 1
      if (indeg[m] === 0) {
        let at = available.findIndex((x) => x > m)
        if (at < 0) at = available.length
        available.splice(at, 0, m)
      }
    }
  }
  const cyclic = nodes.filter((_, i) => indeg[i]! > 0).map((n) => n.name)
  return { order, cyclic }
}

/**
 * A graph's rows, its nodes in FCFS order. What depends on the database's state at the write (the
 * external inputs' states, hence the pending input counts) is decided by cairn_submit under its locks.
 */
export interface GraphPlan {
  readonly tasks: ReadonlyArray<TaskInsert>
  readonly futures: ReadonlyArray<FutureInsert>
  readonly inputs: ReadonlyArray<InputInsert>
  readonly keys: ReadonlyArray<KeyInsert>
  /** Every distinct resource key. */
  readonly allKeys: ReadonlyArray<string>
}

/** The rows of `ordered` (valid nodes in FCFS order). */
export const planGraph = (ordered: ReadonlyArray<ValidNode>): GraphPlan => {
  const byName = new Map(ordered.map((n) => [n.name, n]))
  const tasks = ordered.map((n) => ({
    id: n.taskId,
    node: n.name,
    kind: n.kind.name,
    params: n.params,
    exclusive: n.exclusive,
    shared: n.shared,
    max_attempts: n.maxAttempts,
    priority: n.priority,
    retry_backoff_ms: n.retryBackoffMs
  }))
  const futures = ordered.flatMap((n) =>
    Object.entries(n.outputs).map(([output, id]) => ({ id, kind: n.kind.outputs[output]!, producer: n.taskId, output }))
  )
  // One edge per distinct input future, even if params refer to it twice.
  const inputs = ordered.flatMap((n) =>
    [...new Set(n.refs.map((r) => (r.local ? byName.get(r.node)!.outputs[r.output]! : r.future)))]
      .map((future) => ({ task: n.taskId, future }))
  )
  const keys = ordered.flatMap((n) => [
    ...n.exclusive.map((key) => ({ task: n.taskId, key, exclusive: true })),
    ...n.shared.map((key) => ({ task: n.taskId, key, exclusive: false }))
  ])
  return { tasks, futures, inputs, keys, allKeys: [...new Set(keys.map((k) => k.key))] }
}
