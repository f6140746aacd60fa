/**
 * The in-memory model behind `npm run dag`: one graph (the "main" graph of the id asked about),
 * plus the tasks of other graphs that its tasks take inputs from or wait behind on a resource key,
 * plus whatever is needed to explain every wait and every failure (blocker chains, cause chains).
 *
 * `loadSnapshot` fetches through a `Source` (HTTP API or database; both give the read models of
 * src/engine/views.ts); `buildModel` is pure and turns a snapshot into edges, a topological order
 * and layers, which the renderers (render.ts) draw.
 */
import type { FutureState, FutureView, GraphView, TaskState, TaskView } from "../engine/views.js"

export type { FutureState, FutureView, GraphView, TaskState, TaskView }

/** Where the data comes from. Answers `undefined` for an id that does not exist. */
export interface Source {
  /** For messages: "http://127.0.0.1:8080" or "the database". */
  readonly name: string
  getGraph(id: string): Promise<GraphView | undefined>
  getTask(id: string): Promise<TaskView | undefined>
  getFuture(id: string): Promise<FutureView | undefined>
  close(): Promise<void>
}

/** A problem to report to the user as one sentence (unknown id, unreachable server, ...). */
/** One glyph per task state: the terminal drawing (render.ts) and the CLI's graph view share them. */
export const TASK_GLYPH: Record<TaskState, string> = {
  blocked: "◌",
  ready: "○",
  running: "▶",
  succeeded: "✔",
  failed: "✖",
  canceled: "⊘"
}

export class DagError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message)
    this.name = "DagError"
  }
}

export const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

export type RootKind = "graph" | "task" | "future"

export interface Snapshot {
  readonly root: { readonly kind: RootKind; readonly id: string }
  readonly graph: GraphView
  /** Every task loaded: the main graph's and the other graphs' ones that matter. */
  readonly tasks: ReadonlyMap<string, TaskView>
  /** Futures fetched on the way (inputs from other graphs, futures on cause chains). */
  readonly futures: ReadonlyMap<string, FutureView>
  /** Wall clock (ms since epoch) of the snapshot, for "running for 12s". */
  readonly now: number
}

export interface Edge {
  readonly from: string
  readonly to: string
  readonly reason: "input" | "resource"
  /** Resource key (reason "resource"). */
  readonly key?: string
  /** Input future (reason "input"). */
  readonly future?: string
  /** The producer's output name of that future, when known. */
  readonly output?: string
  /** True when `to` is blocked on this edge right now (it is in `to`'s waiting_on). */
  readonly waiting: boolean
}

export interface OutputInfo {
  readonly name: string
  readonly id: string
  readonly state: FutureState
}

export interface DagModel {
  readonly root: Snapshot["root"]
  readonly graph: GraphView
  readonly now: number
  readonly tasks: ReadonlyMap<string, TaskView>
  readonly futures: ReadonlyMap<string, FutureView>
  /** Main-graph task ids in topological order (producers before consumers, earlier FCFS first). */
  readonly order: ReadonlyArray<string>
  /** Longest path from a root of the main graph, over in-graph edges. */
  readonly level: ReadonlyMap<string, number>
  /** Loaded tasks of other graphs, in id order. */
  readonly external: ReadonlyArray<string>
  readonly edges: ReadonlyArray<Edge>
  /** future id -> producing task id, for every future we know of. */
  readonly producerOf: ReadonlyMap<string, string>
  /** future id -> [producer task, output name]. */
  readonly outputOf: ReadonlyMap<string, { readonly task: string; readonly output: string }>
}

export const SETTLED: ReadonlySet<TaskState> = new Set(["succeeded", "failed", "canceled"])
export const isSettled = (t: TaskView) => SETTLED.has(t.state)

/** The future ids a task's params refer to (`{ "$ref": "<future id>", ... }` after submission). */
export const inputRefs = (params: unknown): Array<string> => {
  const out: Array<string> = []
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v !== null && typeof v === "object") {
      const ref = (v as { $ref?: unknown }).$ref
      if (typeof ref === "string") {
        if (!out.includes(ref)) out.push(ref)
        return
      }
      Object.values(v).forEach(walk)
    }
  }
  walk(params)
  return out
}

