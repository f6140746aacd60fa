/**
 * bench:gc — orphan cleanup of a large store while syncs keep running.
 *
 * Setup (direct SQL, then files): U content units with one small artifact each (rows inserted
 * with generate_series, created two days ago); 90% of them belong to version 1 of a repository,
 * every tenth one (spread over the whole id range) is an orphan older than the protection window;
 * the orphans' bytes are written into the artifact store (100 bytes each) so that the cleanup
 * really removes files. Then S sync streams run all the time: each sync is a new remote (a new
 * "generation" of F distinct 4 KiB files from an upstream in this process) synced into the
 * stream's repository, so every sync downloads, stores and commits F files.
 *
 * Phases: syncs alone for W seconds; then orphans.cleanup {protection_seconds: 86400} is
 * submitted and the syncs go on until it settles; then syncs alone for W seconds again.
 * Reported: cleanup duration and rows/s (its own report), sync throughput (files/s of syncs
 * completed in each phase) with and without the cleanup, and every task's final state.
 *
 *   npm run bench:gc
 *   npm run bench:gc -- --quick
 */
import { createCipheriv, createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { parseFlags } from "./lib/args.js"
import { awaitFuture, makeDataDir, post, startServer, startWorkers, stopProcs, submitGraph, waitForWorkers } from "./lib/cairn.js"
import { createDatabase, dropDatabase, startPostgres, statementsTable, topStatements, withClient, resetStatements } from "./lib/postgres.js"
import { machine, writeReport } from "./lib/report.js"
import { median, ms, pct, sig, sleep, summarize, type Summary } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"

const { flags, out, command } = parseFlags("gc", "Orphan cleanup of a million content units while syncs run.", {
  units: { default: 1_000_000, quick: 100_000, help: "synthetic content units (each with one artifact)" },
  "orphan-every": { default: 10, help: "every n-th unit is an orphan (10: 10%)" },
  "skip-files": { default: false, help: "do not write the orphans' bytes into the artifact store (rows only)" },
  streams: { default: 2, help: "concurrent sync streams (each its own repository)" },
  "files-per-sync": { default: 50, quick: 20, help: "new files per sync" },
  window: { default: 40, quick: 10, help: "seconds of syncs alone before and after the cleanup" },
  workers: { default: 2, help: "worker processes (2 slots each)" },
  explain: { default: -1, help: "log plans of statements slower than this many ms (auto_explain; embedded server only); -1: off" }
})

const FILE_SIZE = 4096

/** An upstream of generations: /g<k>/PULP_MANIFEST lists F files /g<k>/f<i>.bin unique to k. */
const startGenerations = async (filesPerSync: number) => {
  const bytesOf = (k: number, i: number) => {
    const key = createHash("sha256").update(`gc-generation-${k}`).digest().subarray(0, 16)
    const iv = Buffer.alloc(16)
    iv.writeUInt32BE(i, 12)
    return createCipheriv("aes-128-ctr", key, iv).update(Buffer.alloc(FILE_SIZE))
  }
  const manifests = new Map<number, string>()
  const manifest = (k: number) => {
    let m = manifests.get(k)
    if (m === undefined) {
      m = Array.from({ length: filesPerSync }, (_, i) => `f${i}.bin,${createHash("sha256").update(bytesOf(k, i)).digest("hex")},${FILE_SIZE}\n`).join("")
      manifests.set(k, m)
    }
    return m
  }
  const server = http.createServer((req, res) => {
    const m = /^\/g(\d+)\/(PULP_MANIFEST|f(\d+)\.bin)$/.exec(req.url ?? "")
    if (!m) return void res.writeHead(404).end()
    const k = Number(m[1])
    const body = m[2] === "PULP_MANIFEST" ? Buffer.from(manifest(k)) : bytesOf(k, Number(m[3]))
    res.writeHead(200, { "content-length": body.length, "content-type": "application/octet-stream" }).end(body)
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) }
}

interface SyncDone {
  readonly stream: number
  readonly start: number
  readonly end: number
  readonly state: string
}

const main = async () => {
  const pg = await startPostgres()
  const m = machine(pg)
  const url = await createDatabase(pg, "gc", { explainMs: flags.explain >= 0 ? flags.explain : undefined })
  const dataDir = await makeDataDir("gc")
  const upstream = await startGenerations(flags["files-per-sync"])
  const server = await startServer(url, dataDir)
  const workers = startWorkers(flags.workers, url, dataDir, { CAIRN_WORKERS: "2", CAIRN_HOST_DOWNLOAD_SLOTS: "16" })
  const syncs: Array<SyncDone> = []
  let cleanup: { start: number; end: number; report: any; state: string; error?: unknown } | undefined
  let setupSeconds = NaN
  let before = { start: NaN, end: NaN }
  let during = { start: NaN, end: NaN }
  let after = { start: NaN, end: NaN }
  let finalStates: Record<string, number> = {}
  let remaining = { orphans: NaN, owned: NaN }
  const U = flags.units
  const every = flags["orphan-every"]
  let statements: Awaited<ReturnType<typeof topStatements>> = []
  try {
    await waitForWorkers(url, flags.workers, workers)
    // ---- setup ----------------------------------------------------------------------------------
    const t0 = performance.now()
    await post(server.url, "/api/v1/repositories", { name: "big" })
    for (let s = 0; s < flags.streams; s++) await post(server.url, "/api/v1/repositories", { name: `live${s}` })
    console.error(`inserting ${U.toLocaleString("en-US")} content units and artifacts (${pct(1 / every)} orphans)`)
    const orphanShas = await withClient(url, async (c) => {
      const [repo] = (await c.query<{ id: string }>("SELECT resource_id AS id FROM names WHERE kind = 'repository' AND name = 'big'")).rows
      const [v0] = (await c.query<{ id: string }>("SELECT id FROM repository_versions WHERE repository_id = $1 AND number = 0", [repo!.id])).rows
      const id = (p: string) => `'${p}' || lpad(i::text, 9, '0')`
      await c.query(`INSERT INTO content_units (id, relative_path, sha256, size, created_at)
        SELECT ${id("gcu")}, 'gc/' || i || '.bin', encode(sha256(('gc-' || i)::bytea), 'hex'), 100, now() - interval '2 days'
        FROM generate_series(1, $1::int) i`, [U])
      await c.query(`INSERT INTO artifacts (id, sha256, size, created_at)
        SELECT ${id("gca")}, encode(sha256(('gc-' || i)::bytea), 'hex'), 100, now() - interval '2 days'
        FROM generate_series(1, $1::int) i`, [U])
      await c.query(`INSERT INTO content_artifacts (content_id, artifact_id) SELECT ${id("gcu")}, ${id("gca")} FROM generate_series(1, $1::int) i`, [U])
      const owned = U - Math.floor(U / every)
      await c.query(`INSERT INTO repository_versions (id, repository_id, number, base_version_id, future_id, content_count)
        VALUES ('gcv000000001', $1, 1, $2, NULL, $3)`, [repo!.id, v0!.id, owned])
      await c.query(`INSERT INTO repository_content (repository_id, content_id, added_in)
        SELECT $1, ${id("gcu")}, 1 FROM generate_series(1, $2::int) i WHERE i % $3 <> 0`, [repo!.id, U, every])
      await c.query("ANALYZE")
      return (await c.query<{ sha: string }>(`SELECT encode(sha256(('gc-' || i)::bytea), 'hex') AS sha FROM generate_series(1, $1::int) i WHERE i % $2 = 0`, [U, every])).rows.map((r) => r.sha)
    })
    if (!flags["skip-files"]) {
      console.error(`writing ${orphanShas.length.toLocaleString("en-US")} orphan artifacts into the store`)
      const root = path.join(dataDir, "artifacts")
      const body = Buffer.alloc(100, 7)
      const dirs = new Set<string>()
      for (const sha of orphanShas) dirs.add(path.join(root, sha.slice(0, 2), sha.slice(2, 4)))
      for (const d of dirs) await fs.mkdir(d, { recursive: true })
      let next = 0
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < orphanShas.length) {
          const sha = orphanShas[next++]!
          await fs.writeFile(path.join(root, sha.slice(0, 2), sha.slice(2, 4), sha), body, { mode: 0o444 })
        }
      }))
    }
    setupSeconds = (performance.now() - t0) / 1000

    // ---- sync streams -----------------------------------------------------------------------------
    let generation = 0
    let stop = false
    const stream = async (s: number) => {
      while (!stop) {
        const k = generation++
        await post(server.url, "/api/v1/remotes", { name: `g${k}`, url: `${upstream.base}/g${k}/PULP_MANIFEST`, policy: "immediate", download_concurrency: 4 })
        const start = performance.now()
        const g = await submitGraph(server.url, { sync: { task: "file.sync", params: { repository: `live${s}`, remote: `g${k}` } } })
        const f = await awaitFuture(server.url, g.body.nodes.sync!.outputs.version!)
        syncs.push({ stream: s, start, end: performance.now(), state: f.state })
      }
    }
    console.error(`sync streams: ${flags.streams} x ${flags["files-per-sync"]} new files per sync`)
    const running = Array.from({ length: flags.streams }, (_, s) => stream(s))
    await sleep(5000) // warm-up, not measured
    before = { start: performance.now(), end: NaN }
    await sleep(flags.window * 1000)
    before.end = performance.now()

    console.error("orphans.cleanup submitted")
    await resetStatements(url)
    during = { start: performance.now(), end: NaN }
    const g = await submitGraph(server.url, { gc: { task: "orphans.cleanup", params: { protection_seconds: 86400 } } })
    const f = await awaitFuture(server.url, g.body.nodes.gc!.outputs.report!, 3_600_000)
    during.end = performance.now()
    statements = await topStatements(url, 12)
    // The `report` output future's value is the cleanup's report; read from its row when the API's
    // answer does not carry it, so that the table never shows a report it could not read as zeros.
    const row = await withClient(url, async (c) =>
      (await c.query<{ s: number; e: number; value: any }>(
        `SELECT extract(epoch FROM t.started_at) * 1000 AS s, extract(epoch FROM t.finished_at) * 1000 AS e, f.value
         FROM tasks t LEFT JOIN futures f ON f.id = $2 WHERE t.id = $1`,
        [g.body.nodes.gc!.task, g.body.nodes.gc!.outputs.report!]
      )).rows[0]!)
    const unwrap = (v: any) => (v != null && typeof v === "object" && "report" in v ? v.report : v) ?? undefined
    const report = unwrap(f.value) ?? unwrap(row.value)
    cleanup = { start: Number(row.s), end: Number(row.e), report, state: f.state, error: f.error }
    console.error(`cleanup ${f.state} in ${ms(Number(row.e) - Number(row.s))}: ${JSON.stringify(report ?? f.error)}`)

    after = { start: performance.now(), end: NaN }
    await sleep(flags.window * 1000)
    after.end = performance.now()
    stop = true
    await Promise.all(running)

    finalStates = await withClient(url, async (c) =>
      Object.fromEntries((await c.query<{ state: string; n: number }>("SELECT state, count(*)::int AS n FROM tasks GROUP BY state")).rows.map((r) => [r.state, r.n])))
    remaining = await withClient(url, async (c) => {
      const r = await c.query<{ orphans: number; owned: number }>(`SELECT
          count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = u.id))::int AS orphans,
          count(*) FILTER (WHERE EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = u.id))::int AS owned
        FROM content_units u WHERE u.id LIKE 'gcu%'`)
      return r.rows[0]!
    })
  } finally {
    await stopProcs([...workers, server])
    if (flags.explain >= 0 && pg.logFile) await fs.copyFile(pg.logFile, `${os.tmpdir()}/bench-gc-postgres.log`).then(() => console.error(`server log with plans: ${os.tmpdir()}/bench-gc-postgres.log`), () => undefined)
    await upstream.close()
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
    await pg.stop()
  }

  const F = flags["files-per-sync"]
  const phase = (w: { start: number; end: number }) => {
    const done = syncs.filter((s) => s.end > w.start && s.end <= w.end)
    const seconds = (w.end - w.start) / 1000
    return { seconds, syncs: done.length, filesPerSecond: (done.length * F) / seconds, duration: summarize(done.map((s) => s.end - s.start)) as Summary }
  }
  const p0 = phase(before)
  const p1 = phase(during)
  const p2 = phase(after)
  const baseline = (p0.filesPerSecond + p2.filesPerSecond) / 2
  const drop = 1 - p1.filesPerSecond / baseline
  const cleanupMs = cleanup ? cleanup.end - cleanup.start : NaN
  const rep = cleanup?.report ?? {}
  // NaN (shown as such) when the report could not be read: never a made-up zero.
  const rows = typeof rep.content_units === "number" && typeof rep.artifacts === "number" ? rep.content_units + rep.artifacts : NaN
  const failed = (finalStates.failed ?? 0) + (finalStates.canceled ?? 0)
  const table: Table = {
    title: `Orphan cleanup: ${U.toLocaleString("en-US")} content units + artifacts, ${pct(1 / every)} orphaned two days ago, protection window 24 h, ${flags.streams} sync streams running`,
    headers: ["measure", "value", "target"],
    rows: [
      ["cleanup duration (task started -> finished)", ms(cleanupMs), "< 60 s"],
      ["deleted: content units / artifacts / bytes", `${rep.content_units ?? "?"} / ${rep.artifacts ?? "?"} / ${rep.bytes_freed ?? "?"}`, `${Math.floor(U / every)} / ${Math.floor(U / every)}`],
      ["rows deleted per second (units + artifacts)", sig(rows / (cleanupMs / 1000)), ""],
      ["units scanned per second (all units / duration)", sig(U / (cleanupMs / 1000)), ""],
      ["sync throughput without cleanup (before / after)", `${sig(p0.filesPerSecond)} / ${sig(p2.filesPerSecond)} files/s (${p0.syncs} / ${p2.syncs} syncs)`, ""],
      ["sync throughput during cleanup", `${sig(p1.filesPerSecond)} files/s (${p1.syncs} syncs in ${sig(p1.seconds)} s)`, ""],
      ["sync throughput drop during cleanup", pct(drop), "< 10%"],
      ["sync duration p50 / p95: before, during, after", [p0, p1, p2].map((p) => `${ms(p.duration.p50)} / ${ms(p.duration.p95)}`).join(", "), ""],
      ["tasks failed or canceled", String(failed), "0"],
      ["orphans left / owned units kept", `${remaining.orphans} / ${remaining.owned}`, `0 / ${U - Math.floor(U / every)}`]
    ],
    notes: [
      `Setup (SQL inserts, ${flags["skip-files"] ? "no files" : "orphan files written"}) took ${sig(setupSeconds)} s. Sync throughput = ${F} files x syncs completed in the phase / phase length.`,
      "A sync that completes during a phase counts in that phase; 'during' spans submission of the cleanup to its settlement."
    ]
  }
  const stmtTable = statementsTable("Database time during the cleanup phase (pg_stat_statements, all processes, by total time)", statements)
  const charts: Array<Chart> = [
    {
      kind: "bar",
      title: "Sync throughput",
      categories: ["before cleanup", "during cleanup", "after cleanup"],
      y: { label: "files / s", min: 0 },
      series: [{ name: `${flags.streams} streams x ${F} new files per sync`, values: [p0.filesPerSecond, p1.filesPerSecond, p2.filesPerSecond] }],
      refLines: [{ y: baseline * 0.9, label: "target: drop < 10%", color: "#2ca02c" }]
    },
    {
      kind: "line",
      title: "Sync durations over time (cleanup shaded by its span)",
      x: { label: "seconds since the first measured sync", min: 0 },
      y: { label: "sync duration (s)", min: 0 },
      series: [
        { name: "sync (completion time, duration)", line: false, points: syncs.filter((s) => s.end >= before.start).map((s) => ({ x: (s.end - before.start) / 1000, y: (s.end - s.start) / 1000 })) },
        { name: "cleanup running", marker: "none", color: "#d62728", points: [{ x: (during.start - before.start) / 1000, y: 0 }, { x: (during.start - before.start) / 1000, y: Math.max(0.1, ...syncs.map((s) => (s.end - s.start) / 1000)) }, { x: (during.end - before.start) / 1000, y: Math.max(0.1, ...syncs.map((s) => (s.end - s.start) / 1000)) }, { x: (during.end - before.start) / 1000, y: 0 }] }
      ]
    }
  ]
  const svg = figure(charts, { title: "bench:gc — orphan cleanup beside running syncs", columns: 2, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${command}` })
  await writeReport({ name: "gc", command, machine: m, options: flags, tables: [table, stmtTable], results: { setupSeconds, cleanup, phases: { before: p0, during: p1, after: p2 }, drop, finalStates, remaining, syncs, statements }, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
