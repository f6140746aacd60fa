/**
 * The Targets table of docs/benchmarks.md, computed from the published results
 * (docs/bench/<name>.json) so that it never disagrees with them: each target's figure is read from
 * the runs, and its verdict is computed, not typed.
 *
 * A run that started on a loaded machine (1-minute load average above the core count) is not a
 * claim either way: its verdict says so, whatever the figure. Medians are over the run's rounds.
 */
import { durationWindows, windowName } from "./churn-windows.js"
import type { Machine } from "./report.js"
import { median, ms, pct, sig } from "./stats.js"
import type { Table } from "./table.js"

export interface Published {
  readonly name: string
  readonly command: string
  readonly machine: Machine
  readonly options: Record<string, unknown>
  readonly results: any
}

interface Target {
  readonly target: string
  readonly result: string
  /** Undefined: the run has no figure for it. */
  readonly met: boolean | undefined
}

const med = <R>(rs: ReadonlyArray<R>, f: (r: R) => number) => median(rs.map(f))
const groupBy = <R, K>(rs: ReadonlyArray<R>, key: (r: R) => K) => {
  const m = new Map<K, Array<R>>()
  for (const r of rs) m.set(key(r), [...(m.get(key(r)) ?? []), r])
  return m
}
const all = (xs: ReadonlyArray<boolean>) => (xs.length === 0 ? undefined : xs.every((x) => x))
const x = (v: number) => `${sig(v)}x`

const tasking = (r: any): Array<Target> => {
  const runs: Array<any> = r.runs ?? []
  const tasks = Math.min(...runs.map((x) => x.tasks))
  const byW = [...groupBy(runs.filter((x) => x.tasks === tasks), (x) => x.workers as number)].sort((a, b) => a[0] - b[0])
  const ratio = byW.map(([w, rs]) => [w, med(rs, (x) => x.makespan / x.bounds.work)] as const)
  const submit = new Map(byW.map(([w, rs]) => [w, med(rs, (x) => x.submit.mean)]))
  const free = byW.filter(([, rs]) => med(rs, (x) => x.waitRunnableWorkerFree.n) > 0).map(([w, rs]) => [w, med(rs, (x) => x.waitRunnableWorkerFree.mean)] as const)
  const out: Array<Target> = [{
    target: "makespan within 10% of the work bound (total work / W) at every worker count W",
    result: ratio.map(([w, v]) => `${sig(v)} at W = ${w}`).join(", "),
    met: all(ratio.map(([, v]) => v <= 1.1))
  }]
  const s1 = submit.get(1)
  const s32 = submit.get(32)
  out.push({
    target: "submit at 32 workers <= 1.2x submit at 1 worker (mean per task)",
    result: s1 !== undefined && s32 !== undefined ? `${ms(s32)} vs ${ms(s1)} (${x(s32 / s1)})` : "not run at W = 1 and 32",
    met: s1 !== undefined && s32 !== undefined ? s32 / s1 <= 1.2 : undefined
  })
  out.push({
    target: "mean runnable -> started < 20 ms whenever a worker is free",
    result: free.map(([w, v]) => `${ms(v)} at W = ${w}`).join(", "),
    met: all(free.map(([, v]) => v < 20))
  })
  return out
}

