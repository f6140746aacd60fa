/**
 * bench:dag — data dependencies: how fast a settled task lets its consumers start, and how fast a
 * failure settles everything downstream of it.
 *
 * Shapes, each submitted as one graph of debug.sleep tasks (ms 0) through POST /api/v1/graphs:
 *   chain    n0 -> n1 -> ... -> n999
 *   fanout   root -> m0..m999 -> sink (the sink consumes all 1,000)
 *   random   10,000 nodes; node i consumes one node among the 50 before it (so all descend from n0)
 *            and 0-2 more earlier nodes anywhere
 * and the same three with one failure near the root (chain: n1; fanout: root; random: n0, whose
 * cone is the other 9,999 nodes).
 *
 * Per-edge latency: upstream finished_at -> downstream started_at, for the edge that made the
 * downstream task ready (its last input to settle). finished_at is stamped at the start of the
 * settle transaction, so an edge includes that transaction, its commit and NOTIFY, the wake-up
 * and the claim. Failure: the cascade runs inside the failing task's settle transaction (every
 * cone task gets that transaction's timestamp), so its duration is measured as the server-side
 * time of that one settle statement (pg_stat_statements: the slowest settle statement of the run,
 * a `cairn_settle_batch` since worker settles go in batches, `cairn_fail` before) and end to end
 * as the client sees it:
 * from the failing task's started_at until a long-poll on the cone's last future answers.
 *
 *   npm run bench:dag                  # 3 rounds, 2 worker processes x 8 slots
 *   npm run bench:dag -- --quick       # smaller shapes, 1 round
 */
import { parseFlags } from "./lib/args.js"
import { awaitFuture, makeDataDir, type NodeSpec, startServer, startWorkers, stopProcs, submitGraph, taskRows, type TaskRow, waitAllSettled, waitForWorkers } from "./lib/cairn.js"
import { createDatabase, dropDatabase, resetStatements, startPostgres, topStatements, withClient } from "./lib/postgres.js"
import { machine, writeReport } from "./lib/report.js"
import { median, ms, nowMs, prng, sig, sleep, summarize, type Summary } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"
import * as fs from "node:fs/promises"
import * as os from "node:os"

const { flags, out, command } = parseFlags("dag", "Per-edge latency and failure propagation on chains, fan-outs and random DAGs.", {
  chain: { default: 1000, quick: 200, help: "length of the chain" },
  fanout: { default: 1000, quick: 200, help: "width of the fan-out" },
  random: { default: 10000, quick: 2000, help: "nodes of the random DAG" },
  workers: { default: 2, help: "worker processes" },
  slots: { default: 8, help: "slots per worker process" },
  rounds: { default: 3, quick: 1, help: "rounds (every shape once per round, interleaved)" },
  seed: { default: 7, help: "seed of the random DAG" },
  variants: { default: "both", help: "which variants to run: both, success (no failure) or failure (for tuning the cascade)" },
  explain: { default: -1, help: "log plans of statements slower than this many ms (auto_explain; embedded server only); -1: off" }
})

type Shape = "chain" | "fanout" | "random"

interface Built {
  readonly nodes: Record<string, NodeSpec>
  /** The node that fails, in the failing variant. */
  readonly failAt: string
  /** A node whose output settles last (to long-poll). */
  readonly last: string
}

const sleepNode = (inputs: ReadonlyArray<string>, fail?: string): NodeSpec => ({
  task: "debug.sleep",
  params: { ...(inputs.length ? { inputs: inputs.map((n) => ({ $ref: `${n}.result` })) } : {}), ...(fail ? { fail } : {}) }
})

const build = (shape: Shape, failing: boolean): Built => {
  const nodes: Record<string, NodeSpec> = {}
  if (shape === "chain") {
    for (let i = 0; i < flags.chain; i++) nodes[`n${i}`] = sleepNode(i === 0 ? [] : [`n${i - 1}`], failing && i === 1 ? "boom" : undefined)
    return { nodes, failAt: "n1", last: `n${flags.chain - 1}` }
  }
  if (shape === "fanout") {
    nodes.root = sleepNode([], failing ? "boom" : undefined)
    const mids = Array.from({ length: flags.fanout }, (_, i) => `m${i}`)
    for (const m of mids) nodes[m] = sleepNode(["root"])
    nodes.sink = sleepNode(mids)
    return { nodes, failAt: "root", last: "sink" }
  }
  const rand = prng(flags.seed)
  for (let i = 0; i < flags.random; i++) {
    const inputs = new Set<string>()
    if (i > 0) {
      inputs.add(`n${Math.max(0, i - 1 - Math.floor(rand() * Math.min(50, i)))}`)
      const extra = Math.floor(rand() * 3)
      for (let k = 0; k < extra; k++) inputs.add(`n${Math.floor(rand() * i)}`)
    }
    nodes[`n${i}`] = sleepNode([...inputs], failing && i === 0 ? "boom" : undefined)
  }
  return { nodes, failAt: "n0", last: `n${flags.random - 1}` }
}

