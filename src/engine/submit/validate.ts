/**
 * Validation of a submitted graph, without the database. Every check reports sentences per node
 * (`details.nodes.<name>` of the 400) into one `Problems`, so that one response names every
 * offending node. In the order submit.ts runs them:
 *
 *   1. `checkNodes`       each node on its own: name, shape (NodeSpec), kind, resource keys, size and
 *                         depth of its params; each node that passes gets its task and output ids;
 *   2. `resolveRefs`      its `{ "$ref": ... }`s: "<node>.<output>" of this graph or a future id;
 *   3. `missingFutures`   referenced futures of earlier graphs that do not exist (looked up by
 *                         submit.ts);
 *   4. `storedParams`     refs rewritten as `{ $ref: <future id>, kind }`, the form the kinds'
 *                         Schemas see; then the kind's `prepare` (submit.ts: it may read the
 *                         database) and `checkParams` against the kind's Schema, which also
 *                         settles the node's resource keys;
 *   5. cycles             among this graph's data dependencies (plan.ts's order leaves them over).
 *
 * A node whose shape, kind or params size fails step 1 is left out of the later steps, and a node
 * with any problem before step 4 is not checked against its kind (its own sentences say enough).
 * Nothing is written unless every step passes.
 */
import { ParseResult, Schema } from "effect"
import type { TaskKind } from "../kind.js"

/** Reject unknown fields and report every problem, not just the first. */
const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

/** Priorities are PostgreSQL integers. */
export const MIN_PRIORITY = -2_147_483_648
export const MAX_PRIORITY = 2_147_483_647
/** The longest a retry ever waits, and so the largest backoff worth asking for: 10 minutes. */
export const MAX_RETRY_BACKOFF_MS = 600_000

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
  max_attempts: Schema.optional(Schema.Int.pipe(Schema.between(1, 100)).annotations({
    description: "how many times the task may run before its failure is final (default 1: no retry)"
  })),
  priority: Schema.optional(Schema.Int.pipe(Schema.between(MIN_PRIORITY, MAX_PRIORITY)).annotations({
    description: "among ready tasks, higher priority is claimed first (default 0; ties in submission order). " +
      "It never lets a task pass an earlier task it conflicts with on a resource key: that one is not ready."
  })),
  retry_backoff_ms: Schema.optional(Schema.Int.pipe(Schema.between(0, MAX_RETRY_BACKOFF_MS)).annotations({
    description: "wait before the first retry, in ms (default 0: retry at once); each next retry waits twice as long, " +
      "plus up to a quarter at random, at most 10 minutes. A task waiting for its retry keeps its place on its " +
      "resource keys, shows waiting_on [{ reason: \"retry\", retry_at }], and can be canceled."
  }))
}).annotations({ ...strict, identifier: "NodeSpec" })
export type NodeSpec = Schema.Schema.Type<typeof NodeSpec>

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

/** Sentences per node name, in the order found. */
export class Problems {
  // Keyed by client-chosen names: no prototype, so "constructor" or "__proto__" are just names.
  readonly byNode: Record<string, Array<string>> = Object.create(null)

  add(node: string, message: string) {
    ;(this.byNode[node] ??= []).push(message)
  }

  has(node: string) {
    return this.byNode[node] !== undefined
  }

  /** How many nodes have a problem. */
  get count() {
    return Object.keys(this.byNode).length
  }
}

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

/** A `{ "$ref": ... }` object found in params, where it is and whether it has other fields. */
interface FoundRef {
  readonly path: string
  readonly ref: unknown
  readonly extra: boolean
}

/** Every `{ "$ref": ... }` object in a params value, with its path (params are at most MAX_PARAMS_DEPTH deep). */
const findRefs = (value: unknown, path: string, out: Array<FoundRef>) => {
  if (Array.isArray(value)) value.forEach((v, i) => findRefs(v, `${path}[${i}]`, out))
  else if (value !== null && typeof value === "object") {
    if (hasOwn(value, "$ref")) {
      out.push({ path, ref: (value as { $ref: unknown }).$ref, extra: Object.keys(value).length !== 1 })
      return
    }
    for (const [k, v] of Object.entries(value)) findRefs(v, path === "" ? k : `${path}.${k}`, out)
  }
}