/**
 * A task's output futures settle in the same transaction as the task (succeeded -> resolved,
 * failed -> failed, canceled -> canceled; unsettled -> pending), so the graph view alone tells their
 * state; a future we fetched anyway wins.
 */
export const outputState = (t: TaskView, futureId: string, futures: ReadonlyMap<string, FutureView>): FutureState => {
  const f = futures.get(futureId)
  if (f) return f.state
  switch (t.state) {
    case "succeeded":
      return "resolved"
    case "failed":
      return "failed"
    case "canceled":
      return "canceled"
    default:
      return "pending"
  }
}

export const outputsOf = (t: TaskView, futures: ReadonlyMap<string, FutureView>): Array<OutputInfo> =>
  Object.entries(t.outputs).map(([name, id]) => ({ name, id, state: outputState(t, id, futures) }))

const conflicts = (a: TaskView, b: TaskView, key: string) =>
  a.resources.exclusive.includes(key) || b.resources.exclusive.includes(key)

const keysOf = (t: TaskView) => [...t.resources.exclusive, ...t.resources.shared]

/** Pure: edges, order and layers of a snapshot. */
export const buildModel = (s: Snapshot): DagModel => {
  const main = Object.values(s.graph.nodes).map((t) => s.tasks.get(t.id) ?? t)
  const tasks = new Map(s.tasks)
  for (const t of main) tasks.set(t.id, t)
  const mainIds = new Set(main.map((t) => t.id))

  const producerOf = new Map<string, string>()
  const outputOf = new Map<string, { task: string; output: string }>()
  for (const f of s.futures.values()) producerOf.set(f.id, f.producer)
  for (const t of tasks.values()) {
    for (const [output, id] of Object.entries(t.outputs)) {
      producerOf.set(id, t.id)
      outputOf.set(id, { task: t.id, output })
    }
  }

  const edges: Array<Edge> = []
  const seen = new Map<string, number>()
  const add = (e: Edge) => {
    const k = `${e.from}|${e.to}|${e.reason}|${e.key ?? ""}|${e.future ?? ""}`
    const at = seen.get(k)
    if (at === undefined) {
      seen.set(k, edges.length)
      edges.push(e)
    } else if (e.waiting && !edges[at]!.waiting) edges[at] = { ...edges[at]!, waiting: true }
  }
  const inputEdge = (from: string, to: string, future: string, waiting: boolean): Edge => {
    const output = outputOf.get(future)?.output
    return output === undefined ? { from, to, reason: "input", future, waiting } : { from, to, reason: "input", future, output, waiting }
  }

  // Data dependencies of the main graph's tasks (settled ones included), wherever the producer is.
  for (const t of main) {
    for (const f of inputRefs(t.params)) {
      const p = producerOf.get(f)
      if (p !== undefined) add(inputEdge(p, t.id, f, t.waiting_on.some((w) => w.reason === "input" && w.future === f)))
    }
  }
  // FCFS order inside the main graph: each task after the nearest earlier task it conflicts with on a key.
  main.forEach((t, i) => {
    for (const key of keysOf(t)) {
      for (let j = i - 1; j >= 0; j--) {
        const u = main[j]!
        if (keysOf(u).includes(key) && conflicts(u, t, key)) {
          add({ from: u.id, to: t.id, reason: "resource", key, waiting: t.waiting_on.some((w) => w.reason === "resource" && w.task === u.id && w.key === key) })
          break
        }
      }
    }
  })
  // What every loaded task waits for right now (this is what crosses graphs).
  for (const t of tasks.values()) {
    for (const w of t.waiting_on) {
      if (w.reason === "retry") continue // a wait for a time, not for another task
      if (w.reason === "input") {
        if (w.future !== undefined) add(inputEdge(w.task, t.id, w.future, true))
        else add({ from: w.task, to: t.id, reason: "input", waiting: true })
      } else {
        add(w.key === undefined ? { from: w.task, to: t.id, reason: "resource", waiting: true } : { from: w.task, to: t.id, reason: "resource", key: w.key, waiting: true })
      }
    }
  }

  // Kahn over in-graph edges, always taking the earliest task in graph order among those available.
  const index = new Map(main.map((t, i) => [t.id, i]))
  const preds = new Map<string, Set<string>>()
  const succs = new Map<string, Set<string>>()
  for (const e of edges) {
    if (!mainIds.has(e.from) || !mainIds.has(e.to) || e.from === e.to) continue
    ;(preds.get(e.to) ?? preds.set(e.to, new Set()).get(e.to)!).add(e.from)
    ;(succs.get(e.from) ?? succs.set(e.from, new Set()).get(e.from)!).add(e.to)
  }
  const indeg = new Map(main.map((t) => [t.id, preds.get(t.id)?.size ?? 0]))
  const available = main.filter((t) => indeg.get(t.id) === 0).map((t) => t.id)
  const order: Array<string> = []
  const level = new Map<string, number>()
  while (available.length > 0) {
    available.sort((a, b) => index.get(a)! - index.get(b)!)
    const id = available.shift()!
    order.push(id)
    level.set(id, Math.max(0, ...[...(preds.get(id) ?? [])].map((p) => (level.get(p) ?? 0) + 1)))
    for (const n of succs.get(id) ?? []) {
      const k = indeg.get(n)! - 1
      indeg.set(n, k)
      if (k === 0) available.push(n)
    }
  }
  // A cycle cannot happen (the engine rejects them), but never drop a task if one does.
  for (const t of main) {
    if (!level.has(t.id)) {
      order.push(t.id)
      level.set(t.id, 0)
    }
  }

  const external = [...tasks.keys()].filter((id) => !mainIds.has(id)).sort()
  return { root: s.root, graph: s.graph, now: s.now, tasks, futures: s.futures, order, level, external, edges, producerOf, outputOf }
}