interface Run {
  readonly shape: Shape
  readonly failing: boolean
  readonly round: number
  readonly nodes: number
  readonly edges: number
  readonly submitMs: number
  /** Enabling edges (last input to settle -> started), all of them. */
  readonly edge: Summary
  /** fanout only: the fan-out edges (root -> each middle node) and the fan-in edge. */
  readonly fanOutEdges?: Summary | undefined
  readonly fanInEdge?: number | undefined
  /** First created_at -> last finished_at. */
  readonly totalMs: number
  /** First started_at -> last finished_at (without the submission). */
  readonly execMs: number
  readonly cone?: {
    readonly size: number
    /** The failing task's settle statement, server side (ms). */
    readonly cascadeStatementMs: number
    /** started_at of the failing task -> the long-poll on the last cone future answered. */
    readonly endToEndMs: number
    readonly wrongCause: number
  } | undefined
  readonly load: ReadonlyArray<number>
}

const edgesOf = async (url: string, graphId: string) =>
  withClient(url, async (c) => {
    const r = await c.query<{ task: string; producer: string }>(
      `SELECT ti.task_id AS task, f.producer_task AS producer
       FROM task_inputs ti JOIN futures f ON f.id = ti.future_id JOIN tasks t ON t.id = ti.task_id
       WHERE t.graph_id = $1`,
      [graphId]
    )
    return r.rows
  })

