/**
 * bench:throughput — no-op jobs through cairn, graphile-worker 0.17.3 and pg-boss 10.4.2 on the
 * same PostgreSQL in the same run, interleaved, each system in a fresh database.
 *
 * 1. Execution: N no-op jobs (cairn: debug.sleep with no params) into an empty system, executed by
 *    P worker processes. The workers are started, registered and idle, then paused (SIGSTOP); the
 *    N jobs are enqueued in batches; the workers are resumed (SIGCONT) and the clock runs until no
 *    job is left (polled every 50 ms; for cairn also exact from the task rows). So every system
 *    starts with the same full queue and warm processes. Also: CPU milliseconds per job of the
 *    workers plus PostgreSQL (what other load on this shared machine does not inflate).
 * 2. Enqueue: M single jobs one after another (and N in batches of 1,000 in phase 1), no workers.
 * 3. Latency: a trickle of single submissions into an idle system with one worker process; the
 *    time from the submitter's call to the job's handler starting, for every system (cairn: its
 *    worker's `cairn.run` span, which starts as the handler is called, through lib/spans.ts; the
 *    others: their handler's first line).
 *
 * Configurations ("default" = out of the box, "fast" = the fastest documented settings):
 *   cairn        CAIRN_WORKERS=2 (npm run worker's default)    cairn-16     CAIRN_WORKERS=16
 *   gw-default   concurrency 1, poll 2 s                        gw-fast      concurrency 24, localQueue 500, batch delays 0
 *   boss-default work(): 1 job per fetch, poll 2 s              boss-fast    batchSize 5,000, poll 0.5 s (its minimum;
 *                                                               not self-limiting: lib/boss-worker.ts says why)
 * cairn enqueues through POST /api/v1/graphs (one graph per job, or 1,000-node graphs: "batched"),
 * and through the engine's submitGraph in-process ("direct", no HTTP: the peer of addJob/send).
 *
 *   npm run bench:throughput
 *   npm run bench:throughput -- --quick
 */
import PgBoss from "pg-boss"
import { makeWorkerUtils, type WorkerUtils } from "graphile-worker"
import { parseFlags } from "./lib/args.js"
import { busyShare, cpuOfCluster, cpuOfPids, cpuProfileArgs, sampleMachine } from "./lib/cpu.js"
import { makeDataDir, startServer, startWorkers, stopProcs, submitGraph, waitForWorkers } from "./lib/cairn.js"
import { directSubmitter } from "./lib/direct.js"
import { startSpanCollector } from "./lib/spans.js"
import { createDatabase, dropDatabase, type Postgres, startPostgres, withClient } from "./lib/postgres.js"
import { type Proc, type Server, spawnTs, stopAll, waitForLine } from "../lib/processes.js"
import { machine, writeReport } from "./lib/report.js"
import { median, medianRange, ms, nowMs, prng, sig, sleep, summarize, type Summary } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"
import * as fs from "node:fs/promises"
import * as os from "node:os"

const { flags, out, command } = parseFlags("throughput", "No-op jobs: cairn vs graphile-worker vs pg-boss, same PostgreSQL, interleaved.", {
  jobs: { default: 20000, quick: 2000, help: "jobs per execution run (N)" },
  processes: { default: [1, 2, 4] as ReadonlyArray<number>, quick: [1, 2], help: "worker process counts" },
  systems: { default: "cairn,cairn-16,gw-default,gw-fast,boss-default,boss-fast", help: "configurations to run" },
  rounds: { default: 3, quick: 1, help: "rounds of the execution matrix and of the latency trickle (interleaved)" },
  "max-drain-s": { default: 60, quick: 20, help: "stop waiting for a drain after this long and report the rate so far" },
  "single-jobs": { default: 2000, quick: 300, help: "jobs enqueued one at a time (M)" },
  trickle: { default: 200, quick: 60, help: "single submissions in the latency trickle" },
  "trickle-gap-ms": { default: 40, help: "mean gap between trickle submissions (uniform 0.5x..1.5x)" },
  seed: { default: 2, help: "seed of the trickle gaps and the order of systems" },
  profile: { default: "", help: "directory for V8 CPU profiles of cairn's worker processes (--cpu-prof)" }
})

