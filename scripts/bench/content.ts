/**
 * bench:content — cairn's content app (/content/<base_path>/<file>) under load, against nginx
 * serving the same files from disk, in the same run, interleaved.
 *
 * The repository is built through the real API: a remote on a local upstream (nginx serving the
 * file tree), a repository, a distribution, then one graph sync -> publish -> distribute. Then the
 * worker process is stopped (the API server, which holds the content app, keeps running) and
 * autocannon (in this process) requests random files at C connections from cairn and from nginx:
 * "small" = files up to 8 KiB (70% of the tree), "all" = any file (25 KiB on average).
 * Reported: req/s, latency p50/p90/p99, bytes/s, errors, database statements per request
 * (pg_stat_statements calls in cairn's database during the run / requests), CPU per request.
 * Also the first-request costs: the first request after start (loads the publication's file map),
 * and the first request of an on-demand file (fetched from the upstream, stored, then served).
 *
 *   npm run bench:content
 *   npm run bench:content -- --quick
 */
import autocannon from "autocannon"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import { parseFlags } from "./lib/args.js"
import { awaitFuture, makeDataDir, post, request, startServer, startWorkers, stopProcs, submitGraph, waitForWorkers } from "./lib/cairn.js"
import { cpuOfPids, cpuOfProcessTree, cpuOfSelf, cpuProfileArgs } from "./lib/cpu.js"
import { makeTraversable, makeTree, SMALL_FILE_MAX, type Tree } from "./lib/files.js"
import { startNginx } from "./lib/nginx.js"
import { createDatabase, dropDatabase, startPostgres, statementCalls } from "./lib/postgres.js"
import { machine, writeReport } from "./lib/report.js"
import { bytes, median, ms, prng, sig, sleep, summarize, type Summary } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"

const { flags, out, command } = parseFlags("content", "The content app under autocannon vs nginx on the same files.", {
  files: { default: 10000, quick: 1000, help: "files in the published repository" },
  connections: { default: [64, 256, 1024] as ReadonlyArray<number>, quick: [64, 256], help: "autocannon connection counts" },
  duration: { default: 10, quick: 4, help: "seconds per measured load run" },
  warmup: { default: 2, quick: 1, help: "seconds of unmeasured load before each run" },
  rounds: { default: 2, quick: 1, help: "rounds (every connection count x mix x server once per round)" },
  "on-demand": { default: 200, quick: 40, help: "on-demand files requested for the first-request cost" },
  seed: { default: 1, help: "seed of the file tree and the request order" },
  profile: { default: "", help: "directory for a V8 CPU profile of the cairn API process (--cpu-prof)" }
})

type Mix = "small" | "all"
type Who = "nginx" | "cairn"

interface LoadRun {
  readonly who: Who
  readonly mix: Mix
  readonly connections: number
  readonly round: number
  readonly rps: number
  readonly latency: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  readonly bytesPerSecond: number
  readonly requests: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  /** cairn only: statements executed in its database per request (pg_stat_statements). */
  readonly statementsPerRequest: number
  /** cairn only: statements executed in its database during the run. */
  readonly statements: number
  /** Server CPU microseconds per request (nginx: master + workers; cairn: the API process). */
  readonly serverCpuUsPerRequest: number
  /** The load generator's own CPU share (1 = one core): near 1 means the client is the limit. */
  readonly clientCpu: number
  readonly load: ReadonlyArray<number>
}

const paths = (tree: Tree, mix: Mix) => tree.files.filter((f) => mix === "all" || f.size <= SMALL_FILE_MAX).map((f) => f.path)

const load = async (base: string, list: ReadonlyArray<string>, connections: number, seconds: number, seed: number) => {
  const rand = prng(seed)
  return autocannon({
    url: base,
    connections,
    duration: seconds,
    timeout: 30,
    requests: [{ method: "GET", setupRequest: (req) => ({ ...req, path: `${new URL(base).pathname.replace(/\/$/, "")}/${list[Math.floor(rand() * list.length)]}` }) }]
  })
}