const throughput = (r: any): Array<Target> => {
  const execs: Array<any> = r.execs ?? []
  const rate = (system: string, p: number) => med(execs.filter((e) => e.system === system && e.processes === p), (e) => e.jobsPerSecond)
  const ps = [...new Set(execs.map((e) => e.processes as number))].sort((a, b) => a - b)
  const out: Array<Target> = []
  const vs = (ours: string, theirs: string, share: number, target: string) => {
    const pairs = ps.map((p) => [p, rate(ours, p), rate(theirs, p)] as const).filter(([, a, b]) => Number.isFinite(a) && Number.isFinite(b))
    out.push({
      target,
      result: pairs.length ? pairs.map(([p, a, b]) => `P = ${p}: ${sig(a)} vs ${sig(b)} jobs/s (${x(a / b)})`).join("; ") : `${ours} or ${theirs} not run`,
      met: pairs.length ? pairs.every(([, a, b]) => a >= share * b) : undefined
    })
  }
  vs("cairn", "gw-default", 1, "no-op jobs/s with cairn's defaults >= 1.0x graphile-worker's defaults at every P")
  vs("cairn-16", "gw-fast", 0.25, "no-op jobs/s with cairn's batching settings (16 slots) >= 25% of graphile-worker's fastest at every P")
  vs("cairn", "boss-fast", 3, "no-op jobs/s with cairn's defaults >= 3x pg-boss's fastest settings at every P")
  const lat: Array<any> = r.latencies ?? []
  const p50 = (system: string) => med(lat.filter((l) => l.system === system), (l) => l.latency.p50)
  const gw = Math.min(...["gw-default", "gw-fast"].map(p50).filter(Number.isFinite))
  const cairn = Math.min(...["cairn (direct)", "cairn (HTTP)"].map(p50).filter(Number.isFinite))
  out.push({
    target: "submit -> start p50 at idle <= graphile-worker's in the same run, and < 5 ms",
    result: Number.isFinite(cairn) && Number.isFinite(gw)
      ? `cairn ${ms(cairn)} (best of direct and HTTP) vs graphile-worker ${ms(gw)} (best of its settings); ${r.latencyPoint === "handler" ? "every system timed at its handler's start" : "cairn timed at its claim statement's started_at, the others at their handler's first line"}`
      : "not run",
    met: Number.isFinite(cairn) && Number.isFinite(gw) ? cairn <= gw && cairn < 5 : undefined
  })
  return out
}

const dag = (r: any): Array<Target> => {
  const runs: Array<any> = Array.isArray(r) ? r : r.runs ?? []
  const chain = runs.filter((x) => x.shape === "chain" && !x.failing)
  const cone = runs.filter((x) => x.failing && x.cone).sort((a, b) => b.cone.size - a.cone.size)
  const biggest = cone.length ? cone.filter((x) => x.cone.size === cone[0].cone.size) : []
  const edge = med(chain, (x) => x.edge.p50)
  const coneMs = med(biggest, (x) => x.cone.endToEndMs)
  return [
    { target: "chain edge p50 < 5 ms", result: chain.length ? `${ms(edge)} (${ms(Math.min(...chain.map((x) => x.edge.p50)))}-${ms(Math.max(...chain.map((x) => x.edge.p50)))})` : "not run", met: chain.length ? edge < 5 : undefined },
    {
      target: "a failure settles its whole downstream cone (the largest run) in < 1 s, end to end",
      result: biggest.length ? `${biggest[0].cone.size.toLocaleString("en-US")} tasks in ${ms(coneMs)} (${ms(med(biggest, (x) => x.cone.cascadeStatementMs))} in the failing task's settle statement)` : "not run",
      met: biggest.length ? coneMs < 1000 : undefined
    }
  ]
}

const gc = (r: any): Array<Target> => {
  const seconds = (r.cleanup?.report?.duration_ms ?? NaN) / 1000
  const failed = Object.entries(r.finalStates ?? {}).filter(([k]) => k !== "succeeded").reduce((s, [, v]) => s + Number(v), 0)
  return [
    { target: "cleanup of 1,000,000 units (10% orphaned) < 60 s", result: `${sig(seconds)} s for ${Number(r.cleanup?.report?.content_units ?? NaN).toLocaleString("en-US")} orphaned units`, met: Number.isFinite(seconds) ? seconds < 60 : undefined },
    { target: "syncs running beside the cleanup slowed < 10%", result: `${pct(r.drop)} (files/s before ${sig(r.phases?.before?.filesPerSecond)}, during ${sig(r.phases?.during?.filesPerSecond)}, after ${sig(r.phases?.after?.filesPerSecond)})`, met: Number.isFinite(r.drop) ? r.drop < 0.1 : undefined },
    { target: "no task fails, no orphan left", result: `${failed} not succeeded, ${r.remaining?.orphans ?? "?"} orphans left`, met: failed === 0 && r.remaining?.orphans === 0 }
  ]
}

