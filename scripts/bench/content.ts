/**
 * bench:content — cairn's content app (/content/<base_path>/<file>) under load, against nginx
 * serving the same files from disk, in the same run, interleaved; cairn once per artifact store
 * (local disk, and an S3-protocol object store: scripts/bench/lib/backends.ts).
 *
 * Per store, the repository is built through the real API: a remote on a local upstream (nginx
 * serving the file tree), a repository, a distribution, then one graph sync -> publish ->
 * distribute. Then the worker process is stopped (the API server, which holds the content app,
 * keeps running) and wrk requests random files at C connections from nginx and from each cairn:
 * "small" = files up to 8 KiB (70% of the tree), "all" = any file (25 KiB on average).
 * Reported: req/s (requests / duration, wrk's totals), server CPU per request, latency
 * p50/p90/p99, bytes/s, errors, database statements per request (pg_stat_statements calls in
 * cairn's database during the run / requests), the load generator's CPU.
 * Also the first-request costs: the first request after start (loads the publication's file map),
 * and the first request of an on-demand file (fetched from the upstream, stored, then served).
 *
 *   npm run bench:content
 *   npm run bench:content -- --quick
 *   npm run bench:content -- --backends local
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import { parseFlags } from "./lib/args.js"
import { type Backend, backendLabel, type BackendKind, parseBackends, startBackend } from "./lib/backends.js"
import { awaitFuture, makeDataDir, post, request, startServer, startWorkers, stopProcs, submitGraph, waitForWorkers } from "./lib/cairn.js"
import { cpuOfPids, cpuOfProcessTree, cpuProfileArgs } from "./lib/cpu.js"
import { makeTraversable, makeTree, SMALL_FILE_MAX, type Tree } from "./lib/files.js"
import { startNginx } from "./lib/nginx.js"
import { createDatabase, dropDatabase, type Postgres, startPostgres, statementCalls } from "./lib/postgres.js"
import { machine, writeReport } from "./lib/report.js"
import { bytes, median, medianRange, ms, prng, sig, sleep, summarize, type Summary } from "./lib/stats.js"
import { type Chart, figure, PALETTE } from "./lib/svg.js"
import type { Table } from "./lib/table.js"
import { makeWrk, wrkBinary, wrkVersion } from "./lib/wrk.js"
import { type Server, spawnProc } from "../lib/processes.js"

const { flags, out, command } = parseFlags("content", "The content app under wrk vs nginx on the same files, per artifact store.", {
  files: { default: 10000, quick: 1000, help: "files in the published repository" },
  connections: { default: [64, 256, 1024] as ReadonlyArray<number>, quick: [64, 256], help: "wrk connection counts" },
  duration: { default: 10, quick: 3, help: "seconds per measured load run" },
  warmup: { default: 2, quick: 1, help: "seconds of unmeasured load before each run" },
  rounds: { default: 3, help: "rounds (every connection count x mix x server once per round)" },
  backends: { default: "local,s3", help: "artifact stores to serve from (local, s3)" },
  "on-demand": { default: 200, quick: 40, help: "on-demand files requested for the first-request cost" },
  seed: { default: 1, help: "seed of the file tree and the request order" },
  profile: { default: "", help: "directory for a V8 CPU profile of the cairn API processes (--cpu-prof)" }
})
const backends = parseBackends(flags.backends)

type Mix = "small" | "all"
/**
 * What served a run: nginx, Node's HTTP floor (a bare node:http server with the files in memory,
 * lib/node-floor.ts: what any Node.js server spends per request), or cairn on one artifact store.
 */
type Who = "nginx" | "node floor" | `cairn ${BackendKind}`
const WHO: ReadonlyArray<Who> = ["nginx", "node floor", ...backends.map((b) => `cairn ${b}` as const)]
/** cairn runs its default CAIRN_API_PROCESSES (one per core): API processes on the one port. */
const API_PROCESSES = os.availableParallelism()
const whoLabel = (w: Who) =>
  w === "nginx" ? "nginx" : w === "node floor" ? "node:http floor" : `cairn (${API_PROCESSES} API processes), ${backendLabel(w.slice(6) as BackendKind)}`