type SystemId = "cairn" | "cairn-16" | "gw-default" | "gw-fast" | "boss-default" | "boss-fast"
const ALL: ReadonlyArray<SystemId> = ["cairn", "cairn-16", "gw-default", "gw-fast", "boss-default", "boss-fast"]
const systems = flags.systems.split(",").map((s) => s.trim()).filter((s): s is SystemId => {
  if ((ALL as ReadonlyArray<string>).includes(s)) return true
  console.error(`unknown system ${s}; known: ${ALL.join(", ")}`)
  process.exit(2)
})

const family = (s: SystemId) => (s.startsWith("cairn") ? "cairn" : s.startsWith("gw") ? "gw" : "boss")

/** One system in one fresh database: how to start its workers, enqueue, and count what is left. */
interface Env {
  readonly url: string
  /** `forLatency`: the workers report when each job's handler starts (see `starts`). */
  readonly workers: (p: number, forLatency?: boolean) => Promise<Array<Proc>>
  readonly enqueueBatch: (n: number, batch: number) => Promise<void>
  /** Submit one job; returns the submitter's clock at the call, and the job's key for latency. */
  readonly enqueueOne: (i: number, withTime: boolean) => Promise<{ at: number; ms: number; key: string }>
  readonly enqueueOneDirect?: ((i: number) => Promise<{ at: number; ms: number; key: string }>) | undefined
  /** Counts the jobs not done yet (one row, column n). */
  readonly pendingSql: string
  /** When latency jobs' handlers started, by key (cairn: from its spans; others: from worker output). */
  readonly starts: (procs: ReadonlyArray<Proc>, keys: ReadonlyArray<string>) => Promise<Map<string, number>>
  readonly close: () => Promise<void>
}

const readyLine = (p: Proc) => waitForLine(p, /^READY$/, `${p.name} ready`, 120_000)

const noopNode = { task: "debug.sleep", params: {} }

const cairnEnv = async (pg: Postgres, id: SystemId): Promise<Env> => {
  const url = await createDatabase(pg, id)
  const dataDir = await makeDataDir("throughput")
  const server: Server = await startServer(url, dataDir)
  const direct = directSubmitter(url)
  const slots = id === "cairn-16" ? 16 : 2
  const spans = await startSpanCollector()
  let offsetMs = NaN
  let seq = 0
  return {
    url,
    workers: async (p, forLatency = false) => {
      const procs = startWorkers(p, url, dataDir, {
        CAIRN_WORKERS: String(slots),
        // Paused workers must not declare each other dead.
        CAIRN_HEARTBEAT_TIMEOUT_MS: "600000",
        ...(forLatency ? spans.env : {})
      }, [...cpuProfileArgs(flags.profile || undefined), ...(forLatency ? spans.nodeArgs : [])])
      await waitForWorkers(url, p, procs)
      if (forLatency) offsetMs = await spans.offsetOf(procs[0]!)
      return procs
    },
    enqueueBatch: async (n, batch) => {
      for (let done = 0; done < n; done += batch) {
        const nodes: Record<string, typeof noopNode> = {}
        for (let i = 0; i < Math.min(batch, n - done); i++) nodes[`t${i}`] = noopNode
        await submitGraph(server.url, nodes, `batch-${seq++}`)
      }
    },
    enqueueOne: async () => {
      const r = await submitGraph(server.url, { t: noopNode })
      return { at: r.at, ms: r.ms, key: r.body.nodes.t!.task }
    },
    enqueueOneDirect: async () => {
      const at = nowMs()
      const t0 = performance.now()
      const g = await direct.submit({ nodes: { t: noopNode } })
      return { at, ms: performance.now() - t0, key: g.nodes.t!.task }
    },
    pendingSql: "SELECT count(*)::int AS n FROM tasks WHERE state IN ('blocked', 'ready', 'running')",
    starts: async () => spans.starts(offsetMs),
    close: async () => {
      await spans.close()
      await direct.close()
      await server.stop()
      await dropDatabase(pg, url)
      await fs.rm(dataDir, { recursive: true, force: true })
    }
  }
}

/** Latency lines `L <i> <epoch ms>` printed by the competitors' workers. */
const latencyLines = (procs: ReadonlyArray<Proc>) => {
  const m = new Map<string, number>()
  for (const p of procs) {
    for (const line of p.output().split("\n")) {
      const x = /^L (\d+) ([\d.]+)$/.exec(line)
      if (x) m.set(x[1]!, Number(x[2]))
    }
  }
  return m
}