// ---- loading --------------------------------------------------------------------------------------

const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

export interface LoadOptions {
  /** How far to follow "waits for" chains. */
  readonly depth: number
  readonly now?: () => number
}

/** Which kind of object an id names, and the id of its graph. */
export const resolveRoot = async (source: Source, id: string) => {
  const graph = await source.getGraph(id)
  if (graph) return { kind: "graph" as const, graph }
  const task = await source.getTask(id)
  if (task) return { kind: "task" as const, graphId: task.graph }
  const future = await source.getFuture(id)
  if (future) {
    const producer = await source.getTask(future.producer)
    if (!producer) throw new DagError(`future ${id} exists but its producer task ${future.producer} does not`)
    return { kind: "future" as const, graphId: producer.graph }
  }
  throw new DagError(`${id} is not a graph, task or future known to ${source.name}`)
}

export const loadSnapshot = async (source: Source, id: string, opts: LoadOptions): Promise<Snapshot> => {
  const root = await resolveRoot(source, id)
  const graph = root.kind === "graph" ? root.graph : await source.getGraph(root.graphId)
  if (!graph) throw new DagError(`the graph of ${root.kind} ${id} does not exist`)

  const tasks = new Map<string, TaskView>()
  const futures = new Map<string, FutureView>()
  const producerOf = new Map<string, string>()
  const missing = new Set<string>()
  const keep = (t: TaskView) => {
    tasks.set(t.id, t)
    for (const f of Object.values(t.outputs)) producerOf.set(f, t.id)
  }
  for (const t of Object.values(graph.nodes)) keep(t)

  const fetchTasks = async (ids: Iterable<string>) => {
    const todo = [...new Set(ids)].filter((i) => !tasks.has(i) && !missing.has(i))
    await mapLimit(todo, 8, async (i) => {
      const t = await source.getTask(i)
      if (t) keep(t)
      else missing.add(i)
    })
  }
  const fetchProducers = async (fids: Iterable<string>) => {
    const todo = [...new Set(fids)].filter((f) => !producerOf.has(f) && !futures.has(f))
    await mapLimit(todo, 8, async (f) => {
      const fv = await source.getFuture(f)
      if (fv) {
        futures.set(f, fv)
        producerOf.set(f, fv.producer)
      }
    })
    await fetchTasks([...new Set(fids)].flatMap((f) => producerOf.get(f) ?? []))
  }

  const main = Object.values(graph.nodes)
  // 1. Direct upstream in other graphs: producers of inputs, and whatever blocks a task now.
  await fetchProducers(main.flatMap((t) => inputRefs(t.params)))
  await fetchTasks(main.flatMap((t) => t.waiting_on.map((w) => w.task)))

  // 2. The "waits for" chains, breadth first, bounded.
  let frontier = main.filter((t) => t.state === "blocked")
  const expanded = new Set<string>()
  for (let d = 0; d < opts.depth && frontier.length > 0; d++) {
    for (const t of frontier) expanded.add(t.id)
    const next = frontier.flatMap((t) => t.waiting_on.map((w) => w.task))
    await fetchTasks(next)
    frontier = [...new Set(next)].flatMap((i) => {
      const t = tasks.get(i)
      return t && t.state === "blocked" && !expanded.has(t.id) ? [t] : []
    })
  }

  // 3. Cause chains of failed/canceled tasks: cause_future -> its producer -> its cause_future ...
  let chain = main.filter((t) => t.error?.cause_future !== undefined || t.error?.cause_task !== undefined)
  const followed = new Set<string>()
  for (let d = 0; d < 100 && chain.length > 0; d++) {
    for (const t of chain) followed.add(t.id)
    const fids = chain.flatMap((t) => (t.error?.cause_future === undefined ? [] : [t.error.cause_future]))
    // The cause future itself (its error tells the hop), not only its producer.
    await mapLimit(fids.filter((f) => !futures.has(f)), 8, async (f) => {
      const fv = await source.getFuture(f)
      if (fv) {
        futures.set(f, fv)
        producerOf.set(f, fv.producer)
      }
    })
    await fetchTasks([
      ...fids.flatMap((f) => producerOf.get(f) ?? []),
      ...chain.flatMap((t) => (t.error?.cause_task === undefined ? [] : [t.error.cause_task]))
    ])
    chain = fids.flatMap((f) => {
      const p = producerOf.get(f)
      const t = p === undefined ? undefined : tasks.get(p)
      return t && !followed.has(t.id) && t.error?.cause_future !== undefined ? [t] : []
    })
  }

  return { root: { kind: root.kind, id }, graph, tasks, futures, now: (opts.now ?? Date.now)() }
}

