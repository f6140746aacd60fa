/**
 * Property-based tests of the engine against a model: random DAGs spanning several graphs (later
 * graphs consume futures of earlier ones by future id), random resource keys from a small pool,
 * random failures and random cancels racing execution, run on several in-process workers. After
 * everything settled, the final rows of `tasks`, `futures`, `task_inputs` and `task_keys` are read
 * directly and checked for: terminal states, data-dependency order, failure/cancel propagation with
 * root causes, and strict FCFS per resource key. Plus two deterministic cases: Pulp's five-task
 * ordering on two keys, and a failure that reaches a task along two paths (a diamond).
 */
import { type SQL, sql } from "drizzle-orm"
import { Duration, Effect, Fiber, Layer, Logger, LogLevel } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { cancelTask } from "../src/engine/cancel.js"
import { type NodeSpec, submitGraph, type SubmittedGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    Effect.scoped(eff).pipe(
      Effect.provide(Layer.merge(engineLayer(url), Logger.minimumLogLevel(LogLevel.Warning)))
    ) as Effect.Effect<A, E, never>
  )

// ---- rows ----------------------------------------------------------------------------------------

interface ErrorJson {
  readonly code: string
  readonly message: string
  readonly cause_task?: string
  readonly cause_future?: string
}

/**
 * Times are the rows' timestamptz values as microseconds since the epoch (exact: the columns have
 * microsecond precision, and drizzle's raw rows would give them to us as text anyway).
 */
type Micros = bigint

interface TaskRow {
  readonly id: string
  readonly graph_id: string
  readonly node: string
  readonly seq: bigint
  readonly state: string
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
  readonly started_at: Micros | null
  readonly finished_at: Micros | null
  readonly error: ErrorJson | null
}

interface FutureRow {
  readonly id: string
  readonly state: string
  readonly producer_task: string
  readonly settled_at: Micros | null
  readonly value: unknown
  readonly error: ErrorJson | null
}

type Raw<R> = { readonly [K in keyof R]: R[K] extends bigint | null ? string | null : R[K] }
const micros = (s: string | null): Micros | null => (s === null ? null : BigInt(s))
const us = (col: SQL) => sql`(extract(epoch FROM ${col}) * 1000000)::bigint::text`
const iso = (m: Micros | null) => (m === null ? "never" : `${new Date(Number(m / 1000n)).toISOString().slice(0, -1)}${String(m % 1000n).padStart(3, "0")}Z`)

interface Snapshot {
  readonly tasks: ReadonlyArray<TaskRow>
  readonly futures: ReadonlyArray<FutureRow>
  readonly inputs: ReadonlyArray<{ readonly task_id: string; readonly future_id: string }>
  readonly keyRows: number
}

const TERMINAL = new Set(["succeeded", "failed", "canceled"])
const ids = (xs: ReadonlyArray<string>) => sql`${sql.param([...xs])}::text[]`

/** Poll (every 20 ms) until every given task is settled; fail after `timeoutMs`. */
const waitAllSettled = (taskIds: ReadonlyArray<string>, timeoutMs = 30_000) =>
  Effect.gen(function*() {
    const db = yield* Db
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const open = yield* db.rows<{ id: string; node: string; state: string }>(
        sql`SELECT id, node, state FROM tasks WHERE id = ANY(${ids(taskIds)}) AND state NOT IN ('succeeded', 'failed', 'canceled')`
      )
      if (open.length === 0) return
      if (Date.now() > deadline) {
        return yield* Effect.dieMessage(
          `${open.length} task(s) still unsettled after ${timeoutMs} ms: ${open.map((t) => `${t.node}=${t.state}`).join(", ")}`
        )
      }
      yield* Effect.sleep(Duration.millis(20))
    }
  })

