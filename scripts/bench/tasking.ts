/**
 * bench:tasking — seed 003's benchmark (Pulp's "queueless distributed task workers" blog post).
 *
 * One client bursts N debug.sleep tasks (each holding 2 distinct random keys out of K exclusively,
 * sleeping 0.5 s) into cairn, one POST /api/v1/graphs per task, serially, while W worker
 * processes with one slot each run them. Per worker count: submission time per task, the wait
 * from runnable (every earlier conflicting task settled) to started, Pulp's wait (created to
 * started), makespan and makespan against its lower bounds. The draw is seeded: every worker
 * count gets the same tasks in the same order.
 *
 *   npm run bench:tasking                      # 256 tasks, 1,2,4,8,16,32 workers
 *   npm run bench:tasking -- --quick           # 64 tasks, 1,4 workers
 *   npm run bench:tasking -- --big             # plus 4,096 tasks on 64 workers
 */
import { parseFlags } from "./lib/args.js"
import { makeDataDir, startServer, startWorkers, stopProcs, submitGraph, taskRows, type TaskRow, waitAllSettled, waitForWorkers } from "./lib/cairn.js"
import { analyseFcfs, type Bounds, fcfsBounds, fcfsViolations } from "./lib/fcfs.js"
import { createDatabase, dropDatabase, resetStatements, startPostgres, type StatementStat, topStatements } from "./lib/postgres.js"
import { machine, writeReport } from "./lib/report.js"
import { type Summary, median, medianRange, ms, prng, sig, sleep, summarize } from "./lib/stats.js"
import { type Chart, figure, type Series } from "./lib/svg.js"
import type { Table } from "./lib/table.js"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import { busyShare, sampleMachine } from "./lib/cpu.js"

const { flags, out, command } = parseFlags("tasking", "Seed 003: N tasks x 2 of K exclusive keys x 0.5 s, bursted by one client into W worker processes.", {
  workers: { default: [1, 2, 4, 8, 16, 32] as ReadonlyArray<number>, quick: [1, 4], help: "worker process counts (one slot each)" },
  tasks: { default: 256, quick: 64, help: "tasks per run" },
  keys: { default: 128, help: "resource keys to draw from" },
  "sleep-ms": { default: 500, quick: 300, help: "task duration" },
  seed: { default: 3, help: "seed of the draw" },
  rounds: { default: 3, quick: 1, help: "repeat every worker count this many times (interleaved)" },
  big: { default: false, help: "also run --big-tasks tasks on --big-workers workers" },
  "big-tasks": { default: 4096, help: "tasks of the big run" },
  "big-workers": { default: 64, help: "worker processes of the big run" },
  "idle-ms": { default: 3000, quick: 1000, help: "quiet time after the workers registered, before the burst" }
})

const sleepMs = flags["sleep-ms"]

/** The seeded draw: task i holds keys[i] (2 distinct keys). */
const draw = (n: number, keys: number, seed: number) => {
  const rand = prng(seed)
  return Array.from({ length: n }, () => {
    const a = Math.floor(rand() * keys)
    let b = Math.floor(rand() * (keys - 1))
    if (b >= a) b++
    return [`k${a}`, `k${b}`] as const
  })
}

interface Run {
  readonly label: string
  readonly workers: number
  readonly tasks: number
  readonly round: number
  readonly submit: Summary
  /** Submission time by position in the burst (median per bucket of 1/16 of the tasks). */
  readonly submitByPosition: ReadonlyArray<{ from: number; to: number; median: number }>
  readonly waitRunnable: Summary
  readonly waitRunnableWorkerFree: Summary
  readonly waitCreated: Summary
  /** ready_at -> started_at (the engine's own view: made ready -> claimed). */
  readonly readyToClaim: Summary
  readonly makespan: number
  readonly burst: number
  readonly bounds: Bounds
  readonly fcfsViolations: number
  readonly failed: number
  readonly statements: ReadonlyArray<StatementStat>
  /** Load average when the burst started, and the share of both cores busy during the run. */
  readonly load: ReadonlyArray<number>
  readonly machineBusy: number
}

