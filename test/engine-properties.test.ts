/**
 * Property-based tests of the engine against a model: random DAGs spanning several graphs (later
 * graphs consume futures of earlier ones by future id), some graphs submitted concurrently from
 * several fibers (each its own pooled connection), random resource keys from a small pool, tasks
 * that fail on some of their attempts and are retried, and random cancels racing execution, run on
 * several in-process workers. After everything settled, the final rows of `tasks`, `futures`,
 * `task_inputs` and `task_keys` are read directly, together with the start of every attempt the
 * handlers saw, and checked for: terminal states, attempts as the model predicts, data-dependency
 * order, failure/cancel propagation with root causes, strict FCFS per resource key (every attempt),
 * and `seq` order: submission order between graphs submitted one after the other, commit order per
 * key (never interleaved) between graphs submitted at once. Plus two deterministic cases: Pulp's
 * five-task ordering on two keys, and a failure that reaches a task along two paths (a diamond).
 */
import { type SQL, sql } from "drizzle-orm"
import { Deferred, Duration, Effect, Fiber, Layer, Logger, LogLevel, Schema } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { cancelTask } from "../src/engine/cancel.js"
import { TaskFailure } from "../src/engine/errors.js"
import { defineKind, FutureRef, noResources, VALUE } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { type NodeSpec, submitGraph, type SubmittedGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/**
 * Every attempt that reached a handler of `test.attempts`: task id -> attempt number -> when it
 * was claimed (the row's `started_at` as the handler found it, so in the database's clock).
 */
const attemptStarts = new Map<string, Map<number, bigint>>()

/** Every attempt's handler, as this process's clock saw it run: task id -> [start, end] (ms). */
const attemptSpans = new Map<string, Array<readonly [number, number]>>()

/**
 * `debug.sleep` with attempts: records its attempt, sleeps `ms`, then fails if its attempt number
 * is in `failOn`, else resolves `value`.
 */
const attemptsKind = defineKind({
  name: "test.attempts",
  params: Schema.Struct({
    ms: Schema.Int,
    value: Schema.String,
    failOn: Schema.Array(Schema.Int),
    inputs: Schema.optional(Schema.Array(FutureRef()))
  }),
  outputs: { result: VALUE },
  resources: noResources,
  handler: (p, ctx) => {
    const began = performance.now()
    return Effect.gen(function*() {
      const db = yield* Db
      const [row] = yield* db.rows<{ s: string }>(
        sql`SELECT (extract(epoch FROM started_at) * 1000000)::bigint::text AS s FROM tasks WHERE id = ${ctx.taskId}`
      ).pipe(Effect.orDie)
      const mine = attemptStarts.get(ctx.taskId) ?? attemptStarts.set(ctx.taskId, new Map()).get(ctx.taskId)!
      mine.set(ctx.attempt, BigInt(row!.s))
      if (p.ms > 0) yield* Effect.sleep(Duration.millis(p.ms))
      if (p.failOn.includes(ctx.attempt)) return yield* new TaskFailure({ code: "task_failed", message: `boom ${p.value} #${ctx.attempt}` })
      return { result: p.value }
    }).pipe(Effect.ensuring(Effect.sync(() => {
      const spans = attemptSpans.get(ctx.taskId) ?? attemptSpans.set(ctx.taskId, []).get(ctx.taskId)!
      spans.push([began, performance.now()])
    })))
  }
})

/** Gates by name: `test.gate` runs until its gate is opened (the test succeeds the Deferred). */
const gates = new Map<string, Deferred.Deferred<void>>()
const gateKind = defineKind({
  name: "test.gate",
  params: Schema.Struct({ gate: Schema.String }),
  outputs: { result: VALUE },
  resources: noResources,
  handler: (p) => Effect.as(Deferred.await(gates.get(p.gate)!), { result: p.gate })
})

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    Effect.scoped(eff).pipe(
      Effect.provide(Layer.merge(engineLayer(url, {}, [...builtinKinds, attemptsKind, gateKind]), Logger.minimumLogLevel(LogLevel.Error)))
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
  readonly attempts: number
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
      rows<Raw<TaskRow>>(sql`SELECT id, graph_id, node, seq::text AS seq, state, attempts, exclusive, shared,
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
  /** max_attempts. */
  readonly maxAttempts: number
  /** The attempt numbers that fail (the others succeed). */
  readonly failOn: ReadonlyArray<number>
  readonly exclusive: ReadonlyArray<number>
  readonly shared: ReadonlyArray<number>
  /** Raw picks; input i of the node at global position p is the node at global position raw % p. */
  readonly inputs: ReadonlyArray<number>
  /** Cancel this task that many ms after its graph was submitted. */
  readonly cancelAfter: number | null
  /** Body order within the graph: stable sort by this rank (all 0 = index order). */
  readonly bodyRank: number
  /** The node's `priority` (claim order among ready tasks). */
  readonly priority: number
  /** The node's `retry_backoff_ms`. */
  readonly backoffMs: number
}

interface GraphGen {
  /** Before submitting this graph (ignored for a graph submitted with the previous one). */
  readonly delayBefore: number
  /** Submitted at the same time as the previous graph, from another fiber and connection. */
  readonly withPrevious: boolean
  readonly nodes: ReadonlyArray<NodeGen>
}

/**
 * Failures: a task fails on every attempt (1 in 10), or on its first `transient` attempts (0, 1 or
 * 2); with max_attempts of 1 to 3 that gives tasks that succeed at once, succeed on a retry, fail
 * after retrying, and fail at once, at rates that keep most of the graph running.
 */
const nodeArb: fc.Arbitrary<NodeGen> = fc.record({
  ms: fc.integer({ min: 0, max: 15 }),
  maxAttempts: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 2 }), weight: 4 }, { arbitrary: fc.constant(3), weight: 1 }),
  permanent: fc.integer({ min: 0, max: 9 }).map((x) => x === 9),
  transient: fc.oneof({ arbitrary: fc.constant(0), weight: 7 }, { arbitrary: fc.constant(1), weight: 2 }, { arbitrary: fc.constant(2), weight: 1 }),
  exclusive: fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { maxLength: 2 }),
  shared: fc.uniqueArray(fc.integer({ min: 0, max: POOL - 1 }), { maxLength: 2 }),
  inputs: fc.array(fc.nat(), { maxLength: 3 }),
  cancelAfter: fc.oneof(
    { arbitrary: fc.constant(null), weight: 6 },
    { arbitrary: fc.integer({ min: 0, max: 40 }), weight: 1 }
  ),
  bodyRank: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 }),
  priority: fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 1 }),
  backoffMs: fc.oneof({ arbitrary: fc.constant(0), weight: 2 }, { arbitrary: fc.integer({ min: 5, max: 40 }), weight: 1 })
}).map(({ permanent, transient, ...n }) => ({ ...n, failOn: permanent ? [1, 2, 3] : Array.from({ length: transient }, (_, i) => i + 1) }))

const graphArb: fc.Arbitrary<GraphGen> = fc.record({
  delayBefore: fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 30 }), weight: 1 }),
  withPrevious: fc.oneof({ arbitrary: fc.constant(false), weight: 2 }, { arbitrary: fc.constant(true), weight: 1 }),
  nodes: fc.array(nodeArb, { minLength: 1, maxLength: 10 })
})

const MAX_TASKS = 28
const scenarioArb = fc.array(graphArb, { minLength: 1, maxLength: 4 })
  .filter((sc) => sc.reduce((n, g) => n + g.nodes.length, 0) <= MAX_TASKS)

/** One node of the scenario, normalized. */
interface PlanNode {
  readonly g: number
  /** The submission batch of its graph: graphs of one batch are submitted concurrently. */
  readonly batch: number
  readonly i: number
  readonly name: string
  readonly label: string
  readonly gen: NodeGen
  /**
   * Global positions of the nodes it takes data from (deduplicated, all earlier): earlier nodes of
   * its graph, or nodes of graphs of earlier batches (a graph submitted at the same time as another
   * cannot know that one's future ids).
   */
  readonly deps: ReadonlyArray<number>
  /** Effective keys: a key held both ways is held exclusively. */
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
}

/** The batch of each graph: a graph `withPrevious` joins the previous graph's batch. */
const batchesOf = (sc: ReadonlyArray<GraphGen>) => {
  const out: Array<number> = []
  sc.forEach((g, gi) => out.push(gi === 0 ? 0 : g.withPrevious ? out[gi - 1]! : out[gi - 1]! + 1))
  return out
}

const plan = (sc: ReadonlyArray<GraphGen>, tag: string) => {
  const nodes: Array<PlanNode> = []
  const batchOf = batchesOf(sc)
  sc.forEach((g, gi) =>
    g.nodes.forEach((n, ni) => {
      const p = nodes.length
      const allowed = nodes.map((m, q) => ({ m, q })).filter(({ m }) => m.g === gi || m.batch < batchOf[gi]!).map(({ q }) => q)
      const deps = allowed.length === 0 ? [] : [...new Set(n.inputs.map((r) => allowed[r % allowed.length]!))].sort((a, b) => a - b)
      const exclusive = [...new Set(n.exclusive)].sort().map((k) => `${tag}:k${k}`)
      const shared = [...new Set(n.shared)].filter((k) => !n.exclusive.includes(k)).sort().map((k) => `${tag}:k${k}`)
      nodes.push({ g: gi, batch: batchOf[gi]!, i: ni, name: `n${ni}`, label: `g${gi}.n${ni}`, gen: n, deps, exclusive, shared })
    })
  )
  /** Per graph, the global positions of its nodes in body order. */
  const bodyOrder = sc.map((_, gi) =>
    nodes.map((n, p) => ({ n, p })).filter(({ n }) => n.g === gi).sort((a, b) => a.n.gen.bodyRank - b.n.gen.bodyRank || a.p - b.p)
      .map(({ p }) => p)
  )
  return { nodes, bodyOrder, batchOf }
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
  /** Per graph, its submission batch. */
  readonly batchOf: ReadonlyArray<number>
  readonly bodyOrder: ReadonlyArray<ReadonlyArray<number>>
  /** Per global position: task id and output future id. */
  readonly taskIds: ReadonlyArray<string>
  readonly futureIds: ReadonlyArray<string>
  readonly cancelRequested: ReadonlySet<string>
  readonly snap: Snapshot
  /** Per global position: the attempts its handler saw (attempt number -> start, database clock). */
  readonly attemptsSeen: ReadonlyArray<ReadonlyMap<number, Micros>>
}

const runScenario = (sc: ReadonlyArray<GraphGen>) =>
  Effect.gen(function*() {
    const tag = `r${process.pid}x${runCounter++}`
    const { nodes, bodyOrder, batchOf } = plan(sc, tag)
    for (let w = 0; w < 3; w++) yield* runWorker({ slots: 2, name: `${tag}-w${w}` })

    const taskIds: Array<string> = []
    const futureIds: Array<string> = []
    const cancelRequested = new Set<string>()
    const cancels: Array<Fiber.RuntimeFiber<void, unknown>> = []

    /** Submit graph `gi`, then start its cancels (each `cancelAfter` ms after the submission). */
    const submitOne = (gi: number) =>
      Effect.gen(function*() {
        const spec: Record<string, NodeSpec> = {}
        for (const p of bodyOrder[gi]!) {
          const n = nodes[p]!
          const inputs = n.deps.map((d) => (nodes[d]!.g === gi ? { $ref: `${nodes[d]!.name}.result` } : { $ref: futureIds[d]! }))
          spec[n.name] = {
            task: "test.attempts",
            params: { ms: n.gen.ms, value: n.label, failOn: [...n.gen.failOn], ...(inputs.length > 0 ? { inputs } : {}) },
            resources: { exclusive: n.gen.exclusive.map((k) => `${tag}:k${k}`), shared: n.gen.shared.map((k) => `${tag}:k${k}`) },
            max_attempts: n.gen.maxAttempts,
            priority: n.gen.priority,
            retry_backoff_ms: n.gen.backoffMs
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
            yield* Effect.forkScoped(
              Effect.sleep(Duration.millis(after)).pipe(
                Effect.zipRight(Effect.sync(() => cancelRequested.add(id))),
                Effect.zipRight(cancelTask(id)),
                // Canceling a task that has already settled is a Conflict: expected in this race.
                Effect.catchTag("Conflict", () => Effect.void)
              )
            )
          )
        }
      })

    const batches = [...new Set(batchOf)]
    for (const b of batches) {
      const graphs = sc.map((_, gi) => gi).filter((gi) => batchOf[gi] === b)
      const delay = sc[graphs[0]!]!.delayBefore
      if (delay > 0) yield* Effect.sleep(Duration.millis(delay))
      // Graphs of one batch are submitted at once, each in its own fiber (and pooled connection).
      yield* Effect.all(graphs.map(submitOne), { concurrency: "unbounded", discard: true })
    }
    for (const f of cancels) yield* Fiber.join(f)
    yield* waitAllSettled(taskIds)
    const snap = yield* snapshot(taskIds)
    const attemptsSeen = taskIds.map((id) => attemptStarts.get(id) ?? new Map<number, Micros>())
    return { nodes, batchOf, bodyOrder, taskIds, futureIds, cancelRequested, snap, attemptsSeen } satisfies Outcome
  })

// ---- the model and the checks ----------------------------------------------------------------------

type Expectation =
  | { readonly kind: "canceled" }
  /** Runs `attempts` attempts, the last of which succeeds or fails. */
  | { readonly kind: "runs"; readonly state: "succeeded" | "failed"; readonly attempts: number }
  | { readonly kind: "upstream"; readonly states: ReadonlySet<string>; readonly roots: ReadonlySet<string> }

/** A task that runs: its first attempt not in `failOn` succeeds; if every allowed attempt fails, the last one's failure is final. */
const runs = (gen: NodeGen): Expectation => {
  for (let a = 1; a <= gen.maxAttempts; a++) if (!gen.failOn.includes(a)) return { kind: "runs", state: "succeeded", attempts: a }
  return { kind: "runs", state: "failed", attempts: gen.maxAttempts }
}

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

  // ---- FCFS order is the submission order: stable topological within a graph; batch by batch
  // between graphs submitted one after the other; commit order per key between graphs submitted
  // at once (which one commits first is the database's to decide, so it is read from the rows,
  // and it must be one order: never interleaved on a key, the same on every key they share) ----
  o.bodyOrder.forEach((body, gi) => {
    const want = stableTopo(body, nodes).map((p) => nodes[p]!.label)
    const got = snap.tasks.filter((r) => nodes[posOfTask.get(r.id)!]!.g === gi).map((r) => label(r.id))
    if (JSON.stringify(want) !== JSON.stringify(got)) v.push(`graph g${gi}: seq order ${got} != stable topological order ${want}`)
  })
  const positions = nodes.map((_, p) => p)
  for (let b = 1; b <= Math.max(...o.batchOf); b++) {
    const earlier = positions.filter((p) => nodes[p]!.batch === b - 1).map((p) => T(p).seq)
    const later = positions.filter((p) => nodes[p]!.batch === b).map((p) => T(p).seq)
    if (later.some((x) => earlier.some((y) => x < y))) v.push(`batch ${b} has seqs before batch ${b - 1}, which was submitted first`)
  }
  for (let x = 0; x < o.batchOf.length; x++) {
    for (let y = x + 1; y < o.batchOf.length; y++) {
      if (o.batchOf[x] !== o.batchOf[y]) continue
      const orders = new Set<string>()
      for (const k of new Set(nodes.flatMap((n) => [...n.exclusive, ...n.shared]))) {
        const onKey = (g: number) => positions.filter((p) => nodes[p]!.g === g && [...nodes[p]!.exclusive, ...nodes[p]!.shared].includes(k)).map((p) => T(p).seq)
        const sx = onKey(x)
        const sy = onKey(y)
        if (sx.length === 0 || sy.length === 0) continue
        const xFirst = sx.every((a) => sy.every((c) => a < c))
        const yFirst = sy.every((c) => sx.every((a) => c < a))
        if (!xFirst && !yFirst) v.push(`graphs g${x} and g${y}, submitted at once, interleave on ${k}: seqs ${sx} and ${sy}`)
        else orders.add(xFirst ? `g${x} before g${y}` : `g${y} before g${x}`)
      }
      if (orders.size > 1) v.push(`graphs g${x} and g${y}, submitted at once, are in different orders on different keys: ${[...orders]}`)
    }
  }

  /** When each attempt of the task at `p` started: the last from its row, every one its handler saw. */
  const starts = (p: number): Array<[string, Micros]> => [
    ...(T(p).started_at === null ? [] : [["its last attempt", T(p).started_at!] as [string, Micros]]),
    ...[...o.attemptsSeen[p]!].map(([a, at]): [string, Micros] => [`attempt ${a}`, at])
  ]

  // ---- 2. data-dependency order (every attempt) ----
  nodes.forEach((n, p) => {
    if (starts(p).length === 0) return
    for (const d of n.deps) {
      const fr = F(d)
      if (fr.state !== "resolved") v.push(`${n.label} ran although its input ${nodes[d]!.label}.result is ${fr.state}`)
      for (const [which, at] of starts(p)) {
        if (at < t(fr.settled_at)) v.push(`${n.label} (${which}) started at ${iso(at)} before its input ${nodes[d]!.label}.result settled at ${iso(fr.settled_at)}`)
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
      if (bad.length === 0) e = runs(n.gen)
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
        if (tr.state !== e.state) v.push(`${n.label}: expected ${e.state} after ${e.attempts} attempt(s), got ${tr.state} ${JSON.stringify(err)}`)
        else if (e.state === "succeeded") {
          if (fr.value !== n.label) v.push(`${n.label}: resolved with ${JSON.stringify(fr.value)}, expected ${JSON.stringify(n.label)}`)
        } else {
          const message = `boom ${n.label} #${e.attempts}`
          if (err?.code !== "task_failed" || err.message !== message) v.push(`${n.label}: failed with ${JSON.stringify(err)}, expected task_failed "${message}"`)
          if (ferr?.code !== "task_failed" || ferr.cause_task !== tr.id || ferr.cause_future !== undefined) {
            v.push(`${n.label}: its future's error is ${JSON.stringify(ferr)}, expected task_failed with cause_task itself`)
          }
        }
        if (tr.started_at !== null && tr.finished_at !== null && t(tr.finished_at) < t(tr.started_at)) v.push(`${n.label}: finished before it started`)
        // Exactly the attempts the model predicts, each run once, in order, none skipped.
        if (tr.attempts !== e.attempts) v.push(`${n.label}: ${tr.attempts} attempt(s), expected ${e.attempts} (max_attempts ${n.gen.maxAttempts}, failing on ${n.gen.failOn})`)
        const seen = [...o.attemptsSeen[p]!.keys()].sort((a, b) => a - b)
        if (JSON.stringify(seen) !== JSON.stringify(Array.from({ length: e.attempts }, (_, i) => i + 1))) {
          v.push(`${n.label}: the handler saw attempts ${seen}, expected 1..${e.attempts}`)
        }
        const at = [...o.attemptsSeen[p]!].sort(([a], [b]) => a - b).map(([, s]) => s)
        if (at.some((s, i) => i > 0 && s < at[i - 1]!)) v.push(`${n.label}: a later attempt started before an earlier one`)
        // A retry waits its backoff, doubled for each retry before it: attempt i + 1 starts at least
        // backoff * 2^(i - 1) ms after attempt i started (and then failed).
        at.forEach((s, i) => {
          if (i === 0 || n.gen.backoffMs === 0) return
          const wait = BigInt(n.gen.backoffMs * 2 ** (i - 1)) * 1000n
          if (s - at[i - 1]! < wait) v.push(`${n.label}: attempt ${i + 1} started ${s - at[i - 1]!} µs after attempt ${i}, before its backoff of ${wait} µs`)
        })
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
      if (ta.seq < tb.seq) {
        // Every earlier conflicting task, whether it ran or not, settled before any attempt of B
        // started (a task retried keeps its place and its keys between attempts).
        for (const [which, at] of starts(b)) {
          if (at < t(ta.finished_at)) {
            v.push(`FCFS on ${conflict}: ${B.label} (${which}) started at ${iso(at)} before earlier ${A.label} (${ta.state}) finished at ${iso(ta.finished_at)}`)
          }
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
      ` ms=${n.gen.ms} max_attempts=${n.gen.maxAttempts} failOn=[${n.gen.failOn}] priority=${n.gen.priority} backoff=${n.gen.backoffMs} batch=${n.batch}` +
      ` cancelRequested=${o.cancelRequested.has(r.id)} -> ${r.state} attempts=${r.attempts}` +
      ` started=${iso(r.started_at)} finished=${iso(r.finished_at)} settled=${iso(f?.settled_at ?? null)} error=${err(r.error)}`
  }).join("\n")
}

// ---- priorities, with one worker slot: the start order is the model's --------------------------

/**
 * With a single worker slot, what starts next is fully determined: when the slot frees, the claim
 * takes the ready task of highest priority, oldest (seq) first; ready means every input resolved and
 * no earlier unsettled task conflicting on a key. So a sequential model predicts every attempt's
 * start, in order, and the run must match it exactly. A gate task holds the slot while the graphs
 * are submitted, so that everything is queued before the first claim: the batch is then released at
 * once, with mixed priorities, keys, data dependencies and retries (backoff 0: a retry is ready at
 * once, and competes by priority like any other ready task).
 */
interface SoloNode {
  /** How long each attempt runs (the random scenarios: 0). */
  readonly ms?: number
  readonly priority: number
  readonly maxAttempts: number
  readonly failOn: ReadonlyArray<number>
  readonly exclusive: ReadonlyArray<number>
  readonly shared: ReadonlyArray<number>
  /** Raw picks of earlier nodes (global positions, modulo). */
  readonly inputs: ReadonlyArray<number>
}

const soloNodeArb: fc.Arbitrary<SoloNode> = fc.record({
  priority: fc.integer({ min: -2, max: 3 }),
  maxAttempts: fc.integer({ min: 1, max: 2 }),
  failOn: fc.oneof({ arbitrary: fc.constant([] as Array<number>), weight: 4 }, { arbitrary: fc.constantFrom([1], [1, 2]), weight: 1 }),
  exclusive: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { maxLength: 1 }),
  shared: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { maxLength: 1 }),
  inputs: fc.array(fc.nat(), { maxLength: 2 })
})
const soloScenarioArb = fc.array(fc.array(soloNodeArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 3 })