/** Runs before the object-store column had no `backend`: they were local disk. */
const backendOf = (run: any): string => run.backend ?? (typeof run.who === "string" && run.who.startsWith("cairn ") ? run.who.slice(6) : "local")

const content = (r: any): Array<Target> => {
  const runs: Array<any> = r.runs ?? []
  const nginx = runs.filter((x) => x.who === "nginx")
  const floor = runs.filter((x) => x.who === "node floor")
  const cairn = groupBy(runs.filter((x) => typeof x.who === "string" && x.who.startsWith("cairn")), backendOf)
  const small = [...new Set(runs.filter((x) => x.mix === "small").map((x) => x.connections as number))].sort((a, b) => a - b)
  const out: Array<Target> = []
  for (const [backend, rs] of cairn) {
    const at = (who: ReadonlyArray<any>, c: number) => who.filter((x) => x.mix === "small" && x.connections === c)
    const rps = small.map((c) => [c, med(at(rs, c), (x) => x.rps) / med(at(nginx, c), (x) => x.rps)] as const)
    out.push({ target: `small files, ${backend}: >= 50% of nginx's req/s at every connection count`, result: rps.map(([c, v]) => `${pct(v)} at ${c}`).join(", "), met: all(rps.map(([, v]) => v >= 0.5)) })
    const cpu = small.map((c) => [c, med(at(rs, c), (x) => x.serverCpuUsPerRequest), med(at(nginx, c), (x) => x.serverCpuUsPerRequest)] as const)
    // Node's HTTP floor in the same run (when measured): what any Node.js server spends per request.
    const floorNote = floor.length === 0 ? "" : `; node:http floor ${small.map((c) => {
      const f = med(at(floor, c), (r) => r.serverCpuUsPerRequest)
      return `${sig(f)} µs (${x(f / med(at(nginx, c), (r) => r.serverCpuUsPerRequest))})`
    }).join(", ")}`
    out.push({ target: `small files, ${backend}: <= 1.5x nginx's server CPU per request`, result: cpu.map(([c, a, b]) => `${sig(a)} vs ${sig(b)} µs (${x(a / b)}) at ${c}`).join(", ") + floorNote, met: all(cpu.map(([, a, b]) => a <= 1.5 * b)) })
    const statements = rs.reduce((s, x) => s + x.statements, 0)
    const requests = rs.reduce((s, x) => s + x.requests, 0)
    out.push({ target: `${backend}: no database statement per request at steady state (background statements aside: < 1 per 1,000 requests)`, result: `${statements} statements in ${requests.toLocaleString("en-US")} requests`, met: statements / requests < 0.001 })
    const errors = rs.reduce((s, x) => s + x.errors + x.timeouts + x.non2xx, 0)
    out.push({ target: `${backend}: no errors`, result: `${errors} errors, timeouts or non-2xx`, met: errors === 0 })
  }
  return out
}

const sync = (r: any): Array<Target> => {
  const runs: Array<any> = r.runs ?? []
  const curl = med(runs.filter((x) => x.who === "curl"), (x) => x.filesPerSecond)
  // One verdict per store, over its worker-process counts (a median across them would mix runs
  // of different setups); the target is met if some count meets it.
  return [...groupBy(runs.filter((x) => x.who === "cairn"), backendOf)].map(([backend, rs]) => {
    const byP = [...groupBy(rs, (x) => String(x.processes ?? 1))].map(([p, ps]) => [p, med(ps, (x) => x.filesPerSecond)] as const)
    const result = byP.map(([p, fps]) => `${sig(fps)} files/s (${pct(fps / curl)}) at ${p} worker process${p === "1" ? "" : "es"}`).join(", ")
    return { target: `${backend}: files/s >= 70% of curl's with the same parallelism`, result: `${result}; curl ${sig(curl)} files/s`, met: byP.some(([, fps]) => fps >= 0.7 * curl) }
  })
}