const gwEnv = async (pg: Postgres, id: SystemId): Promise<Env> => {
  const url = await createDatabase(pg, id, { migrate: false })
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString: url })
  await utils.migrate()
  return {
    url,
    workers: async (p) => {
      const procs = Array.from({ length: p }, (_, i) => spawnTs(`gw-${i}`, "scripts/bench/lib/gw-worker.ts", [], { env: { DATABASE_URL: url, GW_MODE: id === "gw-fast" ? "fast" : "default" } }))
      await Promise.all(procs.map(readyLine))
      return procs
    },
    enqueueBatch: async (n, batch) => {
      for (let done = 0; done < n; done += batch) {
        await utils.addJobs(Array.from({ length: Math.min(batch, n - done) }, () => ({ identifier: "noop", payload: {} })))
      }
    },
    enqueueOne: async (i, withTime) => {
      const at = nowMs()
      const t0 = performance.now()
      await utils.addJob("noop", withTime ? { t: at, i } : {})
      return { at, ms: performance.now() - t0, key: String(i) }
    },
    pendingSql: "SELECT count(*)::int AS n FROM graphile_worker._private_jobs",
    starts: async (procs) => latencyLines(procs),
    close: async () => {
      await utils.release()
      await dropDatabase(pg, url)
    }
  }
}

const bossEnv = async (pg: Postgres, id: SystemId): Promise<Env> => {
  const url = await createDatabase(pg, id, { migrate: false })
  const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false })
  boss.on("error", (e) => console.error(`pg-boss (submitter): ${e.message}`))
  await boss.start()
  await boss.createQueue("noop")
  return {
    url,
    workers: async (p) => {
      const procs = Array.from({ length: p }, (_, i) => spawnTs(`boss-${i}`, "scripts/bench/lib/boss-worker.ts", [], { env: { DATABASE_URL: url, BOSS_MODE: id === "boss-fast" ? "fast" : "default" } }))
      await Promise.all(procs.map(readyLine))
      return procs
    },
    enqueueBatch: async (n, batch) => {
      for (let done = 0; done < n; done += batch) {
        await boss.insert(Array.from({ length: Math.min(batch, n - done) }, () => ({ name: "noop", data: {} })))
      }
    },
    enqueueOne: async (i, withTime) => {
      const at = nowMs()
      const t0 = performance.now()
      await boss.send("noop", withTime ? { t: at, i } : {})
      return { at, ms: performance.now() - t0, key: String(i) }
    },
    pendingSql: "SELECT count(*)::int AS n FROM pgboss.job WHERE state IN ('created', 'retry', 'active')",
    starts: async (procs) => latencyLines(procs),
    close: async () => {
      await boss.stop({ graceful: false, wait: true, close: true }).catch(() => undefined)
      await dropDatabase(pg, url)
    }
  }
}

const makeEnv = (pg: Postgres, id: SystemId) => (family(id) === "cairn" ? cairnEnv(pg, id) : family(id) === "gw" ? gwEnv(pg, id) : bossEnv(pg, id))

interface ExecRun {
  readonly system: SystemId
  readonly processes: number
  readonly round: number
  readonly jobs: number
  readonly done: number
  readonly enqueueMs: number
  readonly drainMs: number
  readonly jobsPerSecond: number
  /** cairn only: first started_at -> last finished_at from the rows. */
  readonly exactJobsPerSecond?: number | undefined
  readonly cpuMsPerJob: { readonly workers: number; readonly postgres: number }
  readonly machineBusy: number
  readonly load: ReadonlyArray<number>
  readonly capped: boolean
}