interface SoloOutcome {
  readonly labels: ReadonlyArray<string>
  readonly deps: ReadonlyArray<ReadonlyArray<number>>
  readonly keys: ReadonlyArray<{ readonly exclusive: ReadonlyArray<string>; readonly shared: ReadonlyArray<string> }>
  readonly gens: ReadonlyArray<SoloNode>
  readonly seqs: ReadonlyArray<bigint>
  /** Every attempt that started, as "<label>#<attempt>", in the order they started. */
  readonly started: ReadonlyArray<string>
  /** Tasks that had started before the gate was opened (must be none). */
  readonly early: ReadonlyArray<string>
  /** Pairs of attempts whose handlers ran at the same time (one slot: must be none). */
  readonly overlapping: ReadonlyArray<string>
}

const runSoloScenario = (sc: ReadonlyArray<ReadonlyArray<SoloNode>>) =>
  Effect.gen(function*() {
    const db = yield* Db
    const tag = `s${process.pid}x${runCounter++}`
    yield* runWorker({ slots: 1, name: `${tag}-solo` })
    const gate = yield* Deferred.make<void>()
    gates.set(tag, gate)
    const g0 = yield* submitGraph({ label: `${tag}-gate`, nodes: { gate: { task: "test.gate", params: { gate: tag } } } })
    const gateTask = g0.nodes.gate!.task
    // The gate holds the only slot before anything else is submitted.
    for (;;) {
      const [row] = yield* db.rows<{ state: string }>(sql`SELECT state FROM tasks WHERE id = ${gateTask}`)
      if (row!.state === "running") break
      yield* Effect.sleep(Duration.millis(10))
    }
    const labels: Array<string> = []
    const deps: Array<Array<number>> = []
    const keys: Array<{ exclusive: Array<string>; shared: Array<string> }> = []
    const gens: Array<SoloNode> = []
    const taskIds: Array<string> = []
    const futureIds: Array<string> = []
    for (const [gi, graph] of sc.entries()) {
      const first = labels.length
      const spec: Record<string, NodeSpec> = {}
      graph.forEach((n, i) => {
        const p = first + i
        const d = p === 0 ? [] : [...new Set(n.inputs.map((r) => r % p))].sort((a, b) => a - b)
        const exclusive = n.exclusive.map((k) => `${tag}:k${k}`)
        const shared = n.shared.filter((k) => !n.exclusive.includes(k)).map((k) => `${tag}:k${k}`)
        labels.push(`g${gi}.n${i}`)
        deps.push(d)
        keys.push({ exclusive, shared })
        gens.push(n)
        const inputs = d.map((q) => (q >= first ? { $ref: `n${q - first}.result` } : { $ref: futureIds[q]! }))
        spec[`n${i}`] = {
          task: "test.attempts",
          params: { ms: n.ms ?? 0, value: labels[p]!, failOn: [...n.failOn], ...(inputs.length > 0 ? { inputs } : {}) },
          resources: { exclusive, shared },
          max_attempts: n.maxAttempts,
          priority: n.priority
        }
      })
      const submitted = yield* submitGraph({ label: `${tag}-g${gi}`, nodes: spec })
      graph.forEach((_, i) => {
        taskIds[first + i] = submitted.nodes[`n${i}`]!.task
        futureIds[first + i] = submitted.nodes[`n${i}`]!.outputs.result!
      })
    }
    const before = yield* db.rows<{ id: string }>(sql`SELECT id FROM tasks WHERE id = ANY(${ids(taskIds)}) AND started_at IS NOT NULL`)
    yield* Deferred.succeed(gate, undefined)
    yield* waitAllSettled([gateTask, ...taskIds])
    const seqRows = yield* db.rows<{ id: string; seq: string }>(sql`SELECT id, seq::text AS seq FROM tasks WHERE id = ANY(${ids(taskIds)})`)
    const seqOf = new Map(seqRows.map((r) => [r.id, BigInt(r.seq)]))
    const starts = taskIds.flatMap((id, p) => [...(attemptStarts.get(id) ?? new Map<number, Micros>())].map(([a, at]) => ({ at, what: `${labels[p]}#${a}` })))
    starts.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
    const runs = taskIds.flatMap((id, p) => (attemptSpans.get(id) ?? []).map(([from, to], i) => ({ from, to, what: `${labels[p]}#${i + 1}` })))
    runs.sort((a, b) => a.from - b.from)
    const overlapping = runs.flatMap((r, i) => (i > 0 && r.from < runs[i - 1]!.to ? [`${runs[i - 1]!.what} and ${r.what}`] : []))
    return {
      labels,
      deps,
      keys,
      gens,
      seqs: taskIds.map((id) => seqOf.get(id)!),
      started: starts.map((s) => s.what),
      early: before.map((r) => labels[taskIds.indexOf(r.id)]!),
      overlapping
    } satisfies SoloOutcome
  })

