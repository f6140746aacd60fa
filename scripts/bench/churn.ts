/**
 * bench:churn — a nightly mirror, accelerated: does cairn stay flat when an upstream keeps changing?
 *
 * An upstream of N files (seeded contents, 1-4 KiB) of which a fraction is replaced each cycle; a
 * repository with `retain_versions: 3` and a distribution. Each cycle: the upstream changes, then
 * sync -> publish -> distribute (one graph), then orphans.cleanup (protection 0) and history.purge
 * (window 0), each awaited. After every cycle: the rows of every table, the bytes in the artifact
 * store, the database's size, and the cycle's durations. Target: every measure at the last cycle
 * within 5% of cycle 10 (flat), and cleanup + purge of a cycle under 2 s.
 *
 *   npm run bench:churn
 *   npm run bench:churn -- --quick
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { startUpstream } from "../lib/upstream.js"
import { mulberry32 } from "../lib/random.js"
import { parseFlags } from "./lib/args.js"
import { awaitFuture, makeDataDir, post, startServer, startWorkers, stopProcs, submitGraph, waitForWorkers } from "./lib/cairn.js"
import { createDatabase, dropDatabase, startPostgres, withClient } from "./lib/postgres.js"
import { durationWindows, windowName } from "./lib/churn-windows.js"
import { machine, writeReport } from "./lib/report.js"
import { ms, pct, sig, summarize } from "./lib/stats.js"
import { type Chart, figure } from "./lib/svg.js"
import type { Table } from "./lib/table.js"

const { flags, out, command } = parseFlags("churn", "A mirror of a changing upstream, cycle after cycle: rows, bytes and durations stay flat.", {
  cycles: { default: 100, quick: 15, help: "sync/publish/distribute/cleanup/purge cycles" },
  files: { default: 2000, quick: 300, help: "files upstream" },
  change: { default: 0.1, help: "fraction of the files replaced each cycle" },
  retain: { default: 3, help: "retain_versions of the repository" },
  reference: { default: 10, help: "the cycle the last one is compared with" },
  workers: { default: 1, help: "worker processes (2 slots each)" }
})

interface Cycle {
  readonly cycle: number
  /** sync -> publish -> distribute, submission to the distribution's future. */
  readonly mirrorMs: number
  readonly cleanupMs: number
  readonly purgeMs: number
  readonly rows: Record<string, number>
  readonly storedBytes: number
  readonly databaseBytes: number
  /** Bytes on disk per relation (tables, indexes and TOAST apart; catalogs too), kept for the compared cycles only. */
  readonly relationBytes?: Record<string, number>
}

/** Bytes under the artifact store's root (digest directories only). */
const storedBytes = async (root: string) => {
  let total = 0
  for (const a of await fs.readdir(root).catch(() => [])) {
    if (!/^[0-9a-f]{2}$/.test(a)) continue
    for (const b of await fs.readdir(path.join(root, a))) {
      for (const f of await fs.readdir(path.join(root, a, b))) total += (await fs.stat(path.join(root, a, b, f))).size
    }
  }
  return total
}

const fileBytes = (next: () => number, tag: string) => {
  const size = 1024 + (next() % 3072)
  const b = Buffer.alloc(size)
  b.write(tag)
  for (let at = tag.length; at < size; at++) b[at] = next() & 0xff
  return b
}