interface LoadRun {
  readonly who: Who
  readonly mix: Mix
  readonly connections: number
  readonly round: number
  /** Requests / duration, wrk's totals. */
  readonly rps: number
  readonly latency: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  readonly bytesPerSecond: number
  readonly requests: number
  readonly seconds: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  /** cairn only: statements executed in its database per request (pg_stat_statements). */
  readonly statementsPerRequest: number
  /** cairn only: statements executed in its database during the run. */
  readonly statements: number
  /** Server CPU microseconds per request (nginx: master + workers; cairn: its primary + API processes + the object store's). */
  readonly serverCpuUsPerRequest: number
  /** cairn on S3 only: the object store's (s3rver's) share of serverCpuUsPerRequest. */
  readonly storeCpuUsPerRequest: number
  /** The load generator's own CPU share (1 = one core). */
  readonly clientCpu: number
  readonly load: ReadonlyArray<number>
}

interface FirstCosts {
  readonly buildSeconds: number
  readonly firstCold: number
  readonly firstWarm: number
  readonly onDemand: { readonly files: number; readonly first: Summary; readonly again: Summary; readonly statementsPerFirst: number }
}

/** A cairn API server on one artifact store, its repository built, its worker stopped. */
interface Cairn {
  readonly kind: BackendKind
  readonly backend: Backend
  readonly server: Server
  readonly url: string
  readonly dataDir: string
  readonly first: FirstCosts
}

/** Node's HTTP floor (lib/node-floor.ts) serving the tree from memory. */
const startFloor = async (dir: string) => {
  const proc = spawnProc("node-floor", process.execPath, ["--import", "tsx", "scripts/bench/lib/node-floor.ts", dir])
  const port = await new Promise<string>((resolve, reject) => {
    const stop = proc.onLine((line) => {
      const m = /^listening (\d+)$/.exec(line.trim())
      if (m) {
        stop()
        resolve(m[1]!)
      }
    })
    void proc.exited.then(() => reject(new Error(`node-floor exited:\n${proc.output()}`)))
  })
  return { proc, url: `http://127.0.0.1:${port}` }
}

const paths = (tree: Tree, mix: Mix) => tree.files.filter((f) => mix === "all" || f.size <= SMALL_FILE_MAX).map((f) => f.path)