/** A Schema failure as sentences, each prefixed with where it is (`params.add.0.relative_path: ...`). */
export const formatParseError = (e: ParseResult.ParseError, prefix: string): Array<string> =>
  ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => {
    const at = [...(prefix ? [prefix] : []), ...i.path.map(String)].join(".")
    return at ? `${at}: ${i.message}` : i.message
  })

/** A node that passed the checks on its own. */
export interface CheckedNode {
  readonly name: string
  readonly kind: TaskKind
  readonly taskId: string
  /** Output name -> future id. */
  readonly outputs: Readonly<Record<string, string>>
  /** As the client wrote them. */
  readonly params: unknown
  readonly foundRefs: ReadonlyArray<FoundRef>
  /** As declared in `resources`. */
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
  readonly maxAttempts: number
  readonly priority: number
  readonly retryBackoffMs: number
}

/** 1. Each node on its own, in body order; `newId` names its task and output futures. */
export const checkNodes = (
  nodes: Readonly<Record<string, unknown>>,
  kinds: ReadonlyMap<string, TaskKind>,
  newId: () => string,
  problems: Problems
): Array<CheckedNode> => {
  const checked: Array<CheckedNode> = []
  for (const name of Object.keys(nodes)) {
    if (!NODE_NAME.test(name)) problems.add(name, `node name must match ${NODE_NAME.source}`)
    // Before anything walks the node recursively (decoding, error messages, refs): params are one level down.
    if (depthOf(nodes[name], MAX_PARAMS_DEPTH + 1) > MAX_PARAMS_DEPTH + 1) {
      problems.add(name, `the node nests too deep: params may nest at most ${MAX_PARAMS_DEPTH} levels`)
      continue
    }
    const shape = Schema.decodeUnknownEither(NodeSpec)(nodes[name])
    if (shape._tag === "Left") {
      for (const m of formatParseError(shape.left, "")) problems.add(name, m)
      continue
    }
    const node = shape.right
    const kind = kinds.get(node.task)
    if (!kind) {
      problems.add(name, `unknown task kind ${JSON.stringify(node.task)}; known kinds: ${[...kinds.keys()].sort().join(", ")}`)
      continue
    }
    const exclusive = [...(node.resources?.exclusive ?? [])]
    const shared = [...(node.resources?.shared ?? [])]
    if (exclusive.length + shared.length > MAX_NODE_KEYS) {
      problems.add(name, `a node declares at most ${MAX_NODE_KEYS} resource keys; this one declares ${exclusive.length + shared.length}`)
    }
    if ([...exclusive, ...shared].some((k) => k.length === 0 || k.length > MAX_KEY_LENGTH)) {
      problems.add(name, `resource keys must have 1 to ${MAX_KEY_LENGTH} characters`)
    }
    const params = node.params ?? {}
    const size = Buffer.byteLength(JSON.stringify(params))
    if (size > MAX_PARAMS_BYTES) {
      problems.add(name, `params are limited to ${MAX_PARAMS_BYTES} bytes of JSON; these have ${size}`)
      continue
    }
    const foundRefs: Array<FoundRef> = []
    findRefs(params, "", foundRefs)
    const taskId = newId()
    checked.push({
      name,
      kind,
      taskId,
      outputs: Object.fromEntries(Object.keys(kind.outputs).map((o) => [o, newId()])),
      params,
      foundRefs,
      exclusive,
      shared,
      maxAttempts: node.max_attempts ?? 1,
      priority: node.priority ?? 0,
      retryBackoffMs: node.retry_backoff_ms ?? 0
    })
  }
  return checked
}

/** A future a node takes data from: an output of a node of this graph, or a future of an earlier graph. */
export type RefTarget =
  | { readonly local: true; readonly node: string; readonly output: string }
  | { readonly local: false; readonly future: string }

export interface ReferencingNode extends CheckedNode {
  readonly refs: ReadonlyArray<RefTarget>
}

export interface ResolvedRefs {
  readonly nodes: Array<ReferencingNode>
  /** Futures of earlier graphs that some node refers to. */
  readonly external: ReadonlySet<string>
  /** Nodes that refer to a node that failed on its own: their params cannot be checked further. */
  readonly unresolved: ReadonlySet<string>
}