// ---- small shared helpers -------------------------------------------------------------------------

export const formatDuration = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) ms = 0
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  const m = Math.floor(s / 60)
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
}

const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso))

/** When a ready task waiting for its retry will be claimable again (its `waiting_on` says), if it is waiting. */
export const retryAt = (t: TaskView): string | undefined =>
  t.state === "ready" ? t.waiting_on.find((w) => w.reason === "retry")?.retry_at : undefined

/** "retry at 12:00:41Z (in 11s)". */
export const retryPhrase = (at: string, now: number) =>
  `retry at ${at.slice(11, 19)}Z (in ${formatDuration((ms(at) ?? now) - now)})`

/** "took 1.2s", "running for 12s", "ready for 3.0s", "retry at 12:00:41Z (in 11s)", "blocked for 40s". */
export const timing = (t: TaskView, now: number): string => {
  const created = ms(t.created_at) ?? now
  const started = ms(t.started_at)
  const finished = ms(t.finished_at)
  const retry = retryAt(t)
  switch (t.state) {
    case "running":
      return `running for ${formatDuration(now - (started ?? created))}`
    case "ready":
      return retry !== undefined ? retryPhrase(retry, now) : `ready for ${formatDuration(now - (ms(t.ready_at) ?? created))}`
    case "blocked":
      return `blocked for ${formatDuration(now - created)}`
    default:
      if (started !== undefined && finished !== undefined) return `took ${formatDuration(finished - started)}`
      return finished !== undefined ? `settled after ${formatDuration(finished - created)} without running` : ""
  }
}

export const stateCounts = (m: DagModel) => {
  const counts = new Map<TaskState, number>()
  for (const id of m.order) {
    const t = m.tasks.get(id)!
    counts.set(t.state, (counts.get(t.state) ?? 0) + 1)
  }
  return counts
}

/** True when every task of the main graph has settled (what --watch waits for). */
export const allSettled = (m: DagModel) => m.order.every((id) => isSettled(m.tasks.get(id)!))