const runShape = async (ctx: { url: string; api: string }, shape: Shape, failing: boolean, round: number): Promise<Run> => {
  const b = build(shape, failing)
  await resetStatements(ctx.url)
  const load = os.loadavg()
  const g = await submitGraph(ctx.api, b.nodes, `${shape}${failing ? "-fail" : ""}-${round}`)
  const lastFuture = g.body.nodes[b.last]!.outputs.result!
  const settledLast = await awaitFuture(ctx.api, lastFuture)
  const observedAt = nowMs()
  await waitAllSettled(ctx.url, { everyMs: 100 })
  const rows: Array<TaskRow> = await taskRows(ctx.url, `graph_id = '${g.body.id}'`)
  const byId = new Map(rows.map((r) => [r.id, r]))
  const edges = await edgesOf(ctx.url, g.body.id)
  const inputsOf = new Map<string, Array<TaskRow>>()
  for (const e of edges) inputsOf.set(e.task, [...(inputsOf.get(e.task) ?? []), byId.get(e.producer)!])
  const enabling: Array<number> = []
  for (const t of rows) {
    const ins = inputsOf.get(t.id)
    if (!ins || t.started === null || t.state !== "succeeded") continue
    enabling.push(t.started - Math.max(...ins.map((p) => p.finished ?? NaN)))
  }
  const totalMs = Math.max(...rows.map((r) => r.finished ?? NaN)) - Math.min(...rows.map((r) => r.created))
  const startedRows = rows.filter((r) => r.started !== null)
  const execMs = Math.max(...rows.map((r) => r.finished ?? NaN)) - Math.min(...startedRows.map((r) => r.started!))
  let fanOutEdges: Summary | undefined
  let fanInEdge: number | undefined
  if (shape === "fanout" && !failing) {
    const root = rows.find((r) => r.node === "root")!
    fanOutEdges = summarize(rows.filter((r) => r.node.startsWith("m")).map((r) => (r.started ?? NaN) - (root.finished ?? NaN)))
    const sink = rows.find((r) => r.node === "sink")!
    fanInEdge = (sink.started ?? NaN) - Math.max(...rows.filter((r) => r.node.startsWith("m")).map((r) => r.finished ?? NaN))
  }
  let cone: Run["cone"]
  if (failing) {
    const failed = rows.find((r) => r.node === b.failAt)!
    const coneRows = await withClient(ctx.url, async (c) =>
      (await c.query<{ n: number; wrong: number }>(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE error->>'cause_task' <> $2)::int AS wrong
         FROM tasks WHERE graph_id = $1 AND error->>'code' = 'upstream_failed'`,
        [g.body.id, failed.id]
      )).rows[0]!)
    const stmts = await topStatements(ctx.url, 30)
    // The failing settle: the slowest settle statement of this run (statements are reset per run).
    const fail = stmts.filter((s) => /cairn_settle_batch|cairn_fail/.test(s.query)).sort((a, b) => b.max_ms - a.max_ms)[0]
    if (settledLast.state !== "failed") throw new Error(`${shape}: the last node is ${settledLast.state}, expected failed`)
    cone = {
      size: coneRows.n,
      cascadeStatementMs: fail ? fail.max_ms : NaN,
      endToEndMs: observedAt - (failed.started ?? NaN),
      wrongCause: coneRows.wrong
    }
  }
  const run: Run = {
    shape,
    failing,
    round,
    nodes: rows.length,
    edges: edges.length,
    submitMs: g.ms,
    edge: summarize(enabling),
    fanOutEdges,
    fanInEdge,
    totalMs,
    execMs,
    cone,
    load
  }
  console.error(
    `[${shape}${failing ? " + failure" : ""} round ${round}] ${rows.length} nodes, submit ${ms(g.ms)}, edge p50 ${ms(run.edge.p50)} p99 ${ms(run.edge.p99)}, total ${ms(totalMs)}` +
      (cone ? `, cone ${cone.size} settled in ${ms(cone.cascadeStatementMs)} (statement) / ${ms(cone.endToEndMs)} (end to end)` : "")
  )
  return run
}

const main = async () => {
  const pg = await startPostgres()
  const m = machine(pg)
  const runs: Array<Run> = []
  const url = await createDatabase(pg, "dag", { explainMs: flags.explain >= 0 ? flags.explain : undefined })
  const dataDir = await makeDataDir("dag")
  const server = await startServer(url, dataDir)
  const procs = startWorkers(flags.workers, url, dataDir, { CAIRN_WORKERS: String(flags.slots) })
  try {
    await waitForWorkers(url, flags.workers, procs)
    await sleep(2000)
    const ctx = { url, api: server.url }
    if (!["both", "success", "failure"].includes(flags.variants)) throw new Error(`--variants must be both, success or failure, not ${flags.variants}`)
    const order = ([["chain", false], ["fanout", false], ["random", false], ["chain", true], ["fanout", true], ["random", true]] as Array<[Shape, boolean]>)
      .filter(([, failing]) => flags.variants === "both" || failing === (flags.variants === "failure"))
    for (let round = 1; round <= flags.rounds; round++) {
      for (const [shape, failing] of order) runs.push(await runShape(ctx, shape, failing, round))
    }
  } finally {
    await stopProcs([...procs, server])
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
    if (flags.explain >= 0 && pg.logFile) await fs.copyFile(pg.logFile, `${os.tmpdir()}/bench-dag-postgres.log`).then(() => console.error(`server log with plans: ${os.tmpdir()}/bench-dag-postgres.log`), () => undefined)
    await pg.stop()
  }

  const groups = new Map<string, Array<Run>>()
  for (const r of runs) {
    const k = `${r.shape}${r.failing ? "+fail" : ""}`
    groups.set(k, [...(groups.get(k) ?? []), r])
  }
  const med = (rs: ReadonlyArray<Run>, f: (r: Run) => number) => median(rs.map(f))
  const range = (rs: ReadonlyArray<Run>, f: (r: Run) => number) => {
    const v = rs.map(f)
    return rs.length > 1 ? ` (${ms(Math.min(...v))}-${ms(Math.max(...v))})` : ""
  }
  const success: Table = {
    title: `Per-edge latency (last input settled -> consumer started) and total time; ${flags.workers} worker processes x ${flags.slots} slots; median of ${flags.rounds} round(s) (min-max)`,
    headers: ["shape", "nodes", "edges", "submit (one POST)", "edge p50", "edge p99", "edge max", "total (created -> last finished)", "execution (first start -> last finished)", "per node"],
    rows: [...groups.values()].filter((rs) => !rs[0]!.failing).map((rs) => {
      const r0 = rs[0]!
      return [
        r0.shape,
        String(r0.nodes),
        String(r0.edges),
        ms(med(rs, (r) => r.submitMs)) + range(rs, (r) => r.submitMs),
        ms(med(rs, (r) => r.edge.p50)) + range(rs, (r) => r.edge.p50),
        ms(med(rs, (r) => r.edge.p99)) + range(rs, (r) => r.edge.p99),
        ms(med(rs, (r) => r.edge.max)),
        ms(med(rs, (r) => r.totalMs)) + range(rs, (r) => r.totalMs),
        ms(med(rs, (r) => r.execMs)),
        ms(med(rs, (r) => r.execMs / r.nodes))
      ]
    }),
    notes: [
      "Every edge is counted once per consumer: the input that settled last (the one that made it ready). Target: per-edge p50 < 5 ms.",
      "fanout: the 1,000 fan-out edges measure how fast 1,000 ready tasks drain (throughput), not a single hand-over; see the next table."
    ]
  }
  const fan = groups.get("fanout")
  const fanTable: Table | undefined = fan && {
    title: "Fan-out 1 -> N -> 1 in detail (median of rounds)",
    headers: ["fan-out edges p50", "p99", "max (= time to start all N)", "fan-in edge (last middle finished -> sink started)"],
    rows: [[
      ms(med(fan, (r) => r.fanOutEdges?.p50 ?? NaN)),
      ms(med(fan, (r) => r.fanOutEdges?.p99 ?? NaN)),
      ms(med(fan, (r) => r.fanOutEdges?.max ?? NaN)),
      ms(med(fan, (r) => r.fanInEdge ?? NaN))
    ]]
  }
  const failure: Table = {
    title: "One failure near the root: time to settle its whole downstream cone",
    headers: ["shape", "cone (tasks settled upstream_failed)", "cascade: the failing settle statement, server side", "end to end: failing task started -> long-poll on the last cone future answered", "cause_task wrong", "submit"],
    rows: [...groups.values()].filter((rs) => rs[0]!.failing).map((rs) => [
      rs[0]!.shape,
      String(rs[0]!.cone?.size ?? "–"),
      ms(med(rs, (r) => r.cone?.cascadeStatementMs ?? NaN)) + range(rs, (r) => r.cone?.cascadeStatementMs ?? NaN),
      ms(med(rs, (r) => r.cone?.endToEndMs ?? NaN)) + range(rs, (r) => r.cone?.endToEndMs ?? NaN),
      String(Math.max(...rs.map((r) => r.cone?.wrongCause ?? 0))),
      ms(med(rs, (r) => r.submitMs))
    ]),
    notes: ["Target: a failure settles a 10,000-node cone in < 1 s. The whole cone is settled in the failing task's settle transaction."]
  }
  const tables = [success, ...(fanTable ? [fanTable] : []), failure]

  const shapes: Array<Shape> = ["chain", "fanout", "random"]
  const charts: Array<Chart> = [
    {
      kind: "bar",
      title: "Per-edge latency (median of rounds; bars: min..max of rounds)",
      categories: shapes,
      y: { label: "ms", log: true },
      series: (["p50", "p99"] as const).map((q) => ({
        name: `edge ${q}`,
        values: shapes.map((s) => med(groups.get(s) ?? [], (r) => r.edge[q])),
        lo: shapes.map((s) => Math.min(...(groups.get(s) ?? []).map((r) => r.edge[q]))),
        hi: shapes.map((s) => Math.max(...(groups.get(s) ?? []).map((r) => r.edge[q])))
      })),
      refLines: [{ y: 5, label: "target p50 < 5 ms", color: "#2ca02c" }]
    },
    {
      kind: "bar",
      title: "Failure cone settled (median of rounds)",
      categories: shapes.map((s) => `${s} (${groups.get(`${s}+fail`)?.[0]?.cone?.size ?? "?"} tasks)`),
      y: { label: "ms", log: true },
      series: [
        { name: "cascade statement (server)", values: shapes.map((s) => med(groups.get(`${s}+fail`) ?? [], (r) => r.cone?.cascadeStatementMs ?? NaN)) },
        { name: "end to end (client long-poll)", values: shapes.map((s) => med(groups.get(`${s}+fail`) ?? [], (r) => r.cone?.endToEndMs ?? NaN)) }
      ],
      refLines: [{ y: 1000, label: "target < 1 s for 10,000 nodes", color: "#2ca02c" }]
    }
  ]
  const svg = figure(charts, { title: "bench:dag — data edges and failure cones", columns: 2, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${command}` })
  await writeReport({ name: "dag", command, machine: m, options: flags, tables, results: runs, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