const execRun = async (pg: Postgres, id: SystemId, p: number, round: number): Promise<ExecRun> => {
  const env = await makeEnv(pg, id)
  let procs: Array<Proc> = []
  try {
    procs = await env.workers(p)
    await sleep(1000)
    for (const w of procs) w.pause()
    const e0 = performance.now()
    await env.enqueueBatch(flags.jobs, 1000)
    const enqueueMs = performance.now() - e0
    const load = os.loadavg()
    const pids = procs.map((w) => w.pid)
    const cpuW0 = cpuOfPids(pids)
    const cpuP0 = cpuOfCluster(pg.postmasterPid)
    const m0 = sampleMachine()
    const cap = flags["max-drain-s"] * 1000
    const { left, drainMs } = await withClient(env.url, async (c) => {
      const t0 = performance.now()
      for (const w of procs) w.resume()
      for (;;) {
        const left = (await c.query<{ n: number }>(env.pendingSql)).rows[0]!.n
        if (left === 0 || performance.now() - t0 > cap) return { left, drainMs: performance.now() - t0 }
        const dead = procs.find((w) => !w.alive())
        if (dead) throw new Error(`${dead.name} exited:\n${dead.output().slice(-3000)}`)
        await sleep(50)
      }
    })
    const cpuW = cpuOfPids(pids) - cpuW0
    const cpuP = cpuOfCluster(pg.postmasterPid) - cpuP0
    const machineBusy = busyShare(m0, sampleMachine())
    const done = flags.jobs - left
    let exact: number | undefined
    if (family(id) === "cairn" && left === 0) {
      exact = await withClient(env.url, async (c) => {
        const r = await c.query<{ s: number }>("SELECT extract(epoch FROM max(finished_at) - min(started_at)) AS s FROM tasks")
        return flags.jobs / Number(r.rows[0]!.s)
      })
    }
    const run: ExecRun = {
      system: id,
      processes: p,
      round,
      jobs: flags.jobs,
      done,
      enqueueMs,
      drainMs,
      jobsPerSecond: done / (drainMs / 1000),
      exactJobsPerSecond: exact,
      cpuMsPerJob: { workers: cpuW / Math.max(1, done), postgres: cpuP / Math.max(1, done) },
      machineBusy,
      load,
      capped: left > 0
    }
    console.error(`[exec ${id} x${p} round ${round}] ${done}/${flags.jobs} in ${ms(drainMs)}: ${sig(run.jobsPerSecond)} jobs/s${exact ? ` (rows: ${sig(exact)})` : ""}; enqueue ${sig(flags.jobs / (enqueueMs / 1000))}/s batched; CPU/job ${sig(run.cpuMsPerJob.workers)} + ${sig(run.cpuMsPerJob.postgres)} ms`)
    return run
  } finally {
    await stopAll(procs, 10_000)
    await env.close()
  }
}

interface SingleRun {
  readonly system: string
  readonly round: number
  readonly submit: Summary
  readonly perSecond: number
}

const singleRun = async (pg: Postgres, id: SystemId, round: number): Promise<Array<SingleRun>> => {
  const env = await makeEnv(pg, id)
  try {
    const variants: Array<[string, (i: number) => Promise<{ ms: number }>]> = [[family(id) === "cairn" ? `${id} (HTTP)` : id, (i) => env.enqueueOne(i, false)]]
    if (env.enqueueOneDirect) variants.push([`${id} (direct)`, (i) => env.enqueueOneDirect!(i)])
    const out: Array<SingleRun> = []
    for (const [name, f] of variants) {
      for (let i = 0; i < 50; i++) await f(i) // warm-up
      const times: Array<number> = []
      const t0 = performance.now()
      for (let i = 0; i < flags["single-jobs"]; i++) times.push((await f(i)).ms)
      const elapsed = performance.now() - t0
      const r = { system: name, round, submit: summarize(times), perSecond: flags["single-jobs"] / (elapsed / 1000) }
      console.error(`[enqueue ${name} round ${round}] ${sig(r.perSecond)} jobs/s one at a time; ${ms(r.submit.p50)} p50`)
      out.push(r)
    }
    return out
  } finally {
    await env.close()
  }
}

interface LatencyRun {
  readonly system: string
  readonly round: number
  readonly latency: Summary
  readonly lost: number
}

const latencyRun = async (pg: Postgres, id: SystemId, round: number, count: number, seed: number): Promise<Array<LatencyRun>> => {
  const env = await makeEnv(pg, id)
  let procs: Array<Proc> = []
  const rand = prng(seed)
  try {
    procs = await env.workers(1, true)
    await sleep(2500)
    const variants: Array<[string, (i: number) => Promise<{ at: number; key: string }>]> = [[family(id) === "cairn" ? `${id} (HTTP)` : id, (i) => env.enqueueOne(i, true)]]
    if (env.enqueueOneDirect) variants.push([`${id} (direct)`, (i) => env.enqueueOneDirect!(i)])
    const out: Array<LatencyRun> = []
    let i = 0
    for (const [name, submit] of variants) {
      const subs: Array<{ at: number; key: string }> = []
      for (let k = 0; k < count; k++) {
        subs.push(await submit(i++))
        await sleep(flags["trickle-gap-ms"] * (0.5 + rand()))
      }
      // The slow pollers (pg-boss default: 2 s) need time for the last jobs.
      const deadline = Date.now() + 15_000
      let starts = new Map<string, number>()
      while (Date.now() < deadline) {
        starts = await env.starts(procs, subs.map((s) => s.key))
        if (subs.every((s) => starts.has(s.key))) break
        await sleep(200)
      }
      const lat = subs.flatMap((s) => (starts.has(s.key) ? [starts.get(s.key)! - s.at] : []))
      const r = { system: name, round, latency: summarize(lat), lost: subs.length - lat.length }
      console.error(`[latency ${name} round ${round}] p50 ${ms(r.latency.p50)} p99 ${ms(r.latency.p99)}${r.lost ? ` (${r.lost} not started in time)` : ""}`)
      out.push(r)
    }
    return out
  } finally {
    await stopAll(procs, 10_000)
    await env.close()
  }
}