const snapshot = (taskIds: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = <R>(q: SQL) => db.rows<R>(q)
    const [tasks, futures, inputs, keys] = yield* Effect.all([
      rows<Raw<TaskRow>>(sql`SELECT id, graph_id, node, seq::text AS seq, state, exclusive, shared,
                               ${us(sql`started_at`)} AS started_at, ${us(sql`finished_at`)} AS finished_at, error
                             FROM tasks WHERE id = ANY(${ids(taskIds)}) ORDER BY tasks.seq`),
      rows<Raw<FutureRow>>(sql`SELECT id, state, producer_task, ${us(sql`settled_at`)} AS settled_at, value, error
                               FROM futures WHERE producer_task = ANY(${ids(taskIds)})`),
      rows<{ task_id: string; future_id: string }>(
        sql`SELECT task_id, future_id FROM task_inputs WHERE task_id = ANY(${ids(taskIds)})`
      ),
      rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM task_keys WHERE task_id = ANY(${ids(taskIds)})`)
    ])
    return {
      tasks: tasks.map((r): TaskRow => ({
        ...r,
        seq: BigInt(r.seq!),
        started_at: micros(r.started_at),
        finished_at: micros(r.finished_at)
      })).sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)),
      futures: futures.map((r): FutureRow => ({ ...r, settled_at: micros(r.settled_at) })),
      inputs,
      keyRows: keys[0]!.n
    } satisfies Snapshot
  })

// ---- the generated scenario --------------------------------------------------------------------

const POOL = 4 // keys k0..k3 (prefixed per run, so runs never interfere)

interface NodeGen {
  readonly ms: number
  readonly fail: boolean
  readonly exclusive: ReadonlyArray<number>
  readonly shared: ReadonlyArray<number>
  /** Raw picks; input i of the node at global position p is the node at global position raw % p. */
  readonly inputs: ReadonlyArray<number>
  /** Cancel this task that many ms after its graph was submitted. */
  readonly cancelAfter: number | null
  /** Body order within the graph: stable sort by priority (all 0 = index order). */
  readonly priority: number
}

interface GraphGen {
  readonly delayBefore: number
  readonly nodes: ReadonlyArray<NodeGen>
}

const nodeArb: fc.Arbitrary<NodeGen> = fc.record({
  ms: fc.integer({ min: 0, max: 15 }),
  fail: fc.integer({ min: 0, max: 6 }).map((x) => x === 6),
  exclusive: fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { maxLength: 2 }),
  shared: fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { maxLength: 2 }),
  inputs: fc.array(fc.nat(), { maxLength: 3 }),
  cancelAfter: fc.oneof(
    { arbitrary: fc.constant(null), weight: 6 },
    { arbitrary: fc.integer({ min: 0, max: 40 }), weight: 1 }
  ),
  priority: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 })
})

const graphArb: fc.Arbitrary<GraphGen> = fc.record({
  delayBefore: fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 30 }), weight: 1 }),
  nodes: fc.array(nodeArb, { minLength: 1, maxLength: 10 })
})

const MAX_TASKS = 28
const scenarioArb = fc.array(graphArb, { minLength: 1, maxLength: 4 })
  .filter((sc) => sc.reduce((n, g) => n + g.nodes.length, 0) <= MAX_TASKS)

/** One node of the scenario, normalized. */
interface PlanNode {
  readonly g: number
  readonly i: number
  readonly name: string
  readonly label: string
  readonly gen: NodeGen
  /** Global positions of the nodes it takes data from (deduplicated, all earlier). */
  readonly deps: ReadonlyArray<number>
  /** Effective keys: a key held both ways is held exclusively. */
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
}

const plan = (sc: ReadonlyArray<GraphGen>, tag: string) => {
  const nodes: Array<PlanNode> = []
  sc.forEach((g, gi) =>
    g.nodes.forEach((n, ni) => {
      const p = nodes.length
      const deps = p === 0 ? [] : [...new Set(n.inputs.map((r) => r % p))].sort((a, b) => a - b)
      const exclusive = [...new Set(n.exclusive)].sort().map((k) => `${tag}:k${k}`)
      const shared = [...new Set(n.shared)].filter((k) => !n.exclusive.includes(k)).sort().map((k) => `${tag}:k${k}`)
      nodes.push({ g: gi, i: ni, name: `n${ni}`, label: `g${gi}.n${ni}`, gen: n, deps, exclusive, shared })
    })
  )
  /** Per graph, the global positions of its nodes in body order. */
  const bodyOrder = sc.map((_, gi) =>
    nodes.map((n, p) => ({ n, p })).filter(({ n }) => n.g === gi).sort((a, b) => a.n.gen.priority - b.n.gen.priority || a.p - b.p)
      .map(({ p }) => p)
  )
  return { nodes, bodyOrder }
}

/** The FCFS order submit.ts documents: body order, except never before a node it takes data from. */
const stableTopo = (body: ReadonlyArray<number>, nodes: ReadonlyArray<PlanNode>) => {
  const inGraph = new Set(body)
  const pos = new Map(body.map((p, k) => [p, k]))
  const pending = new Map(body.map((p) => [p, nodes[p]!.deps.filter((d) => inGraph.has(d)).length]))
  const out: Array<number> = []
  const available = body.filter((p) => pending.get(p) === 0)
  while (available.length > 0) {
    available.sort((a, b) => pos.get(a)! - pos.get(b)!)
    const p = available.shift()!
    out.push(p)
    for (const q of body) {
      if (nodes[q]!.deps.includes(p)) {
        const k = pending.get(q)! - 1
        pending.set(q, k)
        if (k === 0) available.push(q)
      }
    }
  }
  return out
}

let runCounter = 0

interface Outcome {
  readonly nodes: ReadonlyArray<PlanNode>
  readonly bodyOrder: ReadonlyArray<ReadonlyArray<number>>
  /** Per global position: task id and output future id. */
  readonly taskIds: ReadonlyArray<string>
  readonly futureIds: ReadonlyArray<string>
  readonly cancelRequested: ReadonlySet<string>
  readonly snap: Snapshot
}

const runScenario = (sc: ReadonlyArray<GraphGen>) =>
  Effect.gen(function*() {
    const tag = `r${process.pid}x${runCounter++}`
    const { nodes, bodyOrder } = plan(sc, tag)
    for (let w = 0; w < 3; w++) yield* runWorker({ slots: 2, name: `${tag}-w${w}` })

    const taskIds: Array<string> = []
    const futureIds: Array<string> = []
    const cancelRequested = new Set<string>()
    const cancels: Array<Fiber.RuntimeFiber<void, unknown>> = []

    for (let gi = 0; gi < sc.length; gi++) {
      const g = sc[gi]!
      if (g.delayBefore > 0) yield* Effect.sleep(Duration.millis(g.delayBefore))
      const spec: Record<string, NodeSpec> = {}
      for (const p of bodyOrder[gi]!) {
        const n = nodes[p]!
        const inputs = n.deps.map((d) => (nodes[d]!.g === gi ? { $ref: `${nodes[d]!.name}.result` } : { $ref: futureIds[d]! }))
        spec[n.name] = {
          task: "debug.sleep",
          params: {
            ms: n.gen.ms,
            value: n.label,
            ...(n.gen.fail ? { fail: `boom ${n.label}` } : {}),
            ...(inputs.length > 0 ? { inputs } : {})
          },
          resources: { exclusive: n.gen.exclusive.map((k) => `${tag}:k${k}`), shared: n.gen.shared.map((k) => `${tag}:k${k}`) }
        }
      }
      const submitted: SubmittedGraph = yield* submitGraph({ label: `${tag}-g${gi}`, nodes: spec })
      nodes.forEach((n, p) => {
        if (n.g !== gi) return
        const s = submitted.nodes[n.name]!
        taskIds[p] = s.task
        futureIds[p] = s.outputs.result!
      })
      for (const p of bodyOrder[gi]!) {
        const after = nodes[p]!.gen.cancelAfter
        if (after === null) continue
        const id = taskIds[p]!
        cancels.push(
          yield* Effect.fork(
            Effect.sleep(Duration.millis(after)).pipe(
              Effect.zipRight(Effect.sync(() => cancelRequested.add(id))),
              Effect.zipRight(cancelTask(id)),
              // Canceling a task that has already settled is a Conflict: expected in this race.
              Effect.catchTag("Conflict", () => Effect.void)
            )
          )
        )
      }
    }
    for (const f of cancels) yield* Fiber.join(f)
    yield* waitAllSettled(taskIds)
    const snap = yield* snapshot(taskIds)
    return { nodes, bodyOrder, taskIds, futureIds, cancelRequested, snap } satisfies Outcome
  })

// ---- the model and the checks ----------------------------------------------------------------------

type Expectation =
  | { readonly kind: "canceled" }
  | { readonly kind: "runs"; readonly state: "succeeded" | "failed" }
  | { readonly kind: "upstream"; readonly states: ReadonlySet<string>; readonly roots: ReadonlySet<string> }

/** A settled row's time; a missing one was already reported by check 1. */
const t = (m: Micros | null): Micros => m ?? -1n

/** Every violation found, as readable sentences (empty: the run conforms to the model). */
const check = (o: Outcome): Array<string> => {
  const v: Array<string> = []
  const { nodes, taskIds, futureIds, snap } = o
  const posOfTask = new Map(taskIds.map((id, p) => [id, p]))
  const posOfFuture = new Map(futureIds.map((id, p) => [id, p]))
  const label = (taskId: string | undefined) => {
    const p = taskId === undefined ? undefined : posOfTask.get(taskId)
    return p === undefined ? `<foreign ${taskId}>` : nodes[p]!.label
  }
  const flabel = (futureId: string | undefined) => {
    const p = futureId === undefined ? undefined : posOfFuture.get(futureId)
    return p === undefined ? `<foreign future ${futureId}>` : `${nodes[p]!.label}.result`
  }
  const task = new Map(snap.tasks.map((r) => [r.id, r]))
  const future = new Map(snap.futures.map((r) => [r.id, r]))
  const T = (p: number) => task.get(taskIds[p]!)!
  const F = (p: number) => future.get(futureIds[p]!)!

  // ---- 1. terminal states, one settled future each, no key rows left, inputs as submitted ----
  if (snap.tasks.length !== nodes.length) v.push(`expected ${nodes.length} task rows, found ${snap.tasks.length}`)
  if (snap.futures.length !== nodes.length) v.push(`expected ${nodes.length} future rows, found ${snap.futures.length}`)
  if (snap.keyRows !== 0) v.push(`${snap.keyRows} task_keys row(s) left for settled tasks`)
  const inputsOf = new Map<string, Set<string>>()
  for (const r of snap.inputs) (inputsOf.get(r.task_id) ?? inputsOf.set(r.task_id, new Set()).get(r.task_id)!).add(r.future_id)
  const expectedFutureState: Record<string, string> = { succeeded: "resolved", failed: "failed", canceled: "canceled" }
  nodes.forEach((n, p) => {
    const tr = T(p)
    const fr = F(p)
    if (!tr || !fr) return void v.push(`${n.label}: task or future row missing`)
    if (!TERMINAL.has(tr.state)) v.push(`${n.label}: task is ${tr.state}, not terminal`)
    if (tr.finished_at === null) v.push(`${n.label}: settled task without finished_at`)
    if (fr.producer_task !== tr.id) v.push(`${n.label}: future producer mismatch`)
    if (fr.state !== expectedFutureState[tr.state]) v.push(`${n.label}: task ${tr.state} but its future ${fr.state}`)
    if (fr.settled_at === null) v.push(`${n.label}: future not settled`)
    const want = n.deps.map((d) => futureIds[d]!).sort()
    const got = [...(inputsOf.get(tr.id) ?? [])].sort()
    if (JSON.stringify(want) !== JSON.stringify(got)) v.push(`${n.label}: task_inputs ${got.map(flabel)} != expected ${want.map(flabel)}`)
    if (JSON.stringify([...tr.exclusive].sort()) !== JSON.stringify(n.exclusive) || JSON.stringify([...tr.shared].sort()) !== JSON.stringify(n.shared)) {
      v.push(`${n.label}: keys ex=${tr.exclusive} sh=${tr.shared}, expected ex=${n.exclusive} sh=${n.shared}`)
    }
  })
  if (v.length > 0) return v

  // ---- FCFS order is the submission order: graph by graph, stable topological within a graph ----
  o.bodyOrder.forEach((body, gi) => {
    const want = stableTopo(body, nodes).map((p) => nodes[p]!.label)
    const got = snap.tasks.filter((r) => nodes[posOfTask.get(r.id)!]!.g === gi).map((r) => label(r.id))
    if (JSON.stringify(want) !== JSON.stringify(got)) v.push(`graph g${gi}: seq order ${got} != stable topological order ${want}`)
  })
  for (let p = 1; p < nodes.length; p++) {
    if (nodes[p]!.g !== nodes[p - 1]!.g && T(p).seq < T(p - 1).seq) v.push(`graph g${nodes[p]!.g} has seqs before graph g${nodes[p - 1]!.g}`)
  }

  // ---- 2. data-dependency order ----
  nodes.forEach((n, p) => {
    const tr = T(p)
    if (tr.started_at === null) return
    for (const d of n.deps) {
      const fr = F(d)
      if (fr.state !== "resolved") v.push(`${n.label} ran although its input ${nodes[d]!.label}.result is ${fr.state}`)
      if (t(tr.started_at) < t(fr.settled_at)) {
        v.push(`${n.label} started at ${iso(tr.started_at)} before its input ${nodes[d]!.label}.result settled at ${iso(fr.settled_at)}`)
      }
    }
  })

  // ---- 3. propagation, against the model ----
  // The root cause of a settled, unsuccessful task, from the actual rows (following cause_future).
  const rootMemo = new Map<string, string | undefined>()
  const rootOf = (taskId: string, depth = 0): string | undefined => {
    if (rootMemo.has(taskId)) return rootMemo.get(taskId)
    const tr = task.get(taskId)
    let r: string | undefined
    const code = tr?.error?.code
    if (code === "task_failed" || code === "canceled") r = taskId
    else if ((code === "upstream_failed" || code === "upstream_canceled") && depth < 1000) {
      const cf = tr!.error!.cause_future
      const producer = cf === undefined ? undefined : future.get(cf)?.producer_task
      r = producer === undefined ? undefined : rootOf(producer, depth + 1)
    }
    rootMemo.set(taskId, r)
    return r
  }
  // The model, in global order (every dep is earlier), given which tasks were actually canceled
  // directly (cancels race with execution, so that is read from the outcome).
  const model: Array<Expectation> = []
  const failedStateOf = (e: Expectation): ReadonlySet<string> =>
    e.kind === "canceled" ? new Set(["canceled"]) : e.kind === "runs" ? new Set(e.state === "failed" ? ["failed"] : []) : e.states
  const rootsOf = (e: Expectation, p: number): ReadonlySet<string> =>
    e.kind === "upstream" ? e.roots : new Set([taskIds[p]!])
  nodes.forEach((n, p) => {
    const tr = T(p)
    let e: Expectation
    if (tr.error?.code === "canceled") {
      e = { kind: "canceled" }
      if (!o.cancelRequested.has(tr.id)) v.push(`${n.label} is canceled but nobody canceled it`)
    } else {
      const bad = n.deps.filter((d) => failedStateOf(model[d]!).size > 0)
      if (bad.length === 0) e = { kind: "runs", state: n.gen.fail ? "failed" : "succeeded" }
      else {
        e = {
          kind: "upstream",
          states: new Set(bad.flatMap((d) => [...failedStateOf(model[d]!)])),
          roots: new Set(bad.flatMap((d) => [...rootsOf(model[d]!, d)]))
        }
      }
    }
    model.push(e)

    const fr = F(p)
    const err = tr.error
    const ferr = fr.error
    switch (e.kind) {
      case "canceled": {
        if (tr.state !== "canceled") v.push(`${n.label}: error code canceled but state ${tr.state}`)
        if (ferr?.code !== "canceled" || ferr.cause_task !== tr.id) v.push(`${n.label}: canceled, but its future's error is ${JSON.stringify(ferr)}`)
        break
      }
      case "runs": {
        if (tr.started_at === null) v.push(`${n.label}: expected to run (${e.state}) but never started; it is ${tr.state} ${JSON.stringify(err)}`)
        if (tr.state !== e.state) v.push(`${n.label}: expected ${e.state}, got ${tr.state} ${JSON.stringify(err)}`)
        else if (e.state === "succeeded") {
          if (fr.value !== n.label) v.push(`${n.label}: resolved with ${JSON.stringify(fr.value)}, expected ${JSON.stringify(n.label)}`)
        } else {
          if (err?.code !== "task_failed" || err.message !== `boom ${n.label}`) v.push(`${n.label}: failed with ${JSON.stringify(err)}, expected task_failed`)
          if (ferr?.code !== "task_failed" || ferr.cause_task !== tr.id || ferr.cause_future !== undefined) {
            v.push(`${n.label}: its future's error is ${JSON.stringify(ferr)}, expected task_failed with cause_task itself`)
          }
        }
        if (tr.started_at !== null && tr.finished_at !== null && t(tr.finished_at) < t(tr.started_at)) v.push(`${n.label}: finished before it started`)
        break
      }
      case "upstream": {
        if (!e.states.has(tr.state)) {
          v.push(`${n.label}: expected ${[...e.states].join("|")} (upstream of ${[...e.roots].map(label)}), got ${tr.state} ${JSON.stringify(err)}`)
          break
        }
        if (tr.started_at !== null) v.push(`${n.label}: ran although an input was ${tr.state}`)
        const code = tr.state === "failed" ? "upstream_failed" : "upstream_canceled"
        if (err?.code !== code) {
          v.push(`${n.label}: error code ${err?.code}, expected ${code}`)
          break
        }
        const cf = err.cause_future
        const cfp = cf === undefined ? undefined : posOfFuture.get(cf)
        if (cfp === undefined || !n.deps.includes(cfp)) v.push(`${n.label}: cause_future ${flabel(cf)} is not one of its inputs ${n.deps.map((d) => nodes[d]!.label)}`)
        else {
          const cfr = F(cfp)
          if (cfr.state !== tr.state) v.push(`${n.label}: ${tr.state} with cause_future ${flabel(cf)} which is ${cfr.state}`)
          // Effect never before cause: the task settled because cause_future had settled.
          if (t(tr.finished_at) < t(cfr.settled_at)) {
            v.push(`${n.label}: settled at ${iso(tr.finished_at)}, before its cause_future ${flabel(cf)} settled at ${iso(cfr.settled_at)}`)
          }
          // cause_task is the root reached by following cause_future links, not just some root.
          const root = rootOf(cfr.producer_task)
          if (err.cause_task !== root) v.push(`${n.label}: cause_task ${label(err.cause_task)}, but the root cause through ${flabel(cf)} is ${label(root)}`)
        }
        if (err.cause_task === undefined || !e.roots.has(err.cause_task)) {
          v.push(`${n.label}: cause_task ${label(err.cause_task)} is not a possible root (${[...e.roots].map(label)})`)
        }
        if (ferr?.code !== err.code || ferr.cause_task !== err.cause_task || ferr.cause_future !== err.cause_future) {
          v.push(`${n.label}: future error ${JSON.stringify(ferr)} differs from task error ${JSON.stringify(err)}`)
        }
        break
      }
    }
  })

  // ---- 4. strict FCFS per key ----
  for (let a = 0; a < nodes.length; a++) {
    for (let b = 0; b < nodes.length; b++) {
      if (a === b) continue
      const A = nodes[a]!
      const B = nodes[b]!
      const conflict = A.exclusive.find((k) => B.exclusive.includes(k) || B.shared.includes(k)) ??
        A.shared.find((k) => B.exclusive.includes(k))
      if (conflict === undefined) continue
      const ta = T(a)
      const tb = T(b)
      if (ta.seq < tb.seq && tb.started_at !== null) {
        // Every earlier conflicting task, whether it ran or not, settled before B started.
        if (t(tb.started_at) < t(ta.finished_at)) {
          v.push(`FCFS on ${conflict}: ${B.label} started at ${iso(tb.started_at)} before earlier ${A.label} (${ta.state}) finished at ${iso(ta.finished_at)}`)
        }
      }
      if (a < b && ta.started_at !== null && tb.started_at !== null) {
        const overlap = t(ta.started_at) < t(tb.finished_at) && t(tb.started_at) < t(ta.finished_at)
        if (overlap) v.push(`${A.label} and ${B.label} conflict on ${conflict} but ran at overlapping times`)
      }
    }
  }
  return v
}

