/**
 * Read models: tasks, graphs and futures as the HTTP contract shows them. Built in bulk (a graph of
 * 10,000 nodes is four queries, not 40,000), and used by the API, the CLI (`cairn dag`) and the console.
 */
import { Effect } from "effect"
import { Db } from "../db/client.js"
import * as Q from "./queries/views.js"

export type TaskState = "blocked" | "ready" | "running" | "succeeded" | "failed" | "canceled"
export type FutureState = "pending" | "resolved" | "failed" | "canceled"
export type GraphState = "pending" | "running" | "succeeded" | "failed" | "canceled"

export interface ErrorView {
  readonly code: string
  readonly message: string
  readonly cause_task?: string
  readonly cause_future?: string
  readonly retrying?: boolean
}

/**
 * One thing a task waits for: an input (`future`, produced by `task`), an earlier task on a resource
 * key (`key`), or, for a ready task waiting for its retry, the time of the retry (`retry_at`; `task`
 * is then the task itself).
 */
export interface WaitingOn {
  readonly task: string
  readonly reason: "input" | "resource" | "retry"
  readonly key?: string
  readonly future?: string
  readonly retry_at?: string
}

export interface TaskView {
  readonly id: string
  readonly graph: string
  readonly node: string
  readonly task: string
  readonly state: TaskState
  readonly params: unknown
  readonly outputs: Record<string, string>
  /** Every input future (settled or not); an addition to the contract. */
  readonly inputs: ReadonlyArray<string>
  readonly resources: { readonly exclusive: ReadonlyArray<string>; readonly shared: ReadonlyArray<string> }
  readonly waiting_on: ReadonlyArray<WaitingOn>
  readonly worker?: string
  readonly attempts: number
  readonly max_attempts: number
  readonly priority: number
  readonly retry_backoff_ms: number
  readonly created_at: string
  readonly ready_at?: string
  readonly started_at?: string
  readonly finished_at?: string
  readonly error?: ErrorView
  readonly progress?: { readonly done: number; readonly total?: number; readonly unit?: string }
}

export interface FutureView {
  readonly id: string
  readonly kind: string
  readonly state: FutureState
  readonly producer: string
  readonly created_at: string
  readonly settled_at?: string
  readonly value?: unknown
  readonly error?: ErrorView
}

export interface GraphView {
  readonly id: string
  readonly label?: string
  readonly state: GraphState
  readonly created_at: string
  readonly finished_at?: string
  readonly nodes: Record<string, TaskView>
}

const iso = (d: Date | string | null | undefined) => (d == null ? undefined : new Date(d).toISOString())

/** Drop undefined fields so that the JSON has no `"x": null` where the contract says `x?`. */
const compact = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as T

/**
 * Params as a client can submit them again: stored refs carry the referenced future's kind for the
 * kinds' Schemas (`{ $ref, kind }`); shown, they are plain `{ "$ref": "<future id>" }`.
 */
const submittedForm = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(submittedForm)
  if (value !== null && typeof value === "object") {
    if (Object.prototype.hasOwnProperty.call(value, "$ref")) return { $ref: (value as { $ref: unknown }).$ref }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, submittedForm(v)]))
  }
  return value
}