const main = async () => {
  const pg = await startPostgres()
  const m = machine(pg)
  const execs: Array<ExecRun> = []
  const singles: Array<SingleRun> = []
  const latencies: Array<LatencyRun> = []
  const rand = prng(flags.seed)
  try {
    // Latency and single enqueue first (short), then the execution matrix; systems in a rotating
    // order so that none always runs first or last.
    const rounds = Math.max(1, flags.rounds)
    for (let round = 1; round <= rounds; round++) {
      const order = [...systems.slice(round - 1), ...systems.slice(0, round - 1)]
      for (const id of order) latencies.push(...await latencyRun(pg, id, round, Math.ceil(flags.trickle / rounds), Math.floor(rand() * 1e9)))
      for (const id of order) singles.push(...await singleRun(pg, id, round))
    }
    for (let round = 1; round <= rounds; round++) {
      for (const [pi, p] of flags.processes.entries()) {
        const shift = (round + pi) % systems.length
        const order = [...systems.slice(shift), ...systems.slice(0, shift)]
        for (const id of order) execs.push(await execRun(pg, id, p, round))
      }
    }
  } finally {
    await pg.stop()
  }

  const med = <R>(rs: ReadonlyArray<R>, f: (r: R) => number) => median(rs.map(f))
  const execTable: Table = {
    title: `Execution: ${flags.jobs.toLocaleString("en-US")} no-op jobs, queue full at start, P worker processes; jobs/s (median of ${flags.rounds} round(s)${flags.rounds > 1 ? ", min-max" : ""})`,
    headers: ["system", ...flags.processes.map((p) => `P=${p}`), ...flags.processes.map((p) => `CPU ms/job P=${p} (workers + PG)`), "batched enqueue jobs/s"],
    rows: systems.map((id) => {
      const of = (p: number) => execs.filter((r) => r.system === id && r.processes === p)
      return [
        id,
        ...flags.processes.map((p) => {
          const rs = of(p)
          if (rs.length === 0) return "–"
          const v = rs.map((r) => r.jobsPerSecond)
          return `${sig(median(v))}${rs.length > 1 ? ` (${sig(Math.min(...v))}-${sig(Math.max(...v))})` : ""}${rs.some((r) => r.capped) ? "*" : ""}`
        }),
        ...flags.processes.map((p) => {
          const rs = of(p)
          return rs.length ? `${sig(med(rs, (r) => r.cpuMsPerJob.workers))} + ${sig(med(rs, (r) => r.cpuMsPerJob.postgres))}` : "–"
        }),
        sig(med(execs.filter((r) => r.system === id), (r) => r.jobs / (r.enqueueMs / 1000)))
      ]
    }),
    notes: [
      "* the drain was cut off after --max-drain-s; the rate is jobs done / time waited.",
      "cairn: CAIRN_WORKERS=2 slots per process (default) / 16 (cairn-16). gw-default: concurrency 1; gw-fast: concurrency 24, localQueue 500, batch delays 0.",
      "boss-default: work() defaults (1 job per fetch, 2 s poll); boss-fast: batchSize 5,000, poll 0.5 s (its minimum; a worker waits out the interval only after a round shorter than 0.4 s, so the cap is 10,000 jobs/s per process, not the 200 that batchSize 100 imposed). Batched enqueue: cairn 1,000-node graphs over HTTP; gw addJobs(1,000); pg-boss insert(1,000).",
      "CPU ms/job: CPU time of the worker processes + every PostgreSQL process during the drain, per job (2 cores = at most 2,000 CPU ms per second of wall time)."
    ]
  }
  const singleNames = [...new Set(singles.map((s) => s.system))]
  const singleTable: Table = {
    title: `Enqueue one job at a time (${flags["single-jobs"]} jobs, serial, no workers running)`,
    headers: ["system", "jobs/s", "per call p50", "p95", "p99", "min", "max"],
    rows: singleNames.map((name) => {
      const rs = singles.filter((s) => s.system === name)
      return [name, sig(med(rs, (r) => r.perSecond)), ms(med(rs, (r) => r.submit.p50)), ms(med(rs, (r) => r.submit.p95)), ms(med(rs, (r) => r.submit.p99)), ms(Math.min(...rs.map((r) => r.submit.min))), ms(Math.max(...rs.map((r) => r.submit.max)))]
    }),
    notes: ["cairn (HTTP): POST /api/v1/graphs with one node; cairn (direct): the engine's submitGraph in the submitting process; gw: WorkerUtils.addJob; pg-boss: send()."]
  }
  const latNames = [...new Set(latencies.map((s) => s.system))]
  const latTable: Table = {
    title: `Submit-to-start latency, idle system, 1 worker process, a trickle of ${flags.trickle} single submissions (gap ${flags["trickle-gap-ms"]} ms mean)`,
    headers: ["system", "p50 (min-max of rounds)", "p95", "p99", "min", "max", "not started"],
    rows: latNames.map((name) => {
      const all = latencies.filter((s) => s.system === name)
      return [name, medianRange(all.map((r) => r.latency.p50), ms), ms(med(all, (r) => r.latency.p95)), ms(med(all, (r) => r.latency.p99)), ms(Math.min(...all.map((r) => r.latency.min))), ms(Math.max(...all.map((r) => r.latency.max))), String(all.reduce((s, r) => s + r.lost, 0))]
    }),
    notes: ["From the submitter's clock before the call to the job's handler starting, the same point for every system (cairn: the start of its worker's cairn.run span, which wraps the handler, corrected for the offset of Effect's clock; graphile-worker/pg-boss: the handler's first line). cairn's worker exports its spans during these runs (OTLP over HTTP to the benchmark). Target: cairn p50 < 5 ms and <= graphile-worker's."]
  }

  const procsAxis = { label: "worker processes", log: true, ticks: [...flags.processes], min: 0.8, max: Math.max(...flags.processes) * 1.25 }
  const charts: Array<Chart> = [
    {
      kind: "line",
      title: "Execution throughput (no-op jobs)",
      x: procsAxis,
      y: { label: "jobs / s", log: true },
      series: systems.map((id) => ({
        name: id,
        dash: id.endsWith("default") || id === "cairn" ? "5 3" : undefined,
        points: flags.processes.map((p) => {
          const v = execs.filter((r) => r.system === id && r.processes === p).map((r) => r.jobsPerSecond)
          return { x: p, y: median(v), lo: Math.min(...v), hi: Math.max(...v) }
        })
      }))
    },
    {
      kind: "bar",
      title: "CPU per job (workers + PostgreSQL), median over P",
      categories: systems.map((s) => s),
      y: { label: "CPU ms / job", log: true },
      series: [
        { name: "worker processes", values: systems.map((id) => med(execs.filter((r) => r.system === id), (r) => r.cpuMsPerJob.workers)) },
        { name: "PostgreSQL", values: systems.map((id) => med(execs.filter((r) => r.system === id), (r) => r.cpuMsPerJob.postgres)) }
      ]
    },
    {
      kind: "bar",
      title: "Submit-to-start latency at idle (1 worker process)",
      categories: latNames.map((n) => n.replace(" (HTTP)", "\u00a0http").replace(" (direct)", "\u00a0direct")),
      y: { label: "ms", log: true },
      series: (["p50", "p99"] as const).map((q) => ({ name: q, values: latNames.map((n) => med(latencies.filter((r) => r.system === n), (r) => r.latency[q])) })),
      refLines: [{ y: 5, label: "target p50 < 5 ms", color: "#2ca02c" }]
    },
    {
      kind: "bar",
      title: "Enqueue rate",
      categories: singleNames.map((n) => n.replace(" (HTTP)", "\u00a0http").replace(" (direct)", "\u00a0direct")),
      y: { label: "jobs / s", log: true },
      series: [{ name: "one at a time", values: singleNames.map((n) => med(singles.filter((r) => r.system === n), (r) => r.perSecond)) }]
    }
  ]
  const svg = figure(charts, { title: "bench:throughput — cairn vs graphile-worker 0.17.3 vs pg-boss 10.4.2", columns: 2, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${command}` })
  await writeReport({ name: "throughput", command, machine: m, options: flags, tables: [execTable, singleTable, latTable], results: { execs, singles, latencies, latencyPoint: "handler" }, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
