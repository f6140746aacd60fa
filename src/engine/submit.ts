/**
 * Graph submission: validate the whole graph, then write it in one transaction.
 *
 * Validation happens before anything is written and reports every offending node at once
 * (`details.nodes.<name>` is a list of sentences). The write:
 *
 *   1. locks every resource key the graph uses (cairn_lock_keys: per-key, hash order; keys come
 *      before any row lock, the engine-wide order that keeps transactions from deadlocking);
 *   2. locks the referenced futures of earlier graphs FOR SHARE (a settle of one of them either
 *      committed before, and we see it settled, or waits for us, and then sees our consumers);
 *   3. inserts graph, tasks (seq in FCFS order), futures, input edges and key rows;
 *   4. settles at once the tasks whose inputs already failed or were canceled (cascade);
 *   5. enqueues the rest (cairn_enqueue: key rows with no earlier conflict become free; tasks with
 *      nothing to wait for become ready) and sends one NOTIFY;
 *   6. if the graph is large next to the tasks the planner knows of, analyzes the engine's tables
 *      before committing (cairn_refresh_statistics), so that its first failure or claim is not
 *      planned from statistics that predate it.
 *
 * FCFS order within a graph is the order of `nodes` in the request body, except that a node is
 * never placed before a node it takes data from (a stable topological order): the literal body order
 * would deadlock a node that needs the output of a later node holding the same key.
 */
import { sql } from "drizzle-orm"
import { Effect, ParseResult, Schema } from "effect"
import { monotonicFactory } from "ulid"
import { Db, txRows } from "../db/client.js"
import { InvalidRequest } from "./errors.js"
import { type ParamProblems, type TaskKind, TaskKinds } from "./kind.js"
import { toChanges } from "./notify.js"

/** Reject unknown fields and report every problem, not just the first. */
const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

/** One node of a submitted graph. Checked here, node by node, so that one 400 names every bad node. */
export const NodeSpec = Schema.Struct({
  task: Schema.String.annotations({ description: "task kind, e.g. file.sync" }),
  params: Schema.optional(Schema.Unknown).annotations({
    description: "the kind's params; {\"$ref\": \"<node>.<output>\"} or {\"$ref\": \"<future id>\"} refers to a future"
  }),
  resources: Schema.optional(
    Schema.Struct({
      exclusive: Schema.optional(Schema.Array(Schema.String)),
      shared: Schema.optional(Schema.Array(Schema.String))
    }).annotations(strict)
  ),
  max_attempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 100)))
}).annotations({ ...strict, identifier: "NodeSpec" })
export type NodeSpec = Schema.Schema.Type<typeof NodeSpec>

export interface GraphSpec {
  readonly label?: string | undefined
  /** Node name -> node; each value is checked against NodeSpec here. */
  readonly nodes: Readonly<Record<string, unknown>>
}

export interface SubmittedGraph {
  readonly id: string
  readonly nodes: Record<string, { readonly task: string; readonly outputs: Record<string, string> }>
}

export const MAX_NODES = 10_000
export const MAX_KEY_LENGTH = 512
/** Resource keys one node may declare in `resources` (exclusive and shared together). */
export const MAX_NODE_KEYS = 64
/** Distinct resource keys of a whole graph (declared and the kinds' own): each is a lock at submission. */
export const MAX_GRAPH_KEYS = 10_000
/** How deep a node's params may nest (arrays and objects), and how large they may be as JSON. */
export const MAX_PARAMS_DEPTH = 32
export const MAX_PARAMS_BYTES = 1024 * 1024
export const NODE_NAME = /^[a-z][a-z0-9_-]{0,62}$/
export const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const LOCAL_REF = /^([a-z][a-z0-9_-]{0,62})\.([A-Za-z0-9_-]{1,64})$/

const newId = monotonicFactory()

type RefTarget =
  | { readonly local: true; readonly node: string; readonly output: string }
  | { readonly local: false; readonly future: string }

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k)

/** Nesting depth of a JSON value (a scalar is 0), without recursion; stops counting past `max`. */
const depthOf = (value: unknown, max: number): number => {
  let deepest = 0
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (v === null || typeof v !== "object") continue
    if (d + 1 > deepest) deepest = d + 1
    if (deepest > max) return deepest
    for (const child of Object.values(v)) stack.push([child, d + 1])
  }
  return deepest
}

