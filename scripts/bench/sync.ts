/**
 * bench:sync — file.sync of a 10,000-file PULP_MANIFEST repository from a local HTTP server
 * (nginx serving a directory), against curl fetching the same files with the same parallelism;
 * cairn once per artifact store (local disk, and an S3-protocol object store:
 * scripts/bench/lib/backends.ts).
 *
 * Per round, interleaved: curl --parallel --parallel-max C (one process, HTTP keep-alive, files
 * written to disk), then cairn on each store at each number of worker processes P (fresh database
 * and store; P worker processes of one slot each, so that a sync with enough files spreads its
 * downloads over P download shards, src/content/sync-shards.ts; a remote with
 * download_concurrency C and CAIRN_HOST_DOWNLOAD_SLOTS C, so C downloads at once across the
 * cluster whatever P; the sync task's started_at -> finished_at from its row, which includes
 * verifying every sha256, storing, and the one commit of the new version). curl and cairn on local disk write to the same filesystem, s3rver too (it
 * keeps objects as files). Reported: files/s and MB/s, cairn as a share of curl, and CPU time of
 * each side (curl's own; cairn's worker + API server, PostgreSQL, and the object store's process).
 *
 *   npm run bench:sync
 *   npm run bench:sync -- --quick
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { parseFlags } from "./lib/args.js"
import { backendLabel, type BackendKind, parseBackends, startBackend } from "./lib/backends.js"
import { awaitFuture, makeDataDir, post, startServer, startWorkers, stopProcs, submitGraph, taskRows, waitForWorkers } from "./lib/cairn.js"
import { busyShare, cpuOfCluster, cpuOfPids, cpuProfileArgs, sampleMachine } from "./lib/cpu.js"
import { makeTraversable, makeTree, type Tree } from "./lib/files.js"
import { startNginx } from "./lib/nginx.js"
import { createDatabase, dropDatabase, type Postgres, resetStatements, startPostgres, type StatementStat, statementsTable, topStatements, withClient } from "./lib/postgres.js"
import { runCommand, spawnProc } from "../lib/processes.js"
import { machine, writeReport } from "./lib/report.js"
import { bytes, median, medianRange, ms, pct, sig, sleep } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"

const { flags, out, command } = parseFlags("sync", "file.sync of a PULP_MANIFEST repository vs curl with the same parallelism.", {
  files: { default: 10000, quick: 1000, help: "files in the repository" },
  parallel: { default: 16, help: "parallel downloads (curl --parallel-max, remote download_concurrency, host slots)" },
  rounds: { default: 3, help: "rounds (curl and cairn on each store once per round, interleaved)" },
  backends: { default: "local,s3", help: "artifact stores to sync into (local, s3)" },
  processes: { default: "1,2,4", help: "numbers of worker processes (one slot each) to sync with" },
  seed: { default: 1, help: "seed of the file tree" },
  profile: { default: "", help: "directory for a V8 CPU profile of the cairn worker (--cpu-prof)" }
})
const backends = parseBackends(flags.backends)
const processCounts = String(flags.processes).split(",").map((x) => Number(x.trim()))
if (processCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--processes: a comma-separated list of whole numbers >= 1, got ${flags.processes}`)

interface Result {
  readonly who: "curl" | "cairn"
  /** cairn only: the artifact store it synced into. */
  readonly backend?: BackendKind
  /** cairn only: worker processes. */
  readonly processes?: number
  readonly round: number
  readonly seconds: number
  readonly filesPerSecond: number
  readonly mbPerSecond: number
  readonly cpuMs: { readonly client: number; readonly postgres: number; readonly store: number }
  readonly machineBusy: number
  readonly load: ReadonlyArray<number>
  readonly statements?: ReadonlyArray<StatementStat> | undefined
  /** cairn only: the download shards the sync spread over. */
  readonly shards?: number
}