/** The final rows of a run, one line per task, with ids replaced by node labels: for failure messages. */
const dump = (o: Outcome): string => {
  const names = new Map<string, string>()
  o.taskIds.forEach((id, p) => names.set(id, o.nodes[p]!.label))
  o.futureIds.forEach((id, p) => names.set(id, `${o.nodes[p]!.label}.result`))
  const err = (e: ErrorJson | null) =>
    e === null ? "-" : JSON.stringify(e).replace(/[0-9A-HJKMNP-TV-Z]{26}/g, (m) => names.get(m) ?? m)
  return o.snap.tasks.map((r) => {
    const p = o.taskIds.indexOf(r.id)
    const n = o.nodes[p]!
    const f = o.snap.futures.find((x) => x.producer_task === r.id)
    return `${n.label} seq=${r.seq} deps=[${n.deps.map((d) => o.nodes[d]!.label)}] ex=[${n.exclusive}] sh=[${n.shared}]` +
      ` ms=${n.gen.ms} fail=${n.gen.fail} cancelRequested=${o.cancelRequested.has(r.id)} -> ${r.state}` +
      ` started=${iso(r.started_at)} finished=${iso(r.finished_at)} settled=${iso(f?.settled_at ?? null)} error=${err(r.error)}`
  }).join("\n")
}