const churn = (r: any): Array<Target> => {
  const cycles: Array<any> = r.cycles ?? []
  const reference: number = r.reference ?? 10
  const at = (n: number) => cycles.find((c) => c.cycle === n)
  const last = cycles.at(-1)
  const ref = at(reference)
  const goal = `cycle ${last?.cycle ?? "N"} within 5% of cycle ${reference} on every measure`
  if (ref === undefined || last === undefined || last.cycle <= reference) return [{ target: goal, result: `fewer than ${reference + 1} cycles run`, met: undefined }]
  const total = (c: any): number => c.mirrorMs + c.cleanupMs + c.purgeMs
  const windows = durationWindows(cycles, reference)
  const change = (a: number, b: number) => (a === 0 ? (b === 0 ? 0 : Infinity) : (b - a) / a)
  const rows = Object.keys(ref.rows).map((t) => [t, change(ref.rows[t], last.rows[t] ?? 0)] as const)
  const worstRow = rows.reduce((w, r) => (Math.abs(r[1]) > Math.abs(w[1]) ? r : w), ["-", 0] as const)
  const measures: Array<readonly [string, number]> = [
    [worstRow[1] === 0 ? "rows of every table" : `rows (worst: ${worstRow[0]})`, worstRow[1]],
    ["stored bytes", change(ref.storedBytes, last.storedBytes)],
    ["database size", change(ref.databaseBytes, last.databaseBytes)]
  ]
  if (windows !== undefined) {
    measures.push([`cycle duration (median of cycles ${windowName(windows.early)} vs ${windowName(windows.late)})`, change(median(windows.early.map(total)), median(windows.late.map(total)))])
  }
  const reclaim = median(cycles.filter((c) => c.cycle >= reference).map((c) => c.cleanupMs + c.purgeMs))
  return [
    {
      target: goal,
      result: measures.map(([m, v]) => `${m} ${v >= 0 ? "+" : ""}${pct(v)}`).join(", ") + (windows === undefined ? "; too few cycles to compare durations" : ""),
      met: windows === undefined ? undefined : measures.every(([, v]) => Math.abs(v) <= 0.05)
    },
    { target: `cleanup + purge of a cycle < 2 s (median from cycle ${reference} on)`, result: ms(reclaim), met: reclaim < 2000 }
  ]
}

const TARGETS: Record<string, (results: any) => Array<Target>> = { tasking, throughput, dag, content, gc, sync, churn }

/** A run that started with the 1-minute load average above the core count. */
export const loaded = (m: Machine) => (m.load_average_at_start[0] ?? 0) > m.cores

export const targetsTable = (published: ReadonlyArray<Published>): Table => ({
  title: "Targets, computed from the published results (docs/bench/<name>.json)",
  headers: ["benchmark", "target", "result", "verdict", "run"],
  rows: published.flatMap((p) => {
    const f = TARGETS[p.name]
    if (!f) return []
    const run = `${p.machine.date.slice(0, 10)}, commit ${p.machine.commit}, load ${p.machine.load_average_at_start[0]} at start`
    return f(p.results).map((t) => {
      const verdict = t.met === undefined ? "no figure" : t.met ? "met" : "missed"
      return [p.name, t.target, t.result, loaded(p.machine) && t.met !== undefined ? `${verdict} on a loaded machine: not a claim` : verdict, run]
    })
  }),
  notes: [
    "Verdicts are computed from the figures. A run whose 1-minute load average at start exceeded the machine's core count was measured while other work competed for the cores: its verdicts are shown but claim nothing.",
    "Where a benchmark has several rounds, the figure is the median over the rounds; each benchmark's section below has the spreads."
  ]
})