/** Every `{ "$ref": ... }` object in a params value, with its path (params are at most MAX_PARAMS_DEPTH deep). */
const findRefs = (value: unknown, path: string, out: Array<{ path: string; ref: unknown; extra: boolean }>) => {
  if (Array.isArray(value)) value.forEach((v, i) => findRefs(v, `${path}[${i}]`, out))
  else if (value !== null && typeof value === "object") {
    if (Object.prototype.hasOwnProperty.call(value, "$ref")) {
      out.push({ path, ref: (value as { $ref: unknown }).$ref, extra: Object.keys(value).length !== 1 })
      return
    }
    for (const [k, v] of Object.entries(value)) findRefs(v, path === "" ? k : `${path}.${k}`, out)
  }
}

/** Rewrite refs as `{ $ref: <future id>, kind }`, the form the kinds' Schemas and handlers see. */
const rewriteRefs = (value: unknown, resolve: (ref: string) => { id: string; kind: string }): unknown => {
  if (Array.isArray(value)) return value.map((v) => rewriteRefs(v, resolve))
  if (value !== null && typeof value === "object") {
    if (Object.prototype.hasOwnProperty.call(value, "$ref")) {
      const r = resolve((value as { $ref: string }).$ref)
      return { $ref: r.id, kind: r.kind }
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewriteRefs(v, resolve)]))
  }
  return value
}

const formatParseError = (e: ParseResult.ParseError, prefix: string): Array<string> =>
  ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => {
    const at = [...(prefix ? [prefix] : []), ...i.path.map(String)].join(".")
    return at ? `${at}: ${i.message}` : i.message
  })

interface PlannedNode {
  readonly name: string
  readonly index: number
  readonly kind: TaskKind
  readonly taskId: string
  readonly outputs: Record<string, string>
  params: unknown
  readonly refs: Array<RefTarget>
  exclusive: Array<string>
  shared: Array<string>
  readonly maxAttempts: number
}

/** Kahn's algorithm, always taking the earliest node in body order among those available. */
const stableTopologicalOrder = (nodes: ReadonlyArray<PlannedNode>, deps: Map<string, Set<string>>) => {
  const indeg = new Map(nodes.map((n) => [n.name, deps.get(n.name)?.size ?? 0]))
  const dependents = new Map<string, Array<string>>()
  for (const [n, ds] of deps) for (const d of ds) dependents.set(d, [...(dependents.get(d) ?? []), n])
  const byName = new Map(nodes.map((n) => [n.name, n]))
  // A binary heap would be O(n log n); body order is usually already topological, so a sorted
  // insertion into a small "available" list is fine and simpler.
  const available = nodes.filter((n) => indeg.get(n.name) === 0).map((n) => n.index)
  const order: Array<PlannedNode> = []
  while (available.length > 0) {
    const i = available.shift()!
    const n = nodes[i]!
    order.push(n)
    for (const m of dependents.get(n.name) ?? []) {
      const k = indeg.get(m)! - 1
      indeg.set(m, k)
      if (k === 0) {
        const idx = byName.get(m)!.index
        let at = available.findIndex((x) => x > idx)
        if (at < 0) at = available.length
        available.splice(at, 0, idx)
      }
    }
  }
  const cyclic = nodes.filter((n) => indeg.get(n.name)! > 0).map((n) => n.name)
  return { order, cyclic }
}