const runOnce = async (pg: Awaited<ReturnType<typeof startPostgres>>, workers: number, n: number, round: number, label: string): Promise<Run> => {
  const tasks = draw(n, flags.keys, flags.seed)
  const url = await createDatabase(pg, `tasking_${workers}`)
  const dataDir = await makeDataDir("tasking")
  console.error(`[${label}] starting the API server and ${workers} worker process(es)`)
  const server = await startServer(url, dataDir)
  const procs = startWorkers(workers, url, dataDir)
  try {
    await waitForWorkers(url, workers, procs)
    await sleep(flags["idle-ms"])
    await resetStatements(url)
    const load = os.loadavg()
    const m0 = sampleMachine()
    console.error(`[${label}] bursting ${n} tasks`)
    const submitted: Array<number> = []
    const t0 = Date.now()
    for (let i = 0; i < tasks.length; i++) {
      const r = await submitGraph(server.url, {
        t: { task: "debug.sleep", params: { ms: sleepMs }, resources: { exclusive: [...tasks[i]!] } }
      })
      submitted.push(r.ms)
    }
    const burst = Date.now() - t0
    await waitAllSettled(url, { procs: [server, ...procs], everyMs: 250 })
    const machineBusy = busyShare(m0, sampleMachine())
    const statements = await topStatements(url, 10)
    const rows: Array<TaskRow> = await taskRows(url)
    const fc = analyseFcfs(rows, workers)
    const bounds = fcfsBounds(rows, sleepMs, workers)
    const makespan = Math.max(...rows.map((r) => r.finished ?? NaN)) - Math.min(...rows.map((r) => r.created))
    const buckets = 16
    const submitByPosition = Array.from({ length: buckets }, (_, b) => {
      const from = Math.floor((b * n) / buckets)
      const to = Math.floor(((b + 1) * n) / buckets)
      return { from, to, median: median(submitted.slice(from, to)) }
    })
    const run: Run = {
      label,
      workers,
      tasks: n,
      round,
      submit: summarize(submitted),
      submitByPosition,
      waitRunnable: summarize(fc.map((t) => t.waitFromRunnable)),
      waitRunnableWorkerFree: summarize(fc.filter((t) => t.workerFree).map((t) => t.waitFromRunnable)),
      waitCreated: summarize(fc.map((t) => t.waitFromCreated)),
      readyToClaim: summarize(rows.map((r) => (r.started ?? NaN) - (r.ready ?? NaN))),
      makespan,
      burst,
      bounds,
      fcfsViolations: fcfsViolations(rows),
      failed: rows.filter((r) => r.state !== "succeeded").length,
      statements,
      load,
      machineBusy
    }
    console.error(`[${label}] makespan ${ms(makespan)} (bound ${ms(bounds.bound)}), submit mean ${ms(run.submit.mean)}, wait from runnable mean ${ms(run.waitRunnable.mean)}`)
    return run
  } finally {
    await stopProcs([...procs, server])
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
  }
}

/**
 * Pulp's published points, read off the blog post's figure (seed 003) by eye: another machine,
 * another setup, not a measurement of this run. Plotted in grey, without lines, and labelled so.
 */
const PULP = {
  submit: [{ x: 1, y: 0.015 }, { x: 32, y: 0.09 }],
  wait: [{ x: 1, y: 70 }, { x: 8, y: 3.5 }, { x: 16, y: 0.6 }, { x: 32, y: 0.03 }],
  oldRmTasksPerSecond: 2
}
const PULP_LABEL = "Pulp, read off its blog's plot (another machine: not measured here)"