/** 2. Each ref of each checked node; `graph` is the submitted `nodes` (names that failed step 1 included). */
export const resolveRefs = (
  checked: ReadonlyArray<CheckedNode>,
  graph: Readonly<Record<string, unknown>>,
  problems: Problems
): ResolvedRefs => {
  const byName = new Map(checked.map((n) => [n.name, n]))
  const external = new Set<string>()
  const unresolved = new Set<string>()
  const nodes = checked.map((n): ReferencingNode => {
    const refs: Array<RefTarget> = []
    for (const { path, ref, extra } of n.foundRefs) {
      const at = path === "" ? "params" : `params.${path}`
      if (typeof ref !== "string" || extra) {
        problems.add(n.name, `${at}: a reference is {"$ref": "<node>.<output>"} or {"$ref": "<future id>"} and nothing else`)
      } else if (ULID.test(ref)) {
        external.add(ref)
        refs.push({ local: false, future: ref })
      } else {
        const m = LOCAL_REF.exec(ref)
        const target = m ? byName.get(m[1]!) : undefined
        if (!m) problems.add(n.name, `${at}: ${JSON.stringify(ref)} is neither "<node>.<output>" nor a future id`)
        else if (!target) {
          // A node that is in the graph but failed on its own has its problem reported already.
          if (!hasOwn(graph, m[1]!)) problems.add(n.name, `${at}: ${JSON.stringify(ref)} refers to a node that is not in this graph`)
          else unresolved.add(n.name)
        } else if (!hasOwn(target.outputs, m[2]!)) {
          problems.add(
            n.name,
            `${at}: node ${m[1]} (${target.kind.name}) has no output ${JSON.stringify(m[2])}; it has ${Object.keys(target.outputs).join(", ")}`
          )
        } else refs.push({ local: true, node: m[1]!, output: m[2]! })
      }
    }
    return { ...n, refs }
  })
  return { nodes, external, unresolved }
}

/** 3. Refs to futures of earlier graphs that are not among `known` (future id -> kind). */
export const missingFutures = (nodes: ReadonlyArray<ReferencingNode>, known: ReadonlyMap<string, string>, problems: Problems) => {
  for (const n of nodes) {
    for (const r of n.refs) if (!r.local && !known.has(r.future)) problems.add(n.name, `future ${r.future} does not exist`)
  }
}

/**
 * 4a. The node's params with every ref rewritten as `{ $ref: <future id>, kind }`, the form the
 * kinds' Schemas and handlers see. Only for a node whose refs all resolved (steps 2 and 3).
 */
export const storedParams = (
  node: ReferencingNode,
  byName: ReadonlyMap<string, CheckedNode>,
  known: ReadonlyMap<string, string>
): unknown => {
  const resolve = (ref: string) => {
    if (ULID.test(ref)) return { id: ref, kind: known.get(ref)! }
    const [name, output] = ref.split(".") as [string, string]
    const target = byName.get(name)!
    return { id: target.outputs[output]!, kind: target.kind.outputs[output]! }
  }
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite)
    if (value !== null && typeof value === "object") {
      if (hasOwn(value, "$ref")) {
        const r = resolve((value as { $ref: string }).$ref)
        return { $ref: r.id, kind: r.kind }
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v)]))
    }
    return value
  }
  return rewrite(node.params)
}

/** A node ready to be written: params in their stored form, and every resource key it holds. */
export type ValidNode = ReferencingNode

/**
 * 4b. The node's params (stored form, after `prepare`) against its kind's Schema. Its resource keys
 * are the kind's own for these params plus the declared ones; a key held both ways is held
 * exclusively.
 */
export const checkParams = (node: ReferencingNode, params: unknown, problems: Problems): ValidNode | undefined => {
  const decoded = Schema.decodeUnknownEither(node.kind.params)(params)
  if (decoded._tag === "Left") {
    for (const m of formatParseError(decoded.left, "params")) problems.add(node.name, m)
    return undefined
  }
  const own = node.kind.resources(decoded.right)
  const exclusive = [...new Set([...own.exclusive, ...node.exclusive])]
  const exclusiveSet = new Set(exclusive)
  const shared = [...new Set([...own.shared, ...node.shared])].filter((k) => !exclusiveSet.has(k))
  return { ...node, params, exclusive, shared }
}