const startCairn = async (pg: Postgres, kind: BackendKind, tree: Tree, upstream: string, lazyTree: Tree, lazyUpstream: string, cleanups: Array<() => Promise<void>>): Promise<Cairn> => {
  const backend = await startBackend(kind)
  cleanups.push(backend.stop)
  const url = await createDatabase(pg, `content_${kind}`)
  cleanups.push(() => dropDatabase(pg, url))
  const dataDir = await makeDataDir(`content-${kind}`)
  cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }))
  // Its default number of API processes (the benchmark harness pins other benchmarks to one).
  const server = await startServer(url, dataDir, { ...backend.env, CAIRN_API_PROCESSES: undefined }, cpuProfileArgs(flags.profile || undefined))
  cleanups.push(() => stopProcs([server]).then(() => undefined))
  const workers = startWorkers(1, url, dataDir, { CAIRN_HOST_DOWNLOAD_SLOTS: "16", ...backend.env })
  let buildSeconds = NaN
  try {
    await waitForWorkers(url, 1, workers)
    // Build the published repository through the API.
    await post(server.url, "/api/v1/remotes", { name: "upstream", url: `${upstream}/PULP_MANIFEST`, policy: "immediate", download_concurrency: 16 })
    await post(server.url, "/api/v1/repositories", { name: "files" })
    await post(server.url, "/api/v1/distributions", { name: "files", base_path: "bench/files" })
    await post(server.url, "/api/v1/remotes", { name: "lazy", url: `${lazyUpstream}/PULP_MANIFEST`, policy: "on_demand" })
    await post(server.url, "/api/v1/repositories", { name: "lazy" })
    await post(server.url, "/api/v1/distributions", { name: "lazy", base_path: "bench/lazy" })
    const chain = (repo: string, remote: string, dist: string) => ({
      sync: { task: "file.sync", params: { repository: repo, remote } },
      publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
      distribute: { task: "distribution.set", params: { distribution: dist, publication: { $ref: "publish.publication" } } }
    })
    console.error(`[${kind}] building the repository: sync ${flags.files} files -> publish -> distribute`)
    const t0 = performance.now()
    const g = await submitGraph(server.url, chain("files", "upstream", "files"))
    const d = await awaitFuture(server.url, g.body.nodes.distribute!.outputs.distribution!, 3_600_000)
    if (d.state !== "resolved") throw new Error(`building the repository on ${kind} failed: ${JSON.stringify(d.error)}`)
    buildSeconds = (performance.now() - t0) / 1000
    const g2 = await submitGraph(server.url, chain("lazy", "lazy", "lazy"))
    const d2 = await awaitFuture(server.url, g2.body.nodes.distribute!.outputs.distribution!, 600_000)
    if (d2.state !== "resolved") throw new Error(`building the on-demand repository on ${kind} failed: ${JSON.stringify(d2.error)}`)
    console.error(`[${kind}] built in ${sig(buildSeconds)} s; stopping the worker process`)
  } finally {
    await stopProcs(workers)
  }
  await sleep(1500)

  // First requests: the publication's file map is loaded on first use.
  const rand = prng(flags.seed)
  const anyFile = tree.files[Math.floor(rand() * tree.files.length)]!.path
  const firstCold = (await request(server.url, "GET", `/content/bench/files/${anyFile}`)).ms
  const firstWarm = (await request(server.url, "GET", `/content/bench/files/${anyFile}`)).ms
  // On demand: every request below is a file's first (the API server fetches and stores it).
  const lazyFiles = lazyTree.files.slice(1).map((f) => f.path)
  await request(server.url, "GET", `/content/bench/lazy/${lazyTree.files[0]!.path}`) // load the map
  const s0 = await statementCalls(url)
  const first: Array<number> = []
  for (const p of lazyFiles) {
    const r = await request(server.url, "GET", `/content/bench/lazy/${p}`)
    if (r.status !== 200) throw new Error(`on-demand ${p} on ${kind}: ${r.status}`)
    first.push(r.ms)
  }
  const statementsPerFirst = ((await statementCalls(url)) - s0) / lazyFiles.length
  const again: Array<number> = []
  for (const p of lazyFiles) again.push((await request(server.url, "GET", `/content/bench/lazy/${p}`)).ms)
  const onDemand = { files: lazyFiles.length, first: summarize(first), again: summarize(again), statementsPerFirst }
  // Steady state: every file requested once (16 at a time) before the measured rounds, so that the
  // first round does not pay for filling the content app's cache from the store.
  const queue = tree.files.map((f) => f.path)
  await Promise.all(Array.from({ length: 16 }, async () => {
    for (let p = queue.pop(); p !== undefined; p = queue.pop()) {
      const r = await request(server.url, "GET", `/content/bench/files/${p}`)
      if (r.status !== 200) throw new Error(`priming ${p} on ${kind}: ${r.status}`)
    }
  }))
  return { kind, backend, server, url, dataDir, first: { buildSeconds, firstCold, firstWarm, onDemand } }
}