/** Whether tasks `a` and `b` conflict on a key: exclusive against anything, shared against exclusive. */
const soloConflict = (o: SoloOutcome, a: number, b: number) =>
  o.keys[a]!.exclusive.some((k) => o.keys[b]!.exclusive.includes(k) || o.keys[b]!.shared.includes(k)) ||
  o.keys[a]!.shared.some((k) => o.keys[b]!.exclusive.includes(k))

/** The start order one slot must produce: highest priority among ready first, then lowest seq. */
const soloModel = (o: SoloOutcome): Array<string> => {
  const n = o.labels.length
  const settled = new Array<boolean>(n).fill(false)
  const resolved = new Array<boolean>(n).fill(false)
  const attempts = new Array<number>(n).fill(0)
  const conflict = (a: number, b: number) => soloConflict(o, a, b)
  /** Settles p failed and, transitively, every unsettled consumer (upstream_failed releases its keys too). */
  const fail = (p: number) => {
    settled[p] = true
    for (let q = 0; q < n; q++) if (!settled[q] && o.deps[q]!.includes(p)) fail(q)
  }
  const order: Array<string> = []
  for (;;) {
    const ready = [...Array(n).keys()].filter((p) =>
      !settled[p] && o.deps[p]!.every((d) => resolved[d]) &&
      ![...Array(n).keys()].some((q) => !settled[q] && o.seqs[q]! < o.seqs[p]! && conflict(q, p))
    )
    if (ready.length === 0) return order
    ready.sort((a, b) => o.gens[b]!.priority - o.gens[a]!.priority || (o.seqs[a]! < o.seqs[b]! ? -1 : 1))
    const p = ready[0]!
    const attempt = ++attempts[p]!
    order.push(`${o.labels[p]}#${attempt}`)
    if (!o.gens[p]!.failOn.includes(attempt)) {
      settled[p] = true
      resolved[p] = true
    } else if (attempt >= o.gens[p]!.maxAttempts) fail(p)
  }
}

