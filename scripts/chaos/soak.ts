/**
 * Soak: a steady mix of real work for a long time, watching that nothing drifts.
 *
 *   npx tsx scripts/chaos/soak.ts --minutes 30 [--clients 16] [--json docs/reliability/soak.json]
 *
 * One `serve` process (API, content app, 2 worker slots) and one `worker` process against one
 * PostgreSQL (embedded, or DATABASE_URL), a fixture upstream whose files change now and then, and:
 * - every second a graph: sync -> publish -> distribute of one of three repositories (upstreams
 *   overlap), or a small DAG of sleeps with a failure now and then (expected, counted apart);
 * - every minute an orphans.cleanup (protection 0);
 * - `--clients` concurrent clients downloading random files of the published distributions.
 * Every 10 s it samples: graphs settled, downloads, download latency, RSS of every process,
 * database connections, errors. At the end it prints a table, writes JSON, and exits non-zero on
 * any error (an unexpected failed task, a non-200 download, a process that exited) or when a
 * process's memory grew by more than 50% between the end of the first third and the end.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseFlags } from "../bench/lib/args.js"
import { createClient, type GraphSubmission } from "../../src/client/index.js"
import { makeDataDir, startServer, startWorkers, stopProcs } from "../bench/lib/cairn.js"
import { createDatabase, startPostgres, withClient } from "../bench/lib/postgres.js"
import type { Proc } from "../lib/processes.js"
import { prng, sleep, summarize } from "../bench/lib/stats.js"
import { makeFiles, startUpstream } from "../lib/upstream.js"

const { flags } = parseFlags("soak", "steady mixed load for a long time; memory, latency and errors over time", {
  minutes: { default: 30, help: "how long to run" },
  clients: { default: 16, help: "concurrent downloading clients" },
  json: { default: "docs/reliability/soak.json", help: "where to write the samples and summary" }
})

const rssMiB = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024
  } catch {
    return Number.NaN
  }
}

interface Sample {
  readonly t: number
  readonly graphs: number
  readonly downloads: number
  readonly downloadP50: number
  readonly downloadP99: number
  readonly rss: Record<string, number>
  readonly connections: number
  readonly errors: number
}

const main = async () => {
  const started = Date.now()
  const until = started + Number(flags.minutes) * 60_000
  const rand = prng(42)
  const pgs = await startPostgres()
  const url = await createDatabase(pgs, "soak")
  const dataDir = await makeDataDir("soak")
  const files = makeFiles(60, { seed: 5, maxSize: 64 * 1024 })
  const upstreams = await Promise.all([0, 1, 2].map((i) =>
    startUpstream(Object.fromEntries(Object.entries(files).filter((_, k) => k % 3 !== i)))))
  const server = await startServer(url, dataDir, { CAIRN_WORKERS: "2" })
  const [worker] = startWorkers(1, url, dataDir, { CAIRN_WORKERS: "2" })
  const procs: Array<Proc> = [server, worker!]
  const base = server.url
  const cairn = createClient({ url: base })
  const errors: Array<string> = []
  const error = (m: string) => {
    if (errors.length < 100) errors.push(`${new Date().toISOString()} ${m}`)
  }
  for (let i = 0; i < 3; i++) {
    await cairn.remotes.create({ name: `up${i}`, url: upstreams[i]!.url })
    await cairn.repositories.create({ name: `repo${i}` })
    await cairn.distributions.create({ name: `dist${i}`, base_path: `soak/${i}` })
  }

  let graphs = 0
  let expectedFailures = 0
  const published = new Map<number, Array<string>>()
  const syncChain = (i: number) => ({
    sync: { task: "file.sync", params: { repository: `repo${i}`, remote: `up${i}`, mirror: true } },
    publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
    dist: { task: "distribution.set", params: { distribution: `dist${i}`, publication: { $ref: "publish.publication" } } }
  })
  const sleeps = (fail: boolean) => ({
    a: { task: "debug.sleep", params: { ms: 50 }, resources: { exclusive: ["soak-key"] } },
    b: { task: "debug.sleep", params: { ms: 20, inputs: [{ $ref: "a.result" }], ...(fail ? { fail: "expected failure" } : {}) } },
    c: { task: "debug.sleep", params: { inputs: [{ $ref: "b.result" }] } }
  })

  // Submitters: one graph a second, each awaited in the background.
  const submitting = (async () => {
    let n = 0
    while (Date.now() < until) {
      const kind = n % 3
      n++
      const i = Math.floor(rand() * 3)
      const fail = kind === 1 && rand() < 0.2
      // Now and then an upstream changes: the next sync cuts a new version.
      if (rand() < 0.05) upstreams[i]!.setFile(`changing/${n}.txt`, `content ${n}`)
      const nodes = kind === 0 ? syncChain(i) : kind === 1 ? sleeps(fail) : { gc: { task: "orphans.cleanup", params: { protection_seconds: 0 } } }
      if (kind === 2 && n % 60 !== 2) {
        await sleep(1000)
        continue
      }
      void cairn.submit({ label: "soak", nodes } as GraphSubmission).then(async (g) => {
        const outs = Object.values(g.nodes)
        const last = Object.values(outs[outs.length - 1]!.outputs)[0]!
        const f = await cairn.awaitFuture(last, { timeout: 600_000 })
        graphs++
        if (f.state === "resolved") {
          if (kind === 0) {
            const listing = await fetch(`${base}/content/soak/${i}/PULP_MANIFEST`).then((x) => x.text()).catch(() => "")
            published.set(i, listing.trim().split("\n").filter(Boolean).map((l) => l.split(",")[0]!))
          }
        } else if (fail && f.state === "failed") expectedFailures++
        else error(`graph ${g.id} ended ${f.state}: ${JSON.stringify(f.error).slice(0, 300)}`)
      }).catch((e) => error(`submitting or awaiting a graph failed: ${(e as Error).message}`))
      await sleep(1000)
    }
  })()

  // Downloaders.
  const latencies: Array<number> = []
  let downloads = 0
  const downloading = Array.from({ length: Number(flags.clients) }, async () => {
    while (Date.now() < until) {
      const i = Math.floor(rand() * 3)
      const list = published.get(i)
      if (!list || list.length === 0) {
        await sleep(200)
        continue
      }
      const file = list[Math.floor(rand() * list.length)]!
      const t0 = performance.now()
      try {
        const r = await fetch(`${base}/content/soak/${i}/${file.split("/").map(encodeURIComponent).join("/")}`)
        await r.arrayBuffer()
        // A distribution may move to a newer publication between reading the manifest and here.
        if (r.status !== 200 && r.status !== 404) error(`GET ${file} answered ${r.status}`)
      } catch (e) {
        error(`GET ${file} failed: ${(e as Error).message}`)
      }
      latencies.push(performance.now() - t0)
      downloads++
    }
  })

  // Sampler.
  const samples: Array<Sample> = []
  const sampling = (async () => {
    while (Date.now() < until) {
      await sleep(10_000)
      for (const p of procs) if (!p.alive()) error(`${p.name} exited`)
      const lat = summarize(latencies.splice(0))
      const connections = await withClient(url, async (c) =>
        Number((await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()")).rows[0].n))
      samples.push({
        t: Math.round((Date.now() - started) / 1000),
        graphs,
        downloads,
        downloadP50: lat.p50,
        downloadP99: lat.p99,
        rss: Object.fromEntries(procs.map((p) => [p.name, Math.round(rssMiB(p.pid))])),
        connections,
        errors: errors.length
      })
      const s = samples[samples.length - 1]!
      console.log(`${String(s.t).padStart(5)} s  graphs ${s.graphs}  downloads ${s.downloads}  p50 ${s.downloadP50.toFixed(1)} ms  p99 ${s.downloadP99.toFixed(1)} ms  rss ${JSON.stringify(s.rss)} MiB  connections ${s.connections}  errors ${s.errors}`)
    }
  })()

  await Promise.all([submitting, sampling, ...downloading])
  await sleep(5000) // let the last graphs settle
  await stopProcs(procs)
  for (const u of upstreams) await u.close()
  await pgs.stop()

  // Memory must be flat: compare the end of the first third with the end.
  const third = samples[Math.floor(samples.length / 3)]
  const last = samples[samples.length - 1]
  const growth: Record<string, number> = {}
  if (third && last) for (const name of Object.keys(last.rss)) growth[name] = last.rss[name]! / third.rss[name]! - 1
  const grew = Object.entries(growth).filter(([, g]) => g > 0.5)
  for (const [name, g] of grew) error(`${name} memory grew ${(g * 100).toFixed(0)}% after warm-up`)
  const summary = {
    minutes: Number(flags.minutes),
    clients: Number(flags.clients),
    graphs,
    expectedFailures,
    downloads,
    downloadsPerSecond: downloads / ((Date.now() - started) / 1000),
    memoryGrowthAfterWarmup: growth,
    maxConnections: Math.max(...samples.map((s) => s.connections)),
    errors
  }
  fs.mkdirSync(path.dirname(String(flags.json)), { recursive: true })
  fs.writeFileSync(String(flags.json), JSON.stringify({ summary, samples }, null, 2))
  console.log(JSON.stringify(summary, null, 2))
  console.log(errors.length === 0 ? "PASS: no errors, memory flat" : `FAIL: ${errors.length} error(s)`)
  process.exitCode = errors.length === 0 ? 0 : 1
}

main().catch((e) => {
  console.error(`soak: ${e instanceof Error ? e.stack : String(e)}`)
  process.exitCode = 1
})
