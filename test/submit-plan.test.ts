/**
 * Planning a graph's rows without the database (src/engine/submit/plan.ts): the stable
 * topological FCFS order against a model, the rows, and the pending input counts.
 * test/engine-properties.test.ts checks the same order on the `seq` the database drew.
 */
import { Effect, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { defineKind } from "../src/engine/kind.js"
import { planGraph, stableTopologicalOrder } from "../src/engine/submit/plan.js"
import type { RefTarget, ValidNode } from "../src/engine/submit/validate.js"

const local = (node: string, output = "out"): RefTarget => ({ local: true, node, output })

/** The documented order, computed the slow way: repeatedly the earliest node (in body order) whose inputs are all placed. */
const modelOrder = (nodes: ReadonlyArray<{ name: string; deps: ReadonlyArray<string> }>) => {
  const placed: Array<string> = []
  const left = [...nodes]
  for (;;) {
    const i = left.findIndex((n) => n.deps.every((d) => placed.includes(d)))
    if (i < 0) break
    placed.push(left[i]!.name)
    left.splice(i, 1)
  }
  return { order: placed, cyclic: left.map((n) => n.name) }
}

/** Random graphs: each node may take data from any nodes (cycles included), or only from earlier ones in some hidden order (acyclic). */
const graphs = (acyclic: boolean) =>
  fc.integer({ min: 1, max: 14 }).chain((n) =>
    fc.tuple(
      fc.array(fc.array(fc.nat(n - 1), { maxLength: 3 }), { minLength: n, maxLength: n }),
      fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n })
    ).map(([deps, body]) =>
      // Node k may, when acyclic, only depend on nodes < k; body order is a shuffle of them.
      body.map((k) => ({
        name: `n${k}`,
        deps: [...new Set(deps[k]!.filter((d) => !acyclic || d < k).map((d) => `n${d}`))]
      }))
    )
  )

describe("stableTopologicalOrder", () => {
  it("is the model's order, and finds exactly the nodes on or behind a cycle", () => {
    for (const acyclic of [true, false]) {
      fc.assert(
        fc.property(graphs(acyclic), (nodes) => {
          const got = stableTopologicalOrder(nodes.map((n) => ({ name: n.name, refs: n.deps.map((d) => local(d)) })))
          const want = modelOrder(nodes)
          expect({ order: got.order.map((n) => n.name), cyclic: got.cyclic }).toEqual(want)
          if (acyclic) expect(got.cyclic).toEqual([])
        }),
        { numRuns: 500 }
      )
    }
  })

  it("keeps body order when it is already topological, and moves a node only behind what it needs", () => {
    const names = (nodes: Array<[string, Array<string>]>) =>
      stableTopologicalOrder(nodes.map(([name, deps]) => ({ name, refs: deps.map((d) => local(d)) }))).order.map((n) => n.name)
    expect(names([["a", []], ["b", ["a"]], ["c", []]])).toEqual(["a", "b", "c"])
    expect(names([["b", ["a"]], ["c", []], ["a", []], ["d", []]])).toEqual(["c", "a", "b", "d"])
    // A ref to a future of an earlier graph orders nothing; two refs to one node count once.
    const withExternal = stableTopologicalOrder([
      { name: "x", refs: [local("y"), local("y", "other"), { local: false, future: "F" }] },
      { name: "y", refs: [] }
    ])
    expect(withExternal.order.map((n) => n.name)).toEqual(["y", "x"])
  })
})

const kind = defineKind({
  name: "test.two",
  params: Schema.Unknown,
  outputs: { out: "value", other: "publication" },
  resources: () => ({ exclusive: [], shared: [] }),
  handler: () => Effect.succeed({})
})

const node = (name: string, refs: Array<RefTarget>, exclusive: Array<string> = [], shared: Array<string> = [], priority = 0): ValidNode => ({
  name,
  kind,
  taskId: `task-${name}`,
  outputs: { out: `${name}.out`, other: `${name}.other` },
  params: { of: name },
  foundRefs: [],
  refs,
  exclusive,
  shared,
  maxAttempts: 2,
  priority,
  retryBackoffMs: name === "b" ? 250 : 0
})

describe("planGraph", () => {
  const plan = planGraph([
    node("a", [{ local: false, future: "R" }, { local: false, future: "F" }, { local: false, future: "R" }], ["k1"], ["k2"]),
    node("b", [local("a"), local("a"), local("a", "other"), { local: false, future: "P" }], ["k2"]),
    node("c", [], [], ["k1", "k3"], -3)
  ])

  it("writes the nodes in the order given, one input edge per distinct future, one key row per key", () => {
    expect(plan.tasks).toEqual([
      { id: "task-a", node: "a", kind: "test.two", params: { of: "a" }, exclusive: ["k1"], shared: ["k2"], max_attempts: 2, priority: 0, retry_backoff_ms: 0 },
      { id: "task-b", node: "b", kind: "test.two", params: { of: "b" }, exclusive: ["k2"], shared: [], max_attempts: 2, priority: 0, retry_backoff_ms: 250 },
      { id: "task-c", node: "c", kind: "test.two", params: { of: "c" }, exclusive: [], shared: ["k1", "k3"], max_attempts: 2, priority: -3, retry_backoff_ms: 0 }
    ])
    expect(plan.futures).toContainEqual({ id: "b.other", kind: "publication", producer: "task-b", output: "other" })
    expect(plan.futures).toHaveLength(6)
    expect(plan.inputs).toEqual([
      { task: "task-a", future: "R" },
      { task: "task-a", future: "F" },
      { task: "task-b", future: "a.out" },
      { task: "task-b", future: "a.other" },
      { task: "task-b", future: "P" }
    ])
    expect(plan.keys).toEqual([
      { task: "task-a", key: "k1", exclusive: true },
      { task: "task-a", key: "k2", exclusive: false },
      { task: "task-b", key: "k2", exclusive: true },
      { task: "task-c", key: "k1", exclusive: false },
      { task: "task-c", key: "k3", exclusive: false }
    ])
    expect(plan.allKeys).toEqual(["k1", "k2", "k3"])
  })
})