/** Task views for the tasks a selection names, in its order. */
export const taskViews = (selection: Q.TaskSelection) =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = yield* Q.taskRows(db.db, selection)
    if (rows.length === 0) return []
    const ids = rows.map((r) => r.id)
    const blockedIds = rows.filter((r) => r.state === "blocked").map((r) => r.id)
    const [outputs, inputs, keys] = yield* Effect.all([
      Q.outputsOf(db.db, ids),
      Q.inputsOf(db.db, ids),
      Q.blockersOf(db.db, blockedIds)
    ], { concurrency: 3 })
    const outs = new Map<string, Record<string, string>>()
    for (const o of outputs) (outs.get(o.producer_task) ?? outs.set(o.producer_task, {}).get(o.producer_task)!)[o.output] = o.id
    const waits = new Map<string, Array<WaitingOn>>()
    const wait = (t: string, w: WaitingOn) => (waits.get(t) ?? waits.set(t, []).get(t)!).push(w)
    const inputsOf = new Map<string, Array<string>>()
    for (const i of inputs) {
      ;(inputsOf.get(i.task_id) ?? inputsOf.set(i.task_id, []).get(i.task_id)!).push(i.future)
      if (i.state === "pending") wait(i.task_id, { task: i.producer, reason: "input", future: i.future })
    }
    for (const k of keys) if (k.blocker) wait(k.task_id, { task: k.blocker, reason: "resource", key: k.key })
    for (const r of rows) if (r.state === "ready" && r.run_after) wait(r.id, { task: r.id, reason: "retry", retry_at: iso(r.run_after)! })
    return rows.map((r): TaskView =>
      compact({
        id: r.id,
        graph: r.graph_id,
        node: r.node,
        task: r.kind,
        state: r.state,
        params: submittedForm(r.params),
        outputs: outs.get(r.id) ?? {},
        inputs: inputsOf.get(r.id) ?? [],
        resources: { exclusive: r.exclusive, shared: r.shared },
        waiting_on: waits.get(r.id) ?? [],
        worker: r.worker ?? undefined,
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        priority: r.priority,
        retry_backoff_ms: r.retry_backoff_ms,
        created_at: iso(r.created_at)!,
        ready_at: iso(r.ready_at),
        started_at: iso(r.started_at),
        finished_at: iso(r.finished_at),
        error: r.error ?? undefined,
        progress: r.progress ?? undefined
      })
    )
  })

export const getTask = (id: string) =>
  Effect.map(taskViews({ id, order: "seq" }), (v) => v[0])

export interface TaskFilter {
  readonly graph?: string | undefined
  readonly state?: TaskState | undefined
  readonly task?: string | undefined
  readonly cursor?: string | undefined
  readonly limit: number
}

/** Newest first (ids are ULIDs: time-ordered); the cursor is the last id of the previous page. */
export const listTasks = (f: TaskFilter) =>
  Effect.gen(function*() {
    const items = yield* taskViews({
      graph: f.graph,
      state: f.state,
      kind: f.task,
      before: f.cursor,
      order: "newest",
      limit: f.limit + 1
    })
    const page = items.slice(0, f.limit)
    return { items: page, next_cursor: items.length > f.limit ? page[page.length - 1]!.id : undefined }
  })

export const graphState = (states: ReadonlyArray<TaskState>): GraphState => {
  const unsettled = states.filter((s) => s === "blocked" || s === "ready" || s === "running").length
  if (unsettled > 0) return states.every((s) => s === "blocked" || s === "ready") ? "pending" : "running"
  if (states.includes("failed")) return "failed"
  if (states.includes("canceled")) return "canceled"
  return "succeeded"
}

export const getGraph = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const g = yield* Q.graphRow(db.db, id)
    if (!g) return undefined
    const tasks = yield* taskViews({ graph: id, order: "seq" })
    const state = graphState(tasks.map((t) => t.state))
    const done = state === "succeeded" || state === "failed" || state === "canceled"
    const finished = tasks.map((t) => t.finished_at ?? "").sort().pop()
    return compact({
      id: g.id,
      label: g.label ?? undefined,
      state,
      created_at: iso(g.created_at)!,
      finished_at: done ? finished : undefined,
      nodes: Object.fromEntries(tasks.map((t) => [t.node, t]))
    }) as GraphView
  })

export const getFuture = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const f = yield* Q.futureRow(db.db, id)
    if (!f) return undefined
    const view: FutureView = compact({
      id: f.id,
      kind: f.kind,
      state: f.state,
      producer: f.producer_task,
      created_at: iso(f.created_at)!,
      settled_at: iso(f.settled_at),
      error: f.error ?? undefined
    })
    // A resolved future always shows its value, null included.
    return f.state === "resolved" ? { ...view, value: f.value ?? null } : view
  })