const curlRound = async (tree: Tree, base: string, round: number): Promise<Result> => {
  const outDir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-bench-curl-"))
  const config = path.join(outDir, "curl.config")
  await fs.writeFile(config, tree.files.map((f) => `url = "${base}/${f.path}"\noutput = "${path.join(outDir, "files", f.path)}"\n`).join(""))
  const load = os.loadavg()
  const m0 = sampleMachine()
  const t0 = performance.now()
  const p = spawnProc("curl", "curl", ["--silent", "--show-error", "--fail", "--create-dirs", "--parallel", "--parallel-max", String(flags.parallel), "--config", config])
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, cpuOfPids([p.pid]))), 100)
  const code = await p.exited
  clearInterval(sampler)
  const seconds = (performance.now() - t0) / 1000
  const machineBusy = busyShare(m0, sampleMachine())
  if (code !== 0) throw new Error(`curl exited ${code}: ${p.output().slice(-2000)}`)
  // curl's CPU: sampled while it ran (it is gone now); the last sample is at most 100 ms old.
  const got = (await runCommand("find", [path.join(outDir, "files"), "-type", "f"])).stdout.trim().split("\n").length
  await fs.rm(outDir, { recursive: true, force: true })
  if (got !== tree.files.length) throw new Error(`curl fetched ${got} of ${tree.files.length} files`)
  const r: Result = {
    who: "curl",
    round,
    seconds,
    filesPerSecond: tree.files.length / seconds,
    mbPerSecond: tree.totalBytes / 1e6 / seconds,
    cpuMs: { client: peak, postgres: 0, store: 0 },
    machineBusy,
    load
  }
  console.error(`[curl round ${round}] ${tree.files.length} files in ${sig(seconds)} s: ${sig(r.filesPerSecond)} files/s, ${sig(r.mbPerSecond)} MB/s`)
  return r
}

const cairnRound = async (pg: Postgres, tree: Tree, base: string, round: number, kind: BackendKind, processes: number): Promise<Result> => {
  const backend = await startBackend(kind)
  const url = await createDatabase(pg, "sync")
  const dataDir = await makeDataDir("sync")
  // CAIRN_SYNC_SHARDS=0: one download shard per live worker slot (one slot per process here).
  const env = { CAIRN_HOST_DOWNLOAD_SLOTS: String(flags.parallel), CAIRN_SYNC_SHARDS: "0", ...backend.env }
  const server = await startServer(url, dataDir, env)
  const workers = startWorkers(processes, url, dataDir, env, cpuProfileArgs(flags.profile || undefined))
  try {
    await waitForWorkers(url, processes, workers)
    await post(server.url, "/api/v1/remotes", { name: "upstream", url: `${base}/PULP_MANIFEST`, policy: "immediate", download_concurrency: flags.parallel })
    await post(server.url, "/api/v1/repositories", { name: "repo" })
    await sleep(1000)
    await resetStatements(url)
    const load = os.loadavg()
    const pids = [...workers.map((w) => w.pid), server.pid]
    const c0 = cpuOfPids(pids)
    const p0 = cpuOfCluster(pg.postmasterPid)
    const s0 = cpuOfPids(backend.pids)
    const m0 = sampleMachine()
    const g = await submitGraph(server.url, { sync: { task: "file.sync", params: { repository: "repo", remote: "upstream" } } })
    const f = await awaitFuture(server.url, g.body.nodes.sync!.outputs.version!)
    const cpuClient = cpuOfPids(pids) - c0
    const cpuPg = cpuOfCluster(pg.postmasterPid) - p0
    const cpuStore = cpuOfPids(backend.pids) - s0
    const machineBusy = busyShare(m0, sampleMachine())
    if (f.state !== "resolved") throw new Error(`sync ${f.state}: ${JSON.stringify(f.error)}`)
    const [row] = await taskRows(url, `id = '${g.body.nodes.sync!.task}'`)
    const seconds = ((row!.finished ?? NaN) - (row!.started ?? NaN)) / 1000
    const statements = await topStatements(url, 12)
    const [shards] = await withClient(url, (c) =>
      c.query<{ n: number }>(`SELECT count(*)::int AS n FROM graphs g JOIN tasks t ON t.graph_id = g.id WHERE g.parent_task = $1`, [g.body.nodes.sync!.task]))
      .then((r) => r.rows)
    const r: Result = {
      who: "cairn",
      backend: kind,
      processes,
      shards: shards?.n ?? 0,
      round,
      seconds,
      filesPerSecond: tree.files.length / seconds,
      mbPerSecond: tree.totalBytes / 1e6 / seconds,
      cpuMs: { client: cpuClient, postgres: cpuPg, store: cpuStore },
      machineBusy,
      load,
      statements
    }
    console.error(`[cairn ${kind} P=${processes} (${r.shards} shards) round ${round}] ${tree.files.length} files in ${sig(seconds)} s: ${sig(r.filesPerSecond)} files/s, ${sig(r.mbPerSecond)} MB/s (version ${f.value?.number})`)
    return r
  } finally {
    await stopProcs([...workers, server])
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
    await backend.stop()
  }
}

