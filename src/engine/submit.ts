/**
 * Graph submission: validate the whole graph (submit/validate.ts), plan its rows (submit/plan.ts),
 * then write it with one statement (submit/write.ts, cairn_submit). `prepareGraph` is the first two
 * steps alone: schedules validate a graph with it at create and update without submitting it, and
 * at each tick write what it prepared inside their own claim transaction (src/schedules/ticks.ts).
 *
 * Validation happens before anything is written and reports every offending node at once
 * (`details.nodes.<name>` is a list of sentences); only two of its steps read the database: the
 * existence of referenced futures of earlier graphs, and the kinds' `prepare`.
 */
import { Effect, Option } from "effect"
import { monotonicFactory } from "ulid"
import { Db, type DbError } from "../db/client.js"
import { InvalidRequest } from "./errors.js"
import { type ParamProblems, TaskKinds } from "./kind.js"
import { futureKinds } from "./queries/submit.js"
import { planGraph, stableTopologicalOrder } from "./submit/plan.js"
import {
  checkNodes,
  checkParams,
  MAX_GRAPH_KEYS,
  MAX_NODES,
  missingFutures,
  Problems,
  resolveRefs,
  storedParams,
  type ValidNode
} from "./submit/validate.js"
import type { GraphPlan } from "./submit/plan.js"
import { writeGraph } from "./submit/write.js"

export {
  MAX_GRAPH_KEYS,
  MAX_KEY_LENGTH,
  MAX_NODE_KEYS,
  MAX_NODES,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
  NODE_NAME,
  NodeSpec,
  ULID
} from "./submit/validate.js"

export interface GraphSpec {
  readonly label?: string | undefined
  /** Node name -> node; each value is checked against NodeSpec here. */
  readonly nodes: Readonly<Record<string, unknown>>
}

export interface SubmittedGraph {
  readonly id: string
  readonly nodes: Record<string, { readonly task: string; readonly outputs: Record<string, string> }>
}

/** A graph validated and planned, not yet written (`writeGraph` / `writeGraphIn` write it). */
export interface PreparedGraph {
  readonly graph: { readonly id: string; readonly label: string | null }
  readonly plan: GraphPlan
  /** The answer to the client once it is written. */
  readonly submitted: SubmittedGraph
}

const newId = monotonicFactory()

/** Validates and plans `spec` without writing anything: InvalidRequest names every offending node. */
export const prepareGraph = (spec: GraphSpec) =>
  Effect.gen(function*() {
    const { kinds, context } = yield* TaskKinds
    const db = yield* Db
    const names = Object.keys(spec.nodes)
    if (names.length === 0) return yield* new InvalidRequest({ message: "a graph needs at least one node" })
    if (names.length > MAX_NODES) {
      return yield* new InvalidRequest({ message: `a graph has at most ${MAX_NODES} nodes; this one has ${names.length}` })
    }

    const problems = new Problems()
    const checked = checkNodes(spec.nodes, kinds, newId, problems)
    const byName = new Map(checked.map((n) => [n.name, n]))
    const { nodes, external, unresolved } = resolveRefs(checked, spec.nodes, problems)
    const known = external.size > 0 ? yield* futureKinds(db.db, [...external]) : new Map<string, string>()
    missingFutures(nodes, known, problems)
    const valid = new Map<string, ValidNode>()
    for (const node of nodes) {
      if (problems.has(node.name) || unresolved.has(node.name)) continue
      let params = storedParams(node, byName, known)
      if (node.kind.prepare) {
        // With the services the kinds were registered with (the handlers' own).
        const prepare = node.kind.prepare(params).pipe(Effect.provide(context)) as Effect.Effect<unknown, ParamProblems | DbError, Db>
        const prepared = yield* prepare.pipe(
          Effect.map(Option.some),
          Effect.catchIf((e): e is ParamProblems => Array.isArray(e), (list) => {
            for (const m of list) problems.add(node.name, m)
            return Effect.succeedNone
          })
        )
        if (Option.isNone(prepared)) continue
        params = prepared.value
      }
      const v = checkParams(node, params, problems)
      if (v) valid.set(v.name, v)
    }
    const { order, cyclic } = stableTopologicalOrder(nodes)
    for (const name of cyclic) problems.add(name, "is part of a dependency cycle")

    if (problems.count > 0) {
      return yield* new InvalidRequest({
        message: `the graph is invalid: ${problems.count} node${problems.count === 1 ? "" : "s"} failed validation`,
        details: { nodes: problems.byNode }
      })
    }

    // No problems: every node is valid.
    const plan = planGraph(order.map((n) => valid.get(n.name)!))
    if (plan.allKeys.length > MAX_GRAPH_KEYS) {
      return yield* new InvalidRequest({
        message: `a graph uses at most ${MAX_GRAPH_KEYS} distinct resource keys; this one uses ${plan.allKeys.length}`
      })
    }

    const graphId = newId()
    const submitted: SubmittedGraph["nodes"] = {}
    for (const name of names) {
      const n = byName.get(name)!
      submitted[name] = { task: n.taskId, outputs: { ...n.outputs } }
    }
    return { graph: { id: graphId, label: spec.label ?? null }, plan, submitted: { id: graphId, nodes: submitted } } satisfies PreparedGraph
  })

export const submitGraph = (spec: GraphSpec) =>
  prepareGraph(spec).pipe(
    Effect.tap((p) => writeGraph(p.graph, p.plan)),
    Effect.map((p) => p.submitted),
    Effect.withSpan("cairn.submit", { attributes: { nodes: Object.keys(spec.nodes).length }, captureStackTrace: false })
  )