const main = async () => {
  wrkBinary() // fail now, with how to install it, rather than after building the repositories
  const tree = await makeTree(flags.files, flags.seed)
  await makeTraversable(tree.dir)
  const nginx = await startNginx(tree.dir)
  const floor = await startFloor(tree.dir)
  // On-demand files must not be stored already: a different tree (other seed), its own upstream.
  const lazyTree = await makeTree(flags["on-demand"], flags.seed + 1000)
  await makeTraversable(lazyTree.dir)
  const lazyUpstream = await startNginx(lazyTree.dir, { workers: 1 })
  const pg = await startPostgres()
  const m = machine(pg)
  const wrk = await makeWrk()
  const wrkName = await wrkVersion()
  const runs: Array<LoadRun> = []
  const cairns: Array<Cairn> = []
  const cleanups: Array<() => Promise<void>> = []
  try {
    for (const kind of backends) cairns.push(await startCairn(pg, kind, tree, nginx.url, lazyTree, lazyUpstream.url, cleanups))
    const target = (who: Who) => {
      if (who === "nginx") return { base: nginx.url, cpu: () => cpuOfProcessTree(nginx.proc.pid), storeCpu: () => 0, db: undefined }
      if (who === "node floor") return { base: floor.url, cpu: () => cpuOfPids([floor.proc.pid]), storeCpu: () => 0, db: undefined }
      const c = cairns.find((x) => `cairn ${x.kind}` === who)!
      return { base: `${c.server.url}/content/bench/files/`, cpu: () => cpuOfProcessTree(c.server.pid), storeCpu: () => cpuOfPids(c.backend.pids), db: c.url }
    }
    for (let round = 1; round <= flags.rounds; round++) {
      for (const connections of flags.connections) {
        for (const mix of ["small", "all"] as const) {
          // Rotate who goes first, so that no server always runs right after another's load.
          const shift = (round + flags.connections.indexOf(connections) + (mix === "small" ? 0 : 1)) % WHO.length
          const order = [...WHO.slice(shift), ...WHO.slice(0, shift)]
          for (const who of order) {
            const t = target(who)
            const list = paths(tree, mix)
            await wrk.run(t.base, list, { connections, seconds: flags.warmup, seed: flags.seed + round })
            const loadAvg = os.loadavg()
            const st0 = t.db ? await statementCalls(t.db) : 0
            const cpu0 = t.cpu()
            const store0 = t.storeCpu()
            const r = await wrk.run(t.base, list, { connections, seconds: flags.duration, seed: flags.seed * 1000 + round })
            const storeCpu = t.storeCpu() - store0
            const cpu = t.cpu() - cpu0 + storeCpu
            const st = t.db ? (await statementCalls(t.db)) - st0 : 0
            const perRequest = (v: number) => (v * 1000) / Math.max(1, r.requests)
            const run: LoadRun = {
              who,
              mix,
              connections,
              round,
              rps: r.rps,
              latency: r.latency,
              bytesPerSecond: r.bytesPerSecond,
              requests: r.requests,
              seconds: r.seconds,
              errors: r.errors,
              timeouts: r.timeouts,
              non2xx: r.non2xx,
              statementsPerRequest: st / Math.max(1, r.requests),
              statements: st,
              serverCpuUsPerRequest: perRequest(cpu),
              storeCpuUsPerRequest: perRequest(storeCpu),
              clientCpu: r.clientCpu,
              load: loadAvg
            }
            runs.push(run)
            console.error(`[${who} ${mix} c=${connections} round ${round}] ${sig(run.rps)} req/s, ${sig(run.serverCpuUsPerRequest)} us CPU/request, p50 ${ms(run.latency.p50)}, p99 ${ms(run.latency.p99)}, ${bytes(run.bytesPerSecond)}/s, errors ${run.errors + run.timeouts}, non2xx ${run.non2xx}${t.db ? `, statements/request ${sig(run.statementsPerRequest)}` : ""}`)
          }
        }
      }
    }
  } finally {
    for (const f of cleanups.reverse()) await f().catch((e) => console.error(`clean-up: ${(e as Error).message}`))
    await wrk.close()
    await nginx.stop()
    await floor.proc.stop()
    await lazyUpstream.stop()
    await pg.stop()
  }

  const of = (who: Who, mix: Mix, c: number) => runs.filter((r) => r.who === who && r.mix === mix && r.connections === c)
  const med = (rs: ReadonlyArray<LoadRun>, f: (r: LoadRun) => number) => median(rs.map(f))
  /** Median (min-max) over the rounds. */
  const cell = (rs: ReadonlyArray<LoadRun>, f: (r: LoadRun) => number) => medianRange(rs.map(f))
  const ratio = (who: Who, mix: Mix, c: number, f: (r: LoadRun) => number) => med(of(who, mix, c), f) / med(of("nginx", mix, c), f)
  const cairnWho = WHO.filter((w) => w.startsWith("cairn"))
  const grid: Array<[Mix, number]> = (["small", "all"] as const).flatMap((mix) => flags.connections.map((c) => [mix, c] as [Mix, number]))
  const rowName = ([mix, c]: [Mix, number]) => `${mix}, c=${c}`
  const spreadNote = `Median of ${flags.rounds} round(s), (min-max) over the rounds.`
  const rpsTable: Table = {
    title: `Requests per second serving ${flags.files.toLocaleString("en-US")} files (${bytes(tree.totalBytes)}) at C connections, random files, ${flags.duration} s per run`,
    headers: ["mix, connections", ...WHO.flatMap((w) => (w === "nginx" ? [whoLabel(w)] : [whoLabel(w), "/ nginx"]))],
    rows: grid.map(([mix, c]) => [rowName([mix, c]), ...WHO.flatMap((w) => (w === "nginx" ? [cell(of(w, mix, c), (r) => r.rps)] : [cell(of(w, mix, c), (r) => r.rps), `${(ratio(w, mix, c, (r) => r.rps) * 100).toFixed(0)}%`]))]),
    notes: [
      `${spreadNote} req/s = requests / duration from wrk's totals. small: files <= 8 KiB (70% of the tree); all: any file (25 KiB on average, up to 1 MiB).`,
      "Steady state: before the rounds, every file was requested once from each cairn (its cache of small files' bytes, CAIRN_CONTENT_CACHE_BYTES, filled from its store); the first-request table shows the cold costs.",
      "Targets: cairn >= 50% of nginx's req/s on small files, <= 1.5x nginx's server CPU per request, 0 DB statements per request, no errors.",
      "Both servers, the object store and the load generator share the machine's cores: req/s is bounded by what is left to the server, which is why CPU per request is the steadier figure."
    ]
  }
  const cpuTable: Table = {
    title: "Server CPU per request (µs)",
    headers: ["mix, connections", ...WHO.flatMap((w) => (w === "nginx" ? [whoLabel(w)] : [whoLabel(w), "/ nginx"])), ...(backends.includes("s3") ? ["of which s3rver"] : [])],
    rows: grid.map(([mix, c]) => [
      rowName([mix, c]),
      ...WHO.flatMap((w) => (w === "nginx" ? [cell(of(w, mix, c), (r) => r.serverCpuUsPerRequest)] : [cell(of(w, mix, c), (r) => r.serverCpuUsPerRequest), `${sig(ratio(w, mix, c, (r) => r.serverCpuUsPerRequest))}x`])),
      ...(backends.includes("s3") ? [sig(med(of("cairn s3", mix, c), (r) => r.storeCpuUsPerRequest))] : [])
    ]),
    notes: [
      `${spreadNote} nginx: master + worker processes (one per core); node:http floor: its one process; cairn: its primary (which hands connections to the API processes) and its ${API_PROCESSES} API processes (CAIRN_API_PROCESSES' default, one per core), plus, on S3, the object store's process (s3rver), whose share is the last column.`,
      "node:http floor: a bare Node.js server answering from memory with the headers of cairn's cached small file (scripts/bench/lib/node-floor.ts): what Node's HTTP stack costs per request before any of cairn's work. A floor for the small mix; in the all mix it answers from memory what cairn streams from its store."
    ]
  }
  const latencyTable: Table = {
    title: "Latency p50 / p90 / p99 (wrk)",
    headers: ["mix, connections", ...WHO.map(whoLabel)],
    rows: grid.map(([mix, c]) => [rowName([mix, c]), ...WHO.map((w) => {
      const rs = of(w, mix, c)
      return `${ms(med(rs, (r) => r.latency.p50))} / ${ms(med(rs, (r) => r.latency.p90))} / ${ms(med(rs, (r) => r.latency.p99))}`
    })]),
    notes: [`${spreadNote} (medians only)`]
  }
  const sum = (rs: ReadonlyArray<LoadRun>, f: (r: LoadRun) => number) => rs.reduce((s, r) => s + f(r), 0)
  const checkTable: Table = {
    title: "Errors, database statements, bytes and the load generator",
    headers: ["mix, connections", "errors + non-2xx (" + WHO.join(" / ") + ")", ...cairnWho.map((w) => `DB statements per request, ${whoLabel(w)}`), ...WHO.map((w) => `bytes/s, ${whoLabel(w)}`), "wrk CPU (max)"],
    rows: grid.map(([mix, c]) => [
      rowName([mix, c]),
      WHO.map((w) => String(sum(of(w, mix, c), (r) => r.errors + r.timeouts + r.non2xx))).join(" / "),
      ...cairnWho.map((w) => {
        const rs = of(w, mix, c)
        return `${sig(med(rs, (r) => r.statementsPerRequest))} (${sum(rs, (r) => r.statements)} in ${sum(rs, (r) => r.requests).toLocaleString("en-US")})`
      }),
      ...WHO.map((w) => `${bytes(med(of(w, mix, c), (r) => r.bytesPerSecond))}/s`),
      `${(Math.max(...runs.filter((r) => r.mix === mix && r.connections === c).map((r) => r.clientCpu)) * 100).toFixed(0)}%`
    ]),
    notes: [
      "DB statements: pg_stat_statements calls in that cairn's database during the measured runs (the benchmark's own probes excluded) / requests.",
      `wrk CPU: the load generator's CPU as a share of one core (${os.cpus().length} threads; ${os.cpus().length * 100}% is all of them).`
    ]
  }
  const firstTable: Table = {
    title: "First-request costs (one client, sequential)",
    headers: ["request", ...cairns.map((c) => backendLabel(c.kind))],
    rows: [
      ["first request after start (loads the publication's file map)", ...cairns.map((c) => ms(c.first.firstCold))],
      ["the same file again", ...cairns.map((c) => ms(c.first.firstWarm))],
      [`on-demand file, first request (fetch from upstream, verify, store, serve), ${flags["on-demand"] - 1} files`, ...cairns.map((c) => {
        const o = c.first.onDemand
        return `${ms(o.first.p50)} p50 / ${ms(o.first.p99)} p99 (${ms(o.first.min)}-${ms(o.first.max)})`
      })],
      ["DB statements per on-demand first request", ...cairns.map((c) => sig(c.first.onDemand.statementsPerFirst))],
      ["on-demand file, second request", ...cairns.map((c) => `${ms(c.first.onDemand.again.p50)} p50 / ${ms(c.first.onDemand.again.p99)} p99`)],
      [`building the repository (sync ${flags.files} files -> publish -> distribute, one graph; see bench:sync)`, ...cairns.map((c) => `${sig(c.first.buildSeconds)} s`)]
    ]
  }
  const mixes: Array<Mix> = ["small", "all"]
  const connAxis = { label: "connections", log: true, ticks: [...flags.connections], min: Math.min(...flags.connections) * 0.8, max: Math.max(...flags.connections) * 1.25 }
  const color = (w: Who) => (w === "nginx" ? "#7f7f7f" : PALETTE[WHO.indexOf(w) - 1]!)
  const series = (f: (r: LoadRun) => number) =>
    mixes.flatMap((mix) => WHO.map((who) => ({
      name: `${whoLabel(who)}, ${mix} files`,
      color: color(who),
      dash: mix === "all" ? "5 3" : undefined,
      marker: mix === "all" ? "square" as const : "circle" as const,
      points: flags.connections.map((c) => {
        const v = of(who, mix, c).map(f)
        return { x: c, y: median(v), lo: Math.min(...v), hi: Math.max(...v) }
      })
    })))
  const charts: Array<Chart> = [
    { kind: "line", title: "Requests per second (median; bars: min..max of rounds)", x: connAxis, y: { label: "req / s", min: 0 }, series: series((r) => r.rps) },
    { kind: "line", title: "Server CPU per request", x: connAxis, y: { label: "µs", min: 0 }, series: series((r) => r.serverCpuUsPerRequest) },
    { kind: "line", title: "Latency p99", x: connAxis, y: { label: "ms", log: true }, series: series((r) => r.latency.p99) }
  ]
  const svg = figure(charts, { title: "bench:content — cairn's content app vs nginx", columns: 3, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${nginx.version} · ${wrkName} · ${command}` })
  await writeReport({
    name: "content",
    command,
    machine: m,
    options: flags,
    tables: [rpsTable, cpuTable, latencyTable, checkTable, firstTable],
    results: { totalBytes: tree.totalBytes, nginx: nginx.version, wrk: wrkName, backends, apiProcesses: API_PROCESSES, first: Object.fromEntries(cairns.map((c) => [c.kind, c.first])), runs },
    svg
  }, out)
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e)
  process.exit(1)
})