const main = async () => {
  const tree = await makeTree(flags.files, flags.seed)
  await makeTraversable(tree.dir)
  const nginx = await startNginx(tree.dir)
  const pg = await startPostgres()
  const m = machine(pg)
  const results: Array<Result> = []
  try {
    // Warm the page cache once so that neither side pays for the first read from disk.
    await curlRound(tree, nginx.url, 0)
    for (let round = 1; round <= flags.rounds; round++) {
      // Alternate curl first and cairn first; the store x processes runs rotate among themselves.
      const runs = backends.flatMap((kind) => processCounts.map((processes) => ({ kind, processes })))
      const turn = (round - 1) % runs.length
      const rotated = [...runs.slice(turn), ...runs.slice(0, turn)]
      const order: Array<"curl" | (typeof runs)[number]> = round % 2 === 1 ? ["curl", ...rotated] : [...rotated, "curl"]
      for (const who of order) {
        results.push(who === "curl" ? await curlRound(tree, nginx.url, round) : await cairnRound(pg, tree, nginx.url, round, who.kind, who.processes))
      }
    }
  } finally {
    await nginx.stop()
    await pg.stop()
  }
  const curl = results.filter((r) => r.who === "curl")
  const cairnOn = (kind: BackendKind, processes: number) => results.filter((r) => r.who === "cairn" && r.backend === kind && r.processes === processes)
  const columns: ReadonlyArray<{ readonly name: string; readonly rs: ReadonlyArray<Result> }> = [
    { name: "curl --parallel", rs: curl },
    ...backends.flatMap((kind) =>
      processCounts.map((n) => ({ name: `cairn file.sync, ${backendLabel(kind)}, ${n} worker process${n === 1 ? "" : "es"}`, rs: cairnOn(kind, n) }))
    )
  ]
  const med = (rs: ReadonlyArray<Result>, f: (r: Result) => number) => median(rs.map(f))
  const spread = (rs: ReadonlyArray<Result>, f: (r: Result) => number) => medianRange(rs.map(f))
  const curlFps = med(curl, (r) => r.filesPerSecond)
  const row = (name: string, f: (rs: ReadonlyArray<Result>, isCurl: boolean) => string) => [name, ...columns.map((c, i) => f(c.rs, i === 0))]
  const table: Table = {
    title: `Sync of ${flags.files.toLocaleString("en-US")} files (${bytes(tree.totalBytes)}, 1 KiB-1 MiB, mostly small) from nginx ${nginx.version} on loopback, ${flags.parallel} parallel downloads; median of ${flags.rounds} round(s) (min-max)`,
    headers: ["", ...columns.map((c) => c.name)],
    rows: [
      row("seconds", (rs) => spread(rs, (r) => r.seconds)),
      row("files/s", (rs) => spread(rs, (r) => r.filesPerSecond)),
      row("MB/s", (rs) => spread(rs, (r) => r.mbPerSecond)),
      row("share of curl's files/s", (rs, isCurl) => (isCurl ? "100%" : pct(med(rs, (r) => r.filesPerSecond) / curlFps))),
      row("download shards", (rs, isCurl) => (isCurl ? "–" : String(med(rs, (r) => r.shards ?? 0)))),
      row("CPU s, client (curl / cairn workers + API)", (rs) => sig(med(rs, (r) => r.cpuMs.client / 1000))),
      row("CPU s, PostgreSQL", (rs, isCurl) => (isCurl ? "–" : sig(med(rs, (r) => r.cpuMs.postgres / 1000)))),
      row("CPU s, object store (s3rver)", (rs) => (rs.some((r) => r.backend === "s3") ? sig(med(rs, (r) => r.cpuMs.store / 1000)) : "–")),
      row("machine busy", (rs) => pct(med(rs, (r) => r.machineBusy)))
    ],
    notes: [
      "Target: cairn >= 70% of curl's files/s. curl only writes the files; cairn also verifies each sha256 and size while storing, makes them durable (fsync on disk; the store's answer on S3), records artifact, content unit and version rows, and holds cluster-wide host download slots (one per parallel download).",
      "Worker processes: P processes of one slot each; the sync spreads its downloads over one download shard per live slot (src/content/sync-shards.ts), none at P = 1 (it downloads in-process). The C parallel downloads are shared by the shards (cluster-wide host slots), so only the CPU behind them grows with P; on this 2-core machine the processes, PostgreSQL and nginx share two cores.",
      "CPU s: curl's own CPU; cairn's worker processes + API server, every PostgreSQL process, and the object store's process. 'machine busy': share of both cores busy (all processes, others' included) during the measurement.",
      "S3 (s3rver): a Node.js S3-protocol server keeping objects as files, on the same 2 cores: it measures what cairn's S3 path costs here, not what AWS S3 or MinIO would take."
    ]
  }
  const stmtTables = backends.map((kind) =>
    statementsTable(
      `Where cairn's sync spends database time, ${backendLabel(kind)}, ${processCounts[0]} worker process(es) (first round, pg_stat_statements, by total time)`,
      cairnOn(kind, processCounts[0]!)[0]?.statements ?? []
    ))
  const names = columns.map((c) => c.name)
  const charts: Array<Chart> = [
    {
      kind: "bar",
      title: "Files per second (median; bars: min..max of rounds)",
      categories: names,
      y: { label: "files / s", min: 0 },
      series: [{
        name: `${flags.files} files, ${flags.parallel} parallel`,
        values: columns.map((c) => med(c.rs, (r) => r.filesPerSecond)),
        lo: columns.map((c) => Math.min(...c.rs.map((r) => r.filesPerSecond))),
        hi: columns.map((c) => Math.max(...c.rs.map((r) => r.filesPerSecond)))
      }],
      refLines: [{ y: 0.7 * curlFps, label: "target: 70% of curl", color: "#2ca02c" }]
    },
    {
      kind: "bar",
      title: "CPU seconds for the whole sync",
      categories: names,
      y: { label: "CPU s", min: 0 },
      series: [
        { name: "client (curl / cairn worker + API)", values: columns.map((c) => med(c.rs, (r) => r.cpuMs.client / 1000)) },
        { name: "PostgreSQL", values: columns.map((c) => med(c.rs, (r) => r.cpuMs.postgres / 1000)) },
        { name: "object store (s3rver)", values: columns.map((c) => med(c.rs, (r) => r.cpuMs.store / 1000)) }
      ]
    }
  ]
  const svg = figure(charts, { title: "bench:sync — file.sync vs curl", columns: 2, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · nginx ${nginx.version} · ${command}` })
  await writeReport({ name: "sync", command, machine: m, options: flags, tables: [table, ...stmtTables], results: { totalBytes: tree.totalBytes, nginx: nginx.version, backends, runs: results }, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