// ---- the tests -----------------------------------------------------------------------------------

describe("engine properties", () => {
  it("random multi-graph DAGs with keys, retries, failures, cancels and concurrent submitters conform to the model", { timeout: 300_000 }, async () => {
    const NUM_RUNS = 25
    const stats = {
      runs: 0, graphs: 0, tasks: 0, ran: 0, task_failed: 0, cancelRequested: 0, canceled: 0, upstream: 0,
      /** Tasks that failed an attempt and then succeeded; tasks that failed after more than one attempt. */
      retriedThenSucceeded: 0, failedAfterRetries: 0,
      /** Tasks that ran more than once with a retry backoff; tasks with a priority other than 0. */
      retriedAfterBackoff: 0, prioritized: 0,
      /** Batches of graphs submitted at once; pairs of them sharing a key (so their order was the database's). */
      concurrentBatches: 0, concurrentPairsSharingAKey: 0
    }
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
        stats.retriedThenSucceeded += rows.filter((r) => r.state === "succeeded" && r.attempts > 1).length
        stats.failedAfterRetries += rows.filter((r) => r.error?.code === "task_failed" && r.attempts > 1).length
        const genOf = new Map(outcome.taskIds.map((id, p) => [id, outcome.nodes[p]!.gen]))
        stats.retriedAfterBackoff += rows.filter((r) => r.attempts > 1 && genOf.get(r.id)!.backoffMs > 0).length
        stats.prioritized += rows.filter((r) => genOf.get(r.id)!.priority !== 0).length
        const batches = new Map<number, Array<number>>()
        outcome.batchOf.forEach((b, g) => batches.set(b, [...(batches.get(b) ?? []), g]))
        const keysOf = (g: number) => new Set(outcome.nodes.filter((n) => n.g === g).flatMap((n) => [...n.exclusive, ...n.shared]))
        for (const graphs of batches.values()) {
          if (graphs.length > 1) stats.concurrentBatches += 1
          for (const x of graphs) for (const y of graphs) if (x < y && [...keysOf(x)].some((k) => keysOf(y).has(k))) stats.concurrentPairsSharingAKey += 1
        }
        const violations = check(outcome)
        expect(violations, violations.length > 0 ? `final rows:\n${dump(outcome)}\n` : undefined).toEqual([])
      }),
      // A passing run takes ~20-40 s. The time limit is a bound, not a sample size: a run cut short
      // by it fails (failOnInterrupt), so every scenario asked for is checked or the test says why
      // not. Shrinking a failure re-runs scenarios (and races rarely reproduce on demand): the limit
      // also stops that, reporting the smallest counterexample found so far.
      { numRuns: NUM_RUNS, plugins: [fc.interruptAfterTimeLimit(240_000, { failOnInterrupt: true })] }
    )
    // The generator must exercise what the properties are about, and the races must have gone
    // both ways: cancels that landed, not only cancels that came too late.
    const seen = JSON.stringify(stats)
    expect(stats.runs, seen).toBe(NUM_RUNS)
    expect(stats.graphs, seen).toBeGreaterThan(stats.runs)
    expect(stats.ran, seen).toBeGreaterThan(0)
    expect(stats.task_failed, seen).toBeGreaterThan(0)
    expect(stats.cancelRequested, seen).toBeGreaterThan(0)
    expect(stats.canceled, seen).toBeGreaterThan(0)
    expect(stats.upstream, seen).toBeGreaterThan(0)
    expect(stats.retriedThenSucceeded, seen).toBeGreaterThan(0)
    expect(stats.failedAfterRetries, seen).toBeGreaterThan(0)
    expect(stats.retriedAfterBackoff, seen).toBeGreaterThan(0)
    expect(stats.prioritized, seen).toBeGreaterThan(0)
    expect(stats.concurrentBatches, seen).toBeGreaterThan(0)
    expect(stats.concurrentPairsSharingAKey, seen).toBeGreaterThan(0)
  })

  it("one worker slot starts tasks by priority among the ready ones, never past FCFS or data order", { timeout: 300_000 }, async () => {
    const NUM_RUNS = 30
    const stats = { runs: 0, tasks: 0, retries: 0, outOfSeqOrder: 0, heldBehindLowerPriority: 0 }
    await fc.assert(
      fc.asyncProperty(soloScenarioArb, async (sc) => {
        const o = await run(runSoloScenario(sc))
        stats.runs += 1
        stats.tasks += o.labels.length
        stats.retries += o.started.filter((s) => !s.endsWith("#1")).length
        // Starts that a plain seq-order claim would not have made: the priorities mattered.
        const firsts = o.started.filter((s) => s.endsWith("#1")).map((s) => o.labels.indexOf(s.slice(0, -2)))
        stats.outOfSeqOrder += firsts.filter((p, i) => i > 0 && o.seqs[p]! < o.seqs[firsts[i - 1]!]!).length
        // Tasks queued on a key behind an earlier conflicting task of lower priority: the case where
        // priority must not overtake FCFS (the model makes them wait; the run must too).
        stats.heldBehindLowerPriority += o.labels.filter((_, p) =>
          o.labels.some((_, q) => o.seqs[q]! < o.seqs[p]! && o.gens[q]!.priority < o.gens[p]!.priority && soloConflict(o, q, p))
        ).length
        expect(o.early, "tasks started while the gate held the only slot").toEqual([])
        expect(o.overlapping, "attempts that ran at the same time in the only slot").toEqual([])
        const want = soloModel(o)
        const detail = o.labels.map((l, p) =>
          `${l} seq=${o.seqs[p]} priority=${o.gens[p]!.priority} deps=[${o.deps[p]!.map((d) => o.labels[d])}] ` +
          `ex=[${o.keys[p]!.exclusive}] sh=[${o.keys[p]!.shared}] failOn=[${o.gens[p]!.failOn}] max_attempts=${o.gens[p]!.maxAttempts}`
        ).join("\n")
        expect(o.started, `tasks:\n${detail}\n`).toEqual(want)
      }),
      {
        numRuns: NUM_RUNS,
        plugins: [fc.interruptAfterTimeLimit(240_000, { failOnInterrupt: true })],
        // Always: a failed attempt whose retry goes first, so the settle that fails it claims the
        // same task again for its slot (queries/settle.ts, settleBatch), while other work is
        // ready and the failure's wake-up reaches this worker.
        examples: [[[[
          { ms: 150, priority: 1, maxAttempts: 2, failOn: [1], exclusive: [], shared: [], inputs: [] },
          { priority: 0, maxAttempts: 1, failOn: [], exclusive: [], shared: [], inputs: [] }
        ]]]]
      }
    )
    const seen = JSON.stringify(stats)
    expect(stats.runs, seen).toBe(NUM_RUNS)
    expect(stats.retries, seen).toBeGreaterThan(0)
    expect(stats.outOfSeqOrder, seen).toBeGreaterThan(0)
    expect(stats.heldBehindLowerPriority, seen).toBeGreaterThan(0)
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