export const submitGraph = (spec: GraphSpec) =>
  Effect.gen(function*() {
    const { kinds } = yield* TaskKinds
    const db = yield* Db
    const names = Object.keys(spec.nodes)
    // Keyed by client-chosen names: no prototype, so "constructor" or "__proto__" are just names.
    const problems: Record<string, Array<string>> = Object.create(null)
    const problem = (node: string, msg: string) => (problems[node] ??= []).push(msg)

    if (names.length === 0) return yield* new InvalidRequest({ message: "a graph needs at least one node" })
    if (names.length > MAX_NODES) {
      return yield* new InvalidRequest({ message: `a graph has at most ${MAX_NODES} nodes; this one has ${names.length}` })
    }

    // 1. Each node on its own: name, kind, resources, refs.
    const planned: Array<PlannedNode> = []
    const rawRefs = new Map<string, Array<{ path: string; ref: unknown; extra: boolean }>>()
    names.forEach((name) => {
      if (!NODE_NAME.test(name)) problem(name, `node name must match ${NODE_NAME.source}`)
      // Before anything walks the node recursively (decoding, error messages, refs): params are one level down.
      if (depthOf(spec.nodes[name], MAX_PARAMS_DEPTH + 1) > MAX_PARAMS_DEPTH + 1) {
        problem(name, `the node nests too deep: params may nest at most ${MAX_PARAMS_DEPTH} levels`)
        return
      }
      const shape = Schema.decodeUnknownEither(NodeSpec)(spec.nodes[name])
      if (shape._tag === "Left") {
        for (const m of formatParseError(shape.left, "")) problem(name, m)
        return
      }
      const node = shape.right
      const kind = kinds.get(node.task)
      if (!kind) {
        problem(name, `unknown task kind ${JSON.stringify(node.task)}; known kinds: ${[...kinds.keys()].sort().join(", ")}`)
        return
      }
      const exclusive = [...(node.resources?.exclusive ?? [])]
      const shared = [...(node.resources?.shared ?? [])]
      if (exclusive.length + shared.length > MAX_NODE_KEYS) {
        problem(name, `a node declares at most ${MAX_NODE_KEYS} resource keys; this one declares ${exclusive.length + shared.length}`)
      }
      if ([...exclusive, ...shared].some((k) => k.length === 0 || k.length > MAX_KEY_LENGTH)) {
        problem(name, `resource keys must have 1 to ${MAX_KEY_LENGTH} characters`)
      }
      const size = Buffer.byteLength(JSON.stringify(node.params ?? {}))
      if (size > MAX_PARAMS_BYTES) {
        problem(name, `params are limited to ${MAX_PARAMS_BYTES} bytes of JSON; these have ${size}`)
        return
      }
      const found: Array<{ path: string; ref: unknown; extra: boolean }> = []
      findRefs(node.params ?? {}, "", found)
      rawRefs.set(name, found)
      const taskId = newId()
      planned.push({
        name,
        index: planned.length,
        kind,
        taskId,
        outputs: Object.fromEntries(Object.keys(kind.outputs).map((o) => [o, newId()])),
        params: node.params ?? {},
        refs: [],
        exclusive,
        shared,
        maxAttempts: node.max_attempts ?? 1
      })
    })
    const byName = new Map(planned.map((p) => [p.name, p]))

    // 2. Classify refs; collect the futures of earlier graphs.
    const external = new Set<string>()
    // Nodes that refer to a node that failed on its own: their params cannot be checked further.
    const unresolved = new Set<string>()
    for (const p of planned) {
      for (const { path, ref, extra } of rawRefs.get(p.name) ?? []) {
        const at = path === "" ? "params" : `params.${path}`
        if (typeof ref !== "string" || extra) {
          problem(p.name, `${at}: a reference is {"$ref": "<node>.<output>"} or {"$ref": "<future id>"} and nothing else`)
        } else if (ULID.test(ref)) {
          external.add(ref)
          p.refs.push({ local: false, future: ref })
        } else {
          const m = LOCAL_REF.exec(ref)
          const target = m ? byName.get(m[1]!) : undefined
          if (!m) problem(p.name, `${at}: ${JSON.stringify(ref)} is neither "<node>.<output>" nor a future id`)
          else if (!target) {
            // A node that is in the graph but failed on its own has its problem reported already.
            if (!hasOwn(spec.nodes, m[1]!)) problem(p.name, `${at}: ${JSON.stringify(ref)} refers to a node that is not in this graph`)
            else unresolved.add(p.name)
          } else if (!hasOwn(target.outputs, m[2]!)) {
            problem(p.name, `${at}: node ${m[1]} (${target.kind.name}) has no output ${JSON.stringify(m[2])}; it has ${Object.keys(target.outputs).join(", ")}`)
          } else p.refs.push({ local: true, node: m[1]!, output: m[2]! })
        }
      }
    }
    const known = new Map<string, { kind: string }>()
    if (external.size > 0) {
      const rows = yield* db.rows<{ id: string; kind: string }>(
        sql`SELECT id, kind FROM futures WHERE id = ANY(${sql.param([...external])}::text[])`
      )
      for (const r of rows) known.set(r.id, r)
      for (const p of planned) {
        for (const r of p.refs) if (!r.local && !known.has(r.future)) problem(p.name, `future ${r.future} does not exist`)
      }
    }

    // 3. Params against each kind's Schema, with refs rewritten to future ids and kinds.
    for (const p of planned) {
      if (problems[p.name] || unresolved.has(p.name)) continue
      p.params = rewriteRefs(p.params, (ref) => {
        if (ULID.test(ref)) return { id: ref, kind: known.get(ref)!.kind }
        const [node, output] = ref.split(".") as [string, string]
        const target = byName.get(node)!
        return { id: target.outputs[output]!, kind: target.kind.outputs[output]! }
      })
      if (p.kind.prepare) {
        const prepared = yield* p.kind.prepare(p.params).pipe(
          Effect.catchIf((e): e is ParamProblems => Array.isArray(e), (list) => {
            for (const m of list) problem(p.name, m)
            return Effect.succeed(undefined)
          })
        )
        if (prepared === undefined) continue
        p.params = prepared
      }
      const decoded = Schema.decodeUnknownEither(p.kind.params)(p.params)
      if (decoded._tag === "Left") {
        for (const m of formatParseError(decoded.left, "params")) problem(p.name, m)
        continue
      }
      const own = p.kind.resources(decoded.right)
      p.exclusive = [...new Set([...own.exclusive, ...p.exclusive])]
      const exclusiveSet = new Set(p.exclusive)
      // A key held both ways is held exclusively.
      p.shared = [...new Set([...own.shared, ...p.shared])].filter((k) => !exclusiveSet.has(k))
    }

    // 4. Cycles among this graph's data dependencies.
    const deps = new Map<string, Set<string>>()
    for (const p of planned) deps.set(p.name, new Set(p.refs.flatMap((r) => (r.local ? [r.node] : []))))
    const { order, cyclic } = stableTopologicalOrder(planned, deps)
    for (const n of cyclic) problem(n, "is part of a dependency cycle")

    if (Object.keys(problems).length > 0) {
      const count = Object.keys(problems).length
      return yield* new InvalidRequest({
        message: `the graph is invalid: ${count} node${count === 1 ? "" : "s"} failed validation`,
        details: { nodes: problems }
      })
    }

    const graphKeys = new Set(planned.flatMap((p) => [...p.exclusive, ...p.shared])).size
    if (graphKeys > MAX_GRAPH_KEYS) {
      return yield* new InvalidRequest({
        message: `a graph uses at most ${MAX_GRAPH_KEYS} distinct resource keys; this one uses ${graphKeys}`
      })
    }

    // 5. Write.
    const graphId = newId()
    const taskRows = order.map((p) => ({
      id: p.taskId,
      node: p.name,
      kind: p.kind.name,
      params: p.params,
      exclusive: p.exclusive,
      shared: p.shared,
      max_attempts: p.maxAttempts
    }))
    const futureRows = order.flatMap((p) =>
      Object.entries(p.outputs).map(([output, id]) => ({ id, kind: p.kind.outputs[output]!, producer: p.taskId, output }))
    )
    const inputRows = order.flatMap((p) => [
      ...new Set(p.refs.map((r) => (r.local ? byName.get(r.node)!.outputs[r.output]! : r.future)))
    ].map((future) => ({ task: p.taskId, future })))
    const keyRows = order.flatMap((p) => [
      ...p.exclusive.map((key) => ({ task: p.taskId, key, exclusive: true })),
      ...p.shared.map((key) => ({ task: p.taskId, key, exclusive: false }))
    ])
    const allKeys = [...new Set(keyRows.map((k) => k.key))]
    const taskIds = order.map((p) => p.taskId)
    const json = (v: unknown) => sql.param(JSON.stringify(v))

    yield* db.transaction((tx) =>
      Effect.gen(function*() {
        // Keys before rows, as everywhere (see cairn_lock_task_keys).
        if (allKeys.length > 0) yield* txRows(tx, sql`SELECT cairn_lock_keys(${sql.param(allKeys)}::text[])`)
        const ext = external.size > 0
          ? yield* txRows<{ id: string; state: string }>(
            tx,
            sql`SELECT id, state FROM futures WHERE id = ANY(${sql.param([...external])}::text[]) ORDER BY id FOR SHARE`
          )
          : []
        const failedInputs = ext.filter((f) => f.state === "failed" || f.state === "canceled").map((f) => f.id)
        const settledExternal = new Set(ext.filter((f) => f.state !== "pending").map((f) => f.id))

        // pending_inputs counts inputs not yet settled: this graph's own futures, pending external
        // ones, and failed/canceled ones (the cascade below settles their consumers, so they are
        // never released). Only resolved external inputs are already satisfied.
        const resolvedExternal = new Set([...settledExternal].filter((id) => !failedInputs.includes(id)))
        const pending = new Map<string, number>()
        for (const i of inputRows) if (!resolvedExternal.has(i.future)) pending.set(i.task, (pending.get(i.task) ?? 0) + 1)
        const rows = taskRows.map((t) => ({ ...t, pending_inputs: pending.get(t.id) ?? 0 }))
        // Every row of the graph in one statement (one round trip, whatever the graph's size). The
        // foreign keys between these rows are checked at the end of the statement, when all exist.
        // seq is drawn in FCFS order: since PostgreSQL 9.6 volatile target-list functions are
        // evaluated after ORDER BY.
        yield* txRows(
          tx,
          sql`WITH g AS (
                INSERT INTO graphs (id, label) VALUES (${graphId}, ${spec.label ?? null})
              ), t AS (
                INSERT INTO tasks (id, graph_id, node, kind, seq, params, state, pending_inputs, blocked_keys, exclusive, shared, max_attempts)
                SELECT t.id, ${graphId}, t.node, t.kind, nextval('tasks_seq_seq'), t.params, 'blocked', t.pending_inputs,
                       cardinality(t.exclusive) + cardinality(t.shared), t.exclusive, t.shared, t.max_attempts
                FROM ROWS FROM (jsonb_to_recordset(${json(rows)}::jsonb)
                       AS (id text, node text, kind text, params jsonb, exclusive text[], shared text[], max_attempts int, pending_inputs int))
                     WITH ORDINALITY AS t(id, node, kind, params, exclusive, shared, max_attempts, pending_inputs, ord)
                ORDER BY t.ord
                RETURNING id, seq
              ), f AS (
                INSERT INTO futures (id, kind, state, producer_task, output)
                SELECT f.id, f.kind, 'pending', f.producer, f.output
                FROM jsonb_to_recordset(${json(futureRows)}::jsonb) AS f(id text, kind text, producer text, output text)
              ), i AS (
                INSERT INTO task_inputs (task_id, future_id)
                SELECT i.task, i.future FROM jsonb_to_recordset(${json(inputRows)}::jsonb) AS i(task text, future text)
              ), k AS (
                INSERT INTO task_keys (task_id, key, exclusive, seq)
                SELECT k.task, k.key, k.exclusive, t.seq
                FROM jsonb_to_recordset(${json(keyRows)}::jsonb) AS k(task text, key text, exclusive boolean)
                JOIN t ON t.id = k.task
              )
              SELECT 1`
        )
        let changes = toChanges({})
        if (failedInputs.length > 0) {
          const [r] = yield* txRows<{ c: unknown }>(
            tx,
            sql`SELECT cairn_settle_cascade('{}'::text[], ${sql.param(failedInputs)}::text[]) AS c`
          )
          changes = toChanges(r!.c)
        }
        // Enqueue behind the keys and wake the workers, and give the planner statistics if this
        // graph is large next to what it knows (cairn_refresh_statistics): one round trip.
        yield* txRows(
          tx,
          sql`SELECT cairn_notify(jsonb_set(${json(changes)}::jsonb, '{ready}',
                to_jsonb(${changes.ready}::int + cairn_enqueue(${sql.param(taskIds)}::text[])))),
                cairn_refresh_statistics(${taskIds.length}::int)`
        )
      })
    )

    const nodes: SubmittedGraph["nodes"] = {}
    for (const name of names) {
      const p = byName.get(name)!
      nodes[name] = { task: p.taskId, outputs: { ...p.outputs } }
    }
    return { id: graphId, nodes } satisfies SubmittedGraph
  }).pipe(Effect.withSpan("cairn.submit", { attributes: { nodes: Object.keys(spec.nodes).length }, captureStackTrace: false }))