const main = async () => {
  const pg = await startPostgres()
  const m = machine(pg)
  const url = await createDatabase(pg, "churn")
  const dataDir = await makeDataDir("churn")
  const next = mulberry32(11)
  const names = Array.from({ length: flags.files }, (_, i) => `dir${i % 10}/file-${i}.bin`)
  const upstream = await startUpstream(Object.fromEntries(names.map((n) => [n, fileBytes(next, `${n} 0\n`)])))
  const server = await startServer(url, dataDir)
  const workers = startWorkers(flags.workers, url, dataDir, { CAIRN_WORKERS: "2" })
  const cycles: Array<Cycle> = []
  let tables: Array<string> = []
  try {
    await waitForWorkers(url, flags.workers, workers)
    await post(server.url, "/api/v1/remotes", { name: "up", url: upstream.url, policy: "immediate" })
    await post(server.url, "/api/v1/repositories", { name: "mirror", retain_versions: flags.retain })
    await post(server.url, "/api/v1/distributions", { name: "mirror", base_path: "mirror" })
    tables = await withClient(url, async (c) => (await c.query<{ t: string }>(
      "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_\\_%' ORDER BY 1")).rows.map((r) => r.t))
    const run = async (nodes: Parameters<typeof submitGraph>[1], node: string, output: string) => {
      const t0 = performance.now()
      const g = await submitGraph(server.url, nodes)
      const f = await awaitFuture(server.url, g.body.nodes[node]!.outputs[output]!, 3_600_000)
      if (f.state !== "resolved") throw new Error(`${node}: ${f.state} ${JSON.stringify(f.error)}`)
      return performance.now() - t0
    }
    for (let cycle = 1; cycle <= flags.cycles; cycle++) {
      if (cycle > 1) {
        const changed = new Set<number>()
        while (changed.size < Math.round(flags.files * flags.change)) changed.add(next() % flags.files)
        for (const i of changed) upstream.setFile(names[i]!, fileBytes(next, `${names[i]} ${cycle}\n`))
      }
      const mirrorMs = await run({
        sync: { task: "file.sync", params: { repository: "mirror", remote: "up", mirror: true } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        serve: { task: "distribution.set", params: { distribution: "mirror", publication: { $ref: "publish.publication" } } }
      }, "serve", "distribution")
      const cleanupMs = await run({ clean: { task: "orphans.cleanup", params: { protection_seconds: 0 } } }, "clean", "report")
      const purgeMs = await run({ purge: { task: "history.purge", params: { older_than_seconds: 0 } } }, "purge", "report")
      const { rows, databaseBytes, relations } = await withClient(url, async (c) => {
        const counts = (await c.query(`SELECT ${tables.map((t) => `(SELECT count(*)::int FROM "${t}") AS "${t}"`).join(", ")}`)).rows[0] as Record<string, number>
        const size = (await c.query<{ n: string }>("SELECT pg_database_size(current_database())::text AS n")).rows[0]!.n
        const relations = cycle === flags.reference || cycle === flags.cycles
          ? Object.fromEntries((await c.query<{ r: string; n: string }>(
            "SELECT n.nspname || '.' || c.relname AS r, pg_relation_size(c.oid)::text AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'i', 't')")).rows
            .map((r) => [r.r, Number(r.n)]))
          : undefined
        return { rows: counts, databaseBytes: Number(size), relations }
      })
      const c: Cycle = { cycle, mirrorMs, cleanupMs, purgeMs, rows, storedBytes: await storedBytes(path.join(dataDir, "artifacts")), databaseBytes, relationBytes: relations }
      cycles.push(c)
      console.error(`cycle ${cycle}: mirror ${ms(mirrorMs)}, cleanup ${ms(cleanupMs)}, purge ${ms(purgeMs)}, ${Object.values(rows).reduce((a, b) => a + b, 0)} rows, ${sig(c.storedBytes / 1e6)} MB stored, database ${sig(databaseBytes / 1e6)} MB`)
    }
  } finally {
    await stopProcs([...workers, server])
    await upstream.close()
    await dropDatabase(pg, url)
    await fs.rm(dataDir, { recursive: true, force: true })
    await pg.stop()
  }

  // ---- the report ---------------------------------------------------------------------------------
  const ref = cycles[Math.min(flags.reference, cycles.length) - 1]!
  const last = cycles.at(-1)!
  const within = (a: number, b: number) => a === b || Math.abs(b - a) / Math.max(a, 1) <= 0.05
  const growth = (a: number, b: number) => a === b ? "0%" : `${b >= a ? "+" : ""}${pct((b - a) / Math.max(a, 1))}`
  const measured = tables.filter((t) => cycles.some((c) => c.rows[t]! > 0))
  const rowsRows = measured.map((t) => [`rows: ${t}`, String(ref.rows[t]), String(last.rows[t]), growth(ref.rows[t]!, last.rows[t]!), within(ref.rows[t]!, last.rows[t]!) ? "yes" : "no"])
  const steady = cycles.filter((c) => c.cycle >= ref.cycle)
  // Where the database's size went: the relations that grew most between the compared cycles.
  const growers = Object.entries(last.relationBytes ?? {})
    .map(([r, n]) => ({ r, grew: n - (ref.relationBytes?.[r] ?? 0) }))
    .filter((g) => g.grew > 0)
    .sort((a, b) => b.grew - a.grew)
    .slice(0, 6)
  // The database's size between the compared cycles, not only at both ends: index rebuilds make
  // it a sawtooth, and a comparison of two cycles alone would hide how far it swings.
  const dbMin = Math.min(...steady.map((c) => c.databaseBytes))
  const dbMax = Math.max(...steady.map((c) => c.databaseBytes))
  // A cycle's duration is one noisy sample: compared by the median of ten cycles at each end (the
  // mean beside it shows a cost paid in fewer than half of them, such as an index rebuild).
  const cycleMs = (c: Cycle) => c.mirrorMs + c.cleanupMs + c.purgeMs
  const windows = durationWindows(cycles, ref.cycle)
  const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
  const durations = windows && {
    early: summarize(windows.early.map(cycleMs)).p50,
    late: summarize(windows.late.map(cycleMs)).p50,
    earlyMean: mean(windows.early.map(cycleMs)),
    lateMean: mean(windows.late.map(cycleMs))
  }
  const reclaim = summarize(steady.map((c) => c.cleanupMs + c.purgeMs))
  const mirror = summarize(steady.map((c) => c.mirrorMs))
  const flat = [...measured.map((t) => within(ref.rows[t]!, last.rows[t]!)), within(ref.storedBytes, last.storedBytes), within(ref.databaseBytes, last.databaseBytes), durations === undefined || within(durations.early, durations.late)]
  const table: Table = {
    title: `${flags.cycles} cycles of a ${flags.files}-file upstream, ${pct(flags.change)} replaced per cycle, retain_versions ${flags.retain}: cycle ${ref.cycle} against cycle ${last.cycle}`,
    headers: ["measure", `cycle ${ref.cycle}`, `cycle ${last.cycle}`, "change", "within 5%"],
    rows: [
      ...rowsRows,
      ["stored bytes (artifact store)", String(ref.storedBytes), String(last.storedBytes), growth(ref.storedBytes, last.storedBytes), within(ref.storedBytes, last.storedBytes) ? "yes" : "no"],
      ["database size (pg_database_size)", String(ref.databaseBytes), String(last.databaseBytes), growth(ref.databaseBytes, last.databaseBytes), within(ref.databaseBytes, last.databaseBytes) ? "yes" : "no"],
      ["cycle duration: sync -> publish -> distribute", ms(ref.mirrorMs), ms(last.mirrorMs), growth(ref.mirrorMs, last.mirrorMs), ""],
      ["cycle duration: cleanup + purge", ms(ref.cleanupMs + ref.purgeMs), ms(last.cleanupMs + last.purgeMs), growth(ref.cleanupMs + ref.purgeMs, last.cleanupMs + last.purgeMs), ""],
      durations === undefined
        ? ["cycle duration, median of ten cycles at each end", "-", "-", "too few cycles", ""]
        : [`cycle duration, median (mean) of cycles ${windowName(windows!.early)} / ${windowName(windows!.late)}`, `${ms(durations.early)} (${ms(durations.earlyMean)})`, `${ms(durations.late)} (${ms(durations.lateMean)})`, growth(durations.early, durations.late), within(durations.early, durations.late) ? "yes" : "no"]
    ],
    notes: [
      `Flat (every row count, both sizes and the cycles' median duration within 5%): ${flat.every((x) => x) ? "yes" : `no (${flat.filter((x) => !x).length} measures outside)`}${durations === undefined ? " (durations not compared: too few cycles)" : ""}.`,
      `Database size from cycle ${ref.cycle} on: ${sig(dbMin / 1e6)} to ${sig(dbMax / 1e6)} MB (${growth(ref.databaseBytes, dbMin)} to ${growth(ref.databaseBytes, dbMax)} of cycle ${ref.cycle}'s).`,
      `Relations that grew most from cycle ${ref.cycle} to ${last.cycle}: ${growers.length === 0 ? "none" : growers.map((g) => `${g.r} +${sig(g.grew / 1e6)} MB`).join(", ")}.`,
      `From cycle ${ref.cycle} on: cleanup + purge p50 ${ms(reclaim.p50)}, max ${ms(reclaim.max)} (target < 2 s); sync -> publish -> distribute p50 ${ms(mirror.p50)}, max ${ms(mirror.max)}.`
    ]
  }
  const x = { label: "cycle", min: 1 }
  const charts: Array<Chart> = [
    {
      kind: "line",
      title: "Rows per table (after each cycle's cleanup and purge)",
      x,
      y: { label: "rows", min: 0 },
      series: measured.map((t) => ({ name: t, marker: "none" as const, points: cycles.map((c) => ({ x: c.cycle, y: c.rows[t]! })) }))
    },
    {
      kind: "line",
      title: "Stored bytes and database size",
      x,
      y: { label: "MB", min: 0 },
      series: [
        { name: "artifact store", marker: "none", points: cycles.map((c) => ({ x: c.cycle, y: c.storedBytes / 1e6 })) },
        { name: "database (pg_database_size)", marker: "none", points: cycles.map((c) => ({ x: c.cycle, y: c.databaseBytes / 1e6 })) }
      ]
    },
    {
      kind: "line",
      title: "Cycle durations",
      x,
      y: { label: "seconds", min: 0 },
      series: [
        { name: "sync -> publish -> distribute", marker: "none", points: cycles.map((c) => ({ x: c.cycle, y: c.mirrorMs / 1000 })) },
        { name: "cleanup + purge", marker: "none", points: cycles.map((c) => ({ x: c.cycle, y: (c.cleanupMs + c.purgeMs) / 1000 })) }
      ],
      refLines: [{ y: 2, label: "target: cleanup + purge < 2 s", color: "#2ca02c" }]
    }
  ]
  const svg = figure(charts, { title: "bench:churn — a mirror of a changing upstream, cycle after cycle", columns: 3, footnote: `${m.date.slice(0, 10)} · ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${command}` })
  await writeReport({ name: "churn", command, machine: m, options: flags, tables: [table], results: { reference: ref.cycle, cycles, tables: measured }, svg }, out)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