// ---- the tests -----------------------------------------------------------------------------------

describe("engine properties", () => {
  it("random multi-graph DAGs with keys, failures and cancels conform to the model", async () => {
    const stats = { runs: 0, graphs: 0, tasks: 0, ran: 0, task_failed: 0, cancelRequested: 0, canceled: 0, upstream: 0 }
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const outcome = await run(runScenario(sc))
        const rows = outcome.snap.tasks
        stats.runs += 1
        stats.graphs += sc.length
        stats.tasks += rows.length
        stats.ran += rows.filter((r) => r.started_at !== null).length
        stats.task_failed += rows.filter((r) => r.error?.code === "task_failed").length
        stats.cancelRequested += outcome.cancelRequested.size
        stats.canceled += rows.filter((r) => r.error?.code === "canceled").length
        stats.upstream += rows.filter((r) => r.error?.code.startsWith("upstream_") === true).length
        const violations = check(outcome)
        expect(violations, violations.length > 0 ? `final rows:\n${dump(outcome)}\n` : undefined).toEqual([])
      }),
      // A passing run takes ~15 s on a quiet machine. Shrinking a failure re-runs scenarios (and
      // races rarely reproduce on demand): the time limit stops it and reports the smallest
      // counterexample found so far. On a loaded machine the limit may also cut the passing runs
      // short: that is not a failure (the machine's speed is not a property of the engine), and the
      // checks below make sure enough scenarios ran to exercise every behaviour.
      { numRuns: 25, plugins: [fc.interruptAfterTimeLimit(60_000, { failOnInterrupt: false })] }
    )
    // The generator must exercise what the properties are about.
    expect(stats.runs).toBeGreaterThanOrEqual(5)
    expect(stats.graphs).toBeGreaterThan(stats.runs)
    expect(stats.ran).toBeGreaterThan(0)
    expect(stats.task_failed).toBeGreaterThan(0)
    expect(stats.cancelRequested).toBeGreaterThan(0)
    expect(stats.upstream).toBeGreaterThan(0)
  })

  it("Pulp's five-task ordering on two keys", async () => {
    const rows = await run(Effect.gen(function*() {
      for (let w = 0; w < 3; w++) yield* runWorker({ slots: 2, name: `pulp-w${w}` })
      const A = "pulp:A"
      const B = "pulp:B"
      const node = (exclusive: Array<string>, shared: Array<string>): NodeSpec => ({
        task: "debug.sleep",
        params: { ms: 30 },
        resources: { exclusive, shared }
      })
      const g = yield* submitGraph({
        nodes: {
          t1: node([A], []),
          t2: node([], [A]),
          t3: node([], [A]),
          t4: node([A, B], []),
          t5: node([], [B])
        }
      })
      const taskIds = ["t1", "t2", "t3", "t4", "t5"].map((n) => g.nodes[n]!.task)
      yield* waitAllSettled(taskIds)
      const snap = yield* snapshot(taskIds)
      return new Map(snap.tasks.map((r) => [r.node, r]))
    }))
    const at = (node: string) => {
      const r = rows.get(node)
      expect(r?.state, node).toBe("succeeded")
      expect(r?.started_at, node).not.toBeNull()
      expect(r?.finished_at, node).not.toBeNull()
      return { started: r!.started_at!, finished: r!.finished_at! }
    }
    const [t1, t2, t3, t4, t5] = ["t1", "t2", "t3", "t4", "t5"].map(at) as [
      ReturnType<typeof at>, ReturnType<typeof at>, ReturnType<typeof at>, ReturnType<typeof at>, ReturnType<typeof at>
    ]
    expect(t2.started).toBeGreaterThanOrEqual(t1.finished)
    expect(t3.started).toBeGreaterThanOrEqual(t1.finished)
    expect(t4.started).toBeGreaterThanOrEqual(t2.finished)
    expect(t4.started).toBeGreaterThanOrEqual(t3.finished)
    expect(t5.started).toBeGreaterThanOrEqual(t4.finished)
    // t2 and t3 both hold A shared: they may overlap, and nothing is asserted about whether they did.
  })

  it("a failure reaching a task along two paths names a root its cause_future agrees with", async () => {
    // Diamonds settled by one cascade (here: the submission's, as both inputs of `a` are already
    // canceled): r1 -> a <- r2, a -> b. `a` picks one of its inputs as cause_future; b's cause_future
    // is a.result, so b's cause_task must be a's root, not the other one.
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      // No workers: r1 and r2 stay ready until canceled, which settles them at once.
      const g0 = yield* submitGraph({ nodes: { r1: { task: "debug.sleep" }, r2: { task: "debug.sleep" } } })
      yield* cancelTask(g0.nodes.r1!.task)
      yield* cancelTask(g0.nodes.r2!.task)
      const r1 = g0.nodes.r1!.outputs.result!
      const r2 = g0.nodes.r2!.outputs.result!
      const nodes: Record<string, NodeSpec> = {}
      for (let i = 0; i < 4; i++) {
        nodes[`a${i}`] = { task: "debug.sleep", params: { inputs: i % 2 === 0 ? [{ $ref: r1 }, { $ref: r2 }] : [{ $ref: r2 }, { $ref: r1 }] } }
        nodes[`b${i}`] = { task: "debug.sleep", params: { inputs: [{ $ref: `a${i}.result` }] } }
      }
      const g1 = yield* submitGraph({ nodes })
      const rows = yield* db.rows<{ node: string; state: string; error: ErrorJson }>(
        sql`SELECT node, state, error FROM tasks WHERE graph_id = ${g1.id}`
      )
      const names = new Map<string, string>([[g0.nodes.r1!.task, "r1"], [g0.nodes.r2!.task, "r2"], [r1, "r1.result"], [r2, "r2.result"]])
      for (const [n, v] of Object.entries(g1.nodes)) names.set(v.outputs.result!, `${n}.result`)
      return new Map(rows.map((r) => [r.node, { state: r.state, cause_future: names.get(r.error.cause_future!), cause_task: names.get(r.error.cause_task!) }]))
    }))
    for (let i = 0; i < 4; i++) {
      const a = out.get(`a${i}`)!
      const b = out.get(`b${i}`)!
      expect(a.state).toBe("canceled")
      expect(b.state).toBe("canceled")
      expect(b.cause_future).toBe(`a${i}.result`)
      // a's cause_task is the root through a's cause_future; b's must be the same task.
      expect(a.cause_task).toBe(a.cause_future!.replace(".result", ""))
      expect({ node: `b${i}`, cause_task: b.cause_task }).toEqual({ node: `b${i}`, cause_task: a.cause_task })
    }
  })
})