const main = async () => {
  const pg = await startPostgres()
  const m = machine(pg)
  const runs: Array<Run> = []
  const failures: Array<string> = []
  // A run that fails (a worker that does not come up in time on a saturated machine) is reported
  // and the others go on.
  const attempt = async (w: number, n: number, round: number, label: string) => {
    try {
      runs.push(await runOnce(pg, w, n, round, label))
    } catch (e) {
      console.error(`[${label}] failed: ${(e as Error).message.split("\n")[0]}`)
      failures.push(`${label}: ${(e as Error).message.split("\n")[0]}`)
    }
  }
  try {
    for (let round = 1; round <= flags.rounds; round++) {
      for (const w of flags.workers) await attempt(w, flags.tasks, round, `${flags.tasks} tasks / ${w} workers / round ${round}`)
    }
    if (flags.big) await attempt(flags["big-workers"], flags["big-tasks"], 1, `${flags["big-tasks"]} tasks / ${flags["big-workers"]} workers`)
  } finally {
    await pg.stop()
  }
  if (runs.length === 0) throw new Error(`every run failed:\n${failures.join("\n")}`)

  // One row per (tasks, workers): medians over rounds of each run's statistic.
  const groups = new Map<string, Array<Run>>()
  for (const r of runs) groups.set(`${r.tasks}/${r.workers}`, [...(groups.get(`${r.tasks}/${r.workers}`) ?? []), r])
  const med = (rs: ReadonlyArray<Run>, f: (r: Run) => number) => median(rs.map(f))
  const rowsOf = [...groups.values()]
  const sec = (v: number) => `${sig(v / 1000)} s`

  const main: Table = {
    title: `Seed 003: ${flags.tasks} tasks x 2 of ${flags.keys} exclusive keys x ${sleepMs} ms, one client, W worker processes (1 slot each)`,
    headers: ["tasks", "W", "submit mean", "submit p95", "wait runnable->started mean", "p95", "same, worker free: mean (n)", "wait created->started mean (Pulp's)", "makespan", "work bound", "makespan / work bound", "max(work, chain) bound (x)", "release-aware bound (x)", "tasks/s"],
    rows: rowsOf.map((rs) => {
      const r0 = rs[0]!
      return [
        String(r0.tasks),
        String(r0.workers),
        ms(med(rs, (r) => r.submit.mean)),
        ms(med(rs, (r) => r.submit.p95)),
        ms(med(rs, (r) => r.waitRunnable.mean)),
        ms(med(rs, (r) => r.waitRunnable.p95)),
        `${ms(med(rs, (r) => r.waitRunnableWorkerFree.mean))} (${med(rs, (r) => r.waitRunnableWorkerFree.n)})`,
        ms(med(rs, (r) => r.waitCreated.mean)),
        sec(med(rs, (r) => r.makespan)),
        sec(med(rs, (r) => r.bounds.work)),
        medianRange(rs.map((r) => r.makespan / r.bounds.work)),
        `${sec(med(rs, (r) => r.bounds.bound))} (x${sig(med(rs, (r) => r.makespan / r.bounds.bound))})`,
        `${sec(med(rs, (r) => r.bounds.releaseBound))} (x${sig(med(rs, (r) => r.makespan / r.bounds.releaseBound))})`,
        sig(med(rs, (r) => r.tasks / (r.makespan / 1000)))
      ]
    }),
    notes: [
      `submit: client round trip of one POST /api/v1/graphs (one node) over keep-alive HTTP, serial; ${flags.rounds > 1 ? `medians over ${flags.rounds} interleaved rounds` : "one run per row"}.`,
      "runnable: max(created_at, finished_at of every earlier conflicting task); 'worker free': fewer than W other tasks were runnable or running at that moment.",
      "makespan: first created_at to last finished_at (includes the submission burst). The headline is makespan / work bound (total work / W): a lower bound no schedule can beat, independent of how fast the client submitted.",
      "max(work, chain) bound: the work bound or the longest chain of tasks that conflict on a key (exclusive holders; tasks that only share a key do not chain) x duration, whichever is larger.",
      "release-aware bound: the chain bound with every task released at its actual created_at (infinite workers). It explains, it does not judge: from 16 workers the serial submission burst is longer than the work, so every task starts almost as soon as it is submitted and this ratio is close to 1 by construction, whatever the scheduler does.",
      `Pulp's figures, read off its blog post's plot (seed 003) — another machine and setup, not measured in this run: submit ~15 ms at 1 worker, ~90 ms at 32; wait ~70 s at 1, ~3.5 s at 8, ~0.6 s at 16, ~30 ms at 32; old resource manager ~${PULP.oldRmTasksPerSecond} tasks/s.`
    ]
  }
  const detail: Table = {
    title: "Spreads (p50 / p95 / p99 (min-max)), every run",
    headers: ["run", "submit", "wait runnable->started", "same, worker free", "ready->claimed (engine)", "burst", "chain", "FCFS violations", "not succeeded", "load avg / machine busy"],
    rows: runs.map((r) => [
      r.label,
      `${ms(r.submit.p50)} / ${ms(r.submit.p95)} / ${ms(r.submit.p99)} (${ms(r.submit.min)}-${ms(r.submit.max)})`,
      `${ms(r.waitRunnable.p50)} / ${ms(r.waitRunnable.p95)} / ${ms(r.waitRunnable.p99)} (${ms(r.waitRunnable.min)}-${ms(r.waitRunnable.max)})`,
      `${ms(r.waitRunnableWorkerFree.p50)} / ${ms(r.waitRunnableWorkerFree.p95)} / ${ms(r.waitRunnableWorkerFree.p99)}`,
      `${ms(r.readyToClaim.p50)} / ${ms(r.readyToClaim.p95)} / ${ms(r.readyToClaim.p99)}`,
      sec(r.burst),
      `${r.bounds.chainLength} tasks`,
      String(r.fcfsViolations),
      String(r.failed),
      `${r.load[0]!.toFixed(1)} / ${(r.machineBusy * 100).toFixed(0)}%`
    ])
  }
  const stmtRuns = runs.filter((r, i, all) => all.findIndex((x) => x.tasks === r.tasks && x.workers === r.workers) === i)
  const pick = (r: Run, re: RegExp) => r.statements.find((s) => re.test(s.query))
  const statementTable: Table = {
    title: "Server-side statement cost during the run (pg_stat_statements: mean ms per call, calls)",
    headers: ["run", "claim", "cairn_resolve", "INSERT tasks (submit)", "cairn_enqueue (submit)", "cairn_lock_keys (submit)", "heartbeat", "cairn_reap"],
    rows: stmtRuns.map((r) => {
      const cell = (re: RegExp) => {
        const s = pick(r, re)
        return s ? `${sig(s.mean_ms)} (${s.calls})` : "–"
      }
      return [
        `${r.tasks}/${r.workers}`,
        cell(/cairn_claim\(|WITH picked AS/),
        cell(/cairn_resolve/),
        cell(/INSERT INTO tasks/),
        cell(/cairn_enqueue/),
        cell(/cairn_lock_keys/),
        cell(/UPDATE workers SET last_heartbeat/),
        cell(/cairn_reap/)
      ]
    }),
    notes: ["Only the 10 statements with the largest total time are kept per run; '–' means the statement was not among them (or pg_stat_statements is unavailable)."]
  }
  const tables = [main, detail, statementTable]
  const big = runs.filter((r) => r.tasks !== flags.tasks)
  if (big.length > 0) {
    const small = runs.find((r) => r.workers === Math.max(...flags.workers))
    tables.push({
      title: "How submission cost grows with the backlog (median submit time per 1/16 of the burst)",
      headers: ["run", ...big[0]!.submitByPosition.map((b, i) => `${i + 1}`)],
      rows: [...(small ? [small] : []), ...big].map((r) => [`${r.tasks}/${r.workers}`, ...r.submitByPosition.map((b) => sig(b.median))]),
      notes: ["Columns are sixteenths of the burst in order (the k-th column holds tasks k-1/16 .. k/16 of the run); values in ms."]
    })
  }

  const small = rowsOf.filter((rs) => rs[0]!.tasks === flags.tasks)
  const xs = small.map((rs) => rs[0]!.workers)
  const pts = (f: (r: Run) => number, lo?: (r: Run) => number, hi?: (r: Run) => number) =>
    small.map((rs) => ({ x: rs[0]!.workers, y: med(rs, f), lo: lo ? med(rs, lo) : undefined, hi: hi ? med(rs, hi) : undefined }))
  const xAxis = { label: "worker processes (1 slot each)", log: true, ticks: xs, min: 0.8, max: Math.max(32, ...xs) * 1.3 }
  const charts: Array<Chart> = [
    {
      kind: "line",
      title: "Submission time per task",
      x: xAxis,
      y: { label: "seconds", log: true },
      series: [
        { name: "cairn mean (bars: p50..p99)", points: pts((r) => r.submit.mean / 1000, (r) => r.submit.p50 / 1000, (r) => r.submit.p99 / 1000) },
        { name: PULP_LABEL, points: PULP.submit, line: false, marker: "cross", color: "#aaa" }
      ]
    },
    {
      kind: "line",
      title: "Wait until picked up",
      x: xAxis,
      y: { label: "seconds", log: true },
      series: [
        { name: "cairn created->started mean (Pulp's measure)", points: pts((r) => r.waitCreated.mean / 1000) },
        { name: "cairn runnable->started mean (bars: p50..p95)", points: pts((r) => r.waitRunnable.mean / 1000, (r) => r.waitRunnable.p50 / 1000, (r) => r.waitRunnable.p95 / 1000), dash: "5 3" },
        { name: "cairn runnable->started, worker free, mean", points: pts((r) => r.waitRunnableWorkerFree.mean / 1000), dash: "2 2", marker: "diamond" },
        { name: PULP_LABEL, points: PULP.wait, line: false, marker: "cross", color: "#aaa" }
      ],
      refLines: [{ y: 0.02, label: "target: 20 ms with a free worker", color: "#2ca02c" }]
    },
    {
      kind: "line",
      title: "Throughput",
      x: xAxis,
      y: { label: "tasks / s", log: true },
      series: [
        { name: "cairn: tasks / makespan", points: pts((r) => r.tasks / (r.makespan / 1000)) },
        { name: "upper limit: tasks / bound", points: pts((r) => r.tasks / (r.bounds.bound / 1000)), dash: "5 3", marker: "none" }
      ],
      refLines: [{ y: PULP.oldRmTasksPerSecond, label: "Pulp's old resource manager, ~2 tasks/s (blog; another machine)", color: "#aaa" }]
    },
    {
      kind: "line",
      title: "Makespan against its lower bound",
      x: xAxis,
      y: { label: "makespan / bound", min: 0.9 },
      series: [
        { name: "makespan / work bound (headline)", points: pts((r) => r.makespan / r.bounds.work) },
        { name: "makespan / max(work, chain)", points: pts((r) => r.makespan / r.bounds.bound), dash: "2 2" },
        { name: "makespan / release-aware bound (close to 1 by construction once the burst outlasts the work)", points: pts((r) => r.makespan / r.bounds.releaseBound), dash: "5 3" }
      ],
      refLines: [{ y: 1.1, label: "target: within 10%", color: "#2ca02c" }]
    }
  ]
  if (big.length > 0) {
    const withSmall = [...runs.filter((r) => r.tasks === flags.tasks && r.workers === Math.max(...flags.workers)).slice(0, 1), ...big]
    charts.push({
      kind: "line",
      title: "Submission time along the burst",
      x: { label: "position in the burst (fraction of the tasks)" , min: 0, max: 1 },
      y: { label: "median ms per 1/16", min: 0 },
      series: withSmall.map((r) => ({ name: `${r.tasks} tasks / ${r.workers} workers`, points: r.submitByPosition.map((b) => ({ x: (b.from + b.to) / 2 / r.tasks, y: b.median })) }))
    })
  }
  const svg = figure(charts, {
    title: `bench:tasking — seed 003 (${flags.tasks} tasks x 2 of ${flags.keys} keys x ${sleepMs} ms)`,
    columns: 2,
    footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${command}`
  })
  await writeReport({
    name: "tasking",
    command,
    machine: m,
    options: flags,
    tables,
    results: { runs, failures },
    notes: failures.length ? [`Failed runs: ${failures.join("; ")}`] : [],
    svg
  }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