const main = async () => {
  const tree = await makeTree(flags.files, flags.seed)
  await makeTraversable(tree.dir)
  const nginx = await startNginx(tree.dir)
  // On-demand files must not be stored already: a different tree (other seed), its own upstream.
  const lazyTree = await makeTree(flags["on-demand"], flags.seed + 1000)
  await makeTraversable(lazyTree.dir)
  const lazyUpstream = await startNginx(lazyTree.dir, { workers: 1 })
  const pg = await startPostgres()
  const m = machine(pg)
  const url = await createDatabase(pg, "content")
  const dataDir = await makeDataDir("content")
  const server = await startServer(url, dataDir, {}, cpuProfileArgs(flags.profile || undefined))
  const workers = startWorkers(1, url, dataDir, { CAIRN_HOST_DOWNLOAD_SLOTS: "16" })
  const runs: Array<LoadRun> = []
  let firstCold = NaN
  let firstWarm = NaN
  let buildSeconds = NaN
  let onDemand: { files: number; first: Summary; again: Summary; statementsPerFirst: number } | undefined
  try {
    await waitForWorkers(url, 1, workers)
    // Build the published repository through the API.
    await post(server.url, "/api/v1/remotes", { name: "upstream", url: `${nginx.url}/PULP_MANIFEST`, policy: "immediate", download_concurrency: 16 })
    await post(server.url, "/api/v1/repositories", { name: "files" })
    await post(server.url, "/api/v1/distributions", { name: "files", base_path: "bench/files" })
    await post(server.url, "/api/v1/remotes", { name: "lazy", url: `${lazyUpstream.url}/PULP_MANIFEST`, policy: "on_demand" })
    await post(server.url, "/api/v1/repositories", { name: "lazy" })
    await post(server.url, "/api/v1/distributions", { name: "lazy", base_path: "bench/lazy" })
    const chain = (repo: string, remote: string, dist: string) => ({
      sync: { task: "file.sync", params: { repository: repo, remote } },
      publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
      distribute: { task: "distribution.set", params: { distribution: dist, publication: { $ref: "publish.publication" } } }
    })
    console.error(`building the repository: sync ${flags.files} files -> publish -> distribute`)
    const t0 = performance.now()
    const g = await submitGraph(server.url, chain("files", "upstream", "files"))
    const d = await awaitFuture(server.url, g.body.nodes.distribute!.outputs.distribution!, 3_600_000)
    if (d.state !== "resolved") throw new Error(`building the repository failed: ${JSON.stringify(d.error)}`)
    buildSeconds = (performance.now() - t0) / 1000
    const g2 = await submitGraph(server.url, chain("lazy", "lazy", "lazy"))
    const d2 = await awaitFuture(server.url, g2.body.nodes.distribute!.outputs.distribution!, 600_000)
    if (d2.state !== "resolved") throw new Error(`building the on-demand repository failed: ${JSON.stringify(d2.error)}`)
    console.error(`built in ${sig(buildSeconds)} s; stopping the worker process`)
    await stopProcs(workers)
    await sleep(1500)

    // First requests: the publication's file map is loaded on first use.
    const rand = prng(flags.seed)
    const anyFile = tree.files[Math.floor(rand() * tree.files.length)]!.path
    firstCold = (await request(server.url, "GET", `/content/bench/files/${anyFile}`)).ms
    firstWarm = (await request(server.url, "GET", `/content/bench/files/${anyFile}`)).ms
    // On demand: every request below is a file's first.
    const lazyFiles = lazyTree.files.slice(1).map((f) => f.path)
    await request(server.url, "GET", `/content/bench/lazy/${lazyTree.files[0]!.path}`) // load the map
    const s0 = await statementCalls(url)
    const first: Array<number> = []
    for (const p of lazyFiles) {
      const r = await request(server.url, "GET", `/content/bench/lazy/${p}`)
      if (r.status !== 200) throw new Error(`on-demand ${p}: ${r.status}`)
      first.push(r.ms)
    }
    const statementsPerFirst = ((await statementCalls(url)) - s0) / lazyFiles.length
    const again: Array<number> = []
    for (const p of lazyFiles) again.push((await request(server.url, "GET", `/content/bench/lazy/${p}`)).ms)
    onDemand = { files: lazyFiles.length, first: summarize(first), again: summarize(again), statementsPerFirst }

    for (let round = 1; round <= flags.rounds; round++) {
      for (const connections of flags.connections) {
        for (const mix of ["small", "all"] as const) {
          const order: Array<Who> = (round + connections + (mix === "small" ? 0 : 1)) % 2 === 0 ? ["nginx", "cairn"] : ["cairn", "nginx"]
          for (const who of order) {
            const base = who === "nginx" ? nginx.url : `${server.url}/content/bench/files/`
            const list = paths(tree, mix)
            await load(base, list, connections, flags.warmup, flags.seed + round)
            const loadAvg = os.loadavg()
            const st0 = who === "cairn" ? await statementCalls(url) : 0
            const cpu0 = who === "nginx" ? cpuOfProcessTree(nginx.proc.pid) : cpuOfPids([server.pid])
            const self0 = cpuOfSelf()
            const r = await load(base, list, connections, flags.duration, flags.seed * 1000 + round)
            const clientCpu = (cpuOfSelf() - self0) / (r.duration * 1000)
            const cpu = (who === "nginx" ? cpuOfProcessTree(nginx.proc.pid) : cpuOfPids([server.pid])) - cpu0
            const st = who === "cairn" ? (await statementCalls(url)) - st0 : 0
            const requests = r.requests.total
            const run: LoadRun = {
              who,
              mix,
              connections,
              round,
              rps: r.requests.average,
              latency: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
              bytesPerSecond: r.throughput.average,
              requests,
              errors: r.errors,
              timeouts: r.timeouts,
              non2xx: r.non2xx,
              statementsPerRequest: st / Math.max(1, requests),
              statements: st,
              serverCpuUsPerRequest: (cpu * 1000) / Math.max(1, requests),
              clientCpu,
              load: loadAvg
            }
            runs.push(run)
            console.error(`[${who} ${mix} c=${connections} round ${round}] ${sig(run.rps)} req/s, p50 ${ms(run.latency.p50)}, p99 ${ms(run.latency.p99)}, ${bytes(run.bytesPerSecond)}/s, errors ${run.errors}, non2xx ${run.non2xx}${who === "cairn" ? `, statements/request ${sig(run.statementsPerRequest)}` : ""}`)
          }
        }
      }
    }
  } finally {
    await stopProcs([...workers, server])
    await nginx.stop()
    await lazyUpstream.stop()
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
    await pg.stop()
  }

  const med = (rs: ReadonlyArray<LoadRun>, f: (r: LoadRun) => number) => median(rs.map(f))
  const cell = (rs: ReadonlyArray<LoadRun>, f: (r: LoadRun) => number, fmt: (v: number) => string = sig) => {
    const v = rs.map(f)
    return `${fmt(median(v))}${v.length > 1 ? ` (${fmt(Math.min(...v))}-${fmt(Math.max(...v))})` : ""}`
  }
  const rows: Array<Array<string>> = []
  for (const mix of ["small", "all"] as const) {
    for (const c of flags.connections) {
      const ng = runs.filter((r) => r.who === "nginx" && r.mix === mix && r.connections === c)
      const ca = runs.filter((r) => r.who === "cairn" && r.mix === mix && r.connections === c)
      for (const [who, rs] of [["nginx", ng], ["cairn", ca]] as const) {
        rows.push([
          `${mix} c=${c} ${who}`,
          cell(rs, (r) => r.rps),
          who === "cairn" ? `${((med(ca, (r) => r.rps) / med(ng, (r) => r.rps)) * 100).toFixed(0)}%` : "",
          `${ms(med(rs, (r) => r.latency.p50))} / ${ms(med(rs, (r) => r.latency.p90))} / ${ms(med(rs, (r) => r.latency.p99))}`,
          `${bytes(med(rs, (r) => r.bytesPerSecond))}/s`,
          String(rs.reduce((s, r) => s + r.errors + r.timeouts, 0)),
          String(rs.reduce((s, r) => s + r.non2xx, 0)),
          who === "cairn" ? `${sig(med(rs, (r) => r.statementsPerRequest))} (${rs.reduce((s, r) => s + r.statements, 0)} in ${rs.reduce((s, r) => s + r.requests, 0)} requests)` : "–",
          sig(med(rs, (r) => r.serverCpuUsPerRequest)),
          `${(med(rs, (r) => r.clientCpu) * 100).toFixed(0)}%`
        ])
      }
    }
  }
  const loadTable: Table = {
    title: `Serving ${flags.files.toLocaleString("en-US")} files (${bytes(tree.totalBytes)}) at C connections, random files, ${flags.duration} s per run; median of ${flags.rounds} round(s) (min-max)`,
    headers: ["mix / connections / server", "req/s", "cairn / nginx", "latency p50 / p90 / p99", "bytes/s", "errors", "non-2xx", "DB statements per request", "server CPU us/request", "client CPU"],
    rows,
    notes: [
      "small: files <= 8 KiB (70% of the tree); all: any file (25 KiB on average, up to 1 MiB). Targets: cairn >= 50% of nginx's req/s on small files; 0 DB queries per request; no errors.",
      "DB statements: pg_stat_statements calls in cairn's database during the measured runs (the benchmark's own probes excluded) / requests.",
      "client CPU: autocannon's own CPU (one Node.js thread) as a share of one core; at ~100% the load generator, not the server, is the limit. Both servers share the 2 cores with the load generator."
    ]
  }
  const firstTable: Table = {
    title: "First-request costs (one client, sequential)",
    headers: ["request", "latency", "DB statements per request"],
    rows: [
      ["first request after start (loads the publication's file map)", ms(firstCold), "–"],
      ["the same file again", ms(firstWarm), "–"],
      ...(onDemand
        ? [
          [`on-demand file, first request (fetch from upstream, verify, store, serve), ${onDemand.files} files`, `${ms(onDemand.first.p50)} p50 / ${ms(onDemand.first.p99)} p99 (${ms(onDemand.first.min)}-${ms(onDemand.first.max)})`, sig(onDemand.statementsPerFirst)],
          ["on-demand file, second request", `${ms(onDemand.again.p50)} p50 / ${ms(onDemand.again.p99)} p99`, "0 (expected)"]
        ]
        : [])
    ],
    notes: [`Building the published repository through the API (sync ${flags.files} files -> publish -> distribute, one graph) took ${sig(buildSeconds)} s (see bench:sync).`]
  }
  const mixes: Array<Mix> = ["small", "all"]
  const connAxis = { label: "connections", log: true, ticks: [...flags.connections], min: Math.min(...flags.connections) * 0.8, max: Math.max(...flags.connections) * 1.25 }
  const charts: Array<Chart> = [
    {
      kind: "line",
      title: "Requests per second",
      x: connAxis,
      y: { label: "req / s", min: 0 },
      series: mixes.flatMap((mix) => (["nginx", "cairn"] as const).map((who) => ({
        name: `${who}, ${mix} files`,
        color: who === "nginx" ? "#7f7f7f" : "#1f77b4",
        dash: mix === "all" ? "5 3" : undefined,
        marker: mix === "all" ? "square" as const : "circle" as const,
        points: flags.connections.map((c) => {
          const v = runs.filter((r) => r.who === who && r.mix === mix && r.connections === c).map((r) => r.rps)
          return { x: c, y: median(v), lo: Math.min(...v), hi: Math.max(...v) }
        })
      })))
    },
    {
      kind: "line",
      title: "Latency p99",
      x: connAxis,
      y: { label: "ms", log: true },
      series: mixes.flatMap((mix) => (["nginx", "cairn"] as const).map((who) => ({
        name: `${who}, ${mix} files`,
        color: who === "nginx" ? "#7f7f7f" : "#1f77b4",
        dash: mix === "all" ? "5 3" : undefined,
        marker: mix === "all" ? "square" as const : "circle" as const,
        points: flags.connections.map((c) => ({ x: c, y: median(runs.filter((r) => r.who === who && r.mix === mix && r.connections === c).map((r) => r.latency.p99)) }))
      })))
    }
  ]
  const svg = figure(charts, { title: "bench:content — cairn's content app vs nginx", columns: 2, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${nginx.version} · autocannon 9 · ${command}` })
  await writeReport({ name: "content", command, machine: m, options: flags, tables: [loadTable, firstTable], results: { totalBytes: tree.totalBytes, nginx: nginx.version, buildSeconds, firstCold, firstWarm, onDemand, runs }, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
