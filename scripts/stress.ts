/**
 * The concurrency driver that Pulp's story #898 asks for: random work on many worker processes
 * against one database, then every invariant checked from the recorded rows.
 *
 *   npm run stress -- --duration 60 --processes 6 [--slots 2] [--submitters 3] [--kill-every 5] [--max-open 400] [--seed 1]
 *
 * Submitters (concurrent fibers in this process) submit random graphs: up to 12 nodes (most sleep
 * under 20 ms, one in ten 100-300 ms), data dependencies within the graph and on futures of earlier
 * graphs, resource keys from a small pool (exclusive or shared), random failures, and now and then a
 * cancel of a recent task. Worker processes run them; the clock starts once every worker has registered. With --kill-every, that
 * often a worker is killed with SIGKILL and a new one started, chosen so that the kill lands in the
 * middle of a task that has attempts left (see `chaos`). At the end it waits for everything to
 * settle, stops the workers, checks the invariants (scripts/lib/invariants.ts), prints a summary
 * (with the kills and the retries they caused, so that a caller can check that the faults happened)
 * and exits non-zero on any violation.
 *
 * With DATABASE_URL unset it starts its own embedded PostgreSQL in a temporary directory.
 */
import { sql } from "drizzle-orm"
import { Duration, Effect, Fiber, Layer, Option, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { CairnConfigFrom } from "../src/config/config.js"
import { Db, DbLive } from "../src/db/client.js"
import { startEmbedded } from "../src/db/embedded.js"
import { runMigrations } from "../src/db/migrate.js"
import { cancelTask } from "../src/engine/cancel.js"
import { TaskKinds } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { checkInvariants } from "./lib/invariants.js"
import { onInterrupt, type Proc, spawnCairn, stopAll } from "./lib/processes.js"

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "30" },
    processes: { type: "string", default: "4" },
    slots: { type: "string", default: "2" },
    submitters: { type: "string", default: "3" },
    "kill-every": { type: "string", default: "0" },
    /** Submitters wait while this many tasks are unsettled (backpressure: the backlog stays drainable). */
    "max-open": { type: "string", default: "400" },
    seed: { type: "string", default: String(Date.now() % 100_000) },
    /** Also write the summary as JSON to this file. */
    json: { type: "string" }
  }
})
const num = (name: keyof typeof args, min: number) => {
  const n = Number(args[name])
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number >= ${min}, got ${JSON.stringify(args[name])}`)
    process.exit(2)
  }
  return n
}
const durationS = num("duration", 1)
const processes = num("processes", 1)
const slots = num("slots", 1)
const submitters = num("submitters", 1)
const killEveryS = num("kill-every", 0)
const maxOpen = num("max-open", 1)
let seed = num("seed", 0)

// A small deterministic PRNG so that a seed reproduces the same submissions.
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rand() * xs.length)]!

const runId = `stress-${Date.now().toString(36)}`
const KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"]

let started = 0
const startWorker = (url: string, dataDir: string): Proc =>
  spawnCairn("worker", {
    name: `worker-${started++}`,
    env: {
      DATABASE_URL: url,
      CAIRN_WORKERS: String(slots),
      CAIRN_HEARTBEAT_MS: "250",
      CAIRN_HEARTBEAT_TIMEOUT_MS: "4000",
      CAIRN_REAP_INTERVAL_MS: "300",
      CAIRN_POLL_INTERVAL_MS: "2000",
      CAIRN_SHUTDOWN_GRACE_MS: "3000",
      // Random failures are the point here: only errors are worth printing.
      CAIRN_LOG_LEVEL: "error",
      CAIRN_DATA_DIR: dataDir
    },
    stdio: "inherit"
  })

const randomGraph = (earlier: ReadonlyArray<string>) => {
  const n = 1 + Math.floor(rand() * 12)
  const nodes: Record<string, unknown> = {}
  for (let i = 0; i < n; i++) {
    const inputs: Array<{ $ref: string }> = []
    if (i > 0 && rand() < 0.6) inputs.push({ $ref: `n${Math.floor(rand() * i)}.result` })
    if (earlier.length > 0 && rand() < 0.2) inputs.push({ $ref: pick(earlier) })
    const exclusive = rand() < 0.5 ? [pick(KEYS)] : []
    const shared = rand() < 0.3 ? [pick(KEYS)].filter((k) => !exclusive.includes(k)) : []
    nodes[`n${i}`] = {
      task: "debug.sleep",
      // One task in ten sleeps long enough for a kill to land in the middle of it.
      params: { ms: rand() < 0.1 ? 100 + Math.floor(rand() * 200) : Math.floor(rand() * 20), inputs, ...(rand() < 0.08 ? { fail: `random failure ${i}` } : {}) },
      resources: { exclusive, shared },
      max_attempts: rand() < 0.3 ? 3 : 1
    }
  }
  return { label: runId, nodes }
}

/**
 * Every --kill-every seconds, SIGKILL a worker and start a new one. The victim is the worker of the
 * running task with attempts left and the most sleep still ahead of it (so that the kill lands
 * mid-task and the engine must retry it), looked for during the next --kill-every seconds (at least
 * 2); failing that, of any running task; failing that, any worker.
 */
const chaos = (workers: Array<Proc>, url: string, dataDir: string, counts: { kills: number }) =>
  Effect.gen(function*() {
    const db = yield* Db
    const running = db.rows<{ pid: number; retryable: boolean; left_ms: number }>(sql`
      SELECT w.pid, t.attempts < t.max_attempts AS retryable,
             coalesce((t.params->>'ms')::float8, 0) - 1000 * extract(epoch FROM clock_timestamp() - t.started_at)::float8 AS left_ms
      FROM tasks t JOIN workers w ON w.id = t.worker_id WHERE t.state = 'running'
      ORDER BY retryable DESC, left_ms DESC`)
    const ours = (pid: number) => workers.findIndex((w) => w.pid === pid)
    for (;;) {
      yield* Effect.sleep(Duration.seconds(killEveryS))
      let victim = -1
      let busy = -1
      const searchUntil = Date.now() + Math.max(2, killEveryS) * 1000
      while (victim < 0 && Date.now() < searchUntil) {
        const rows = (yield* running).filter((r) => ours(r.pid) >= 0)
        const best = rows.find((r) => r.retryable && r.left_ms > 1)
        if (best) victim = ours(best.pid)
        else if (rows.length > 0 && busy < 0) busy = ours(rows[0]!.pid)
        if (victim < 0) yield* Effect.sleep(Duration.millis(20))
      }
      const i = victim >= 0 ? victim : busy >= 0 ? busy : Math.floor(rand() * workers.length)
      void workers[i]!.kill9()
      workers[i] = startWorker(url, dataDir)
      counts.kills++
    }
  })

const main = (workers: Array<Proc>, url: string, dataDir: string, counts: { kills: number }) =>
  Effect.gen(function*() {
    const db = yield* Db
    // Workers take seconds to load: the run starts when they are all there.
    const registeredBy = Date.now() + 120_000
    while ((yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM workers`))[0]!.n < workers.length) {
      const dead = workers.find((w) => !w.alive())
      if (dead) return yield* Effect.dieMessage(`${dead.name} exited before it registered`)
      if (Date.now() > registeredBy) return yield* Effect.dieMessage(`the ${workers.length} workers did not all register within two minutes`)
      yield* Effect.sleep(Duration.millis(100))
    }
    const deadline = Date.now() + durationS * 1000
    const recentFutures: Array<string> = []
    const recentTasks: Array<string> = []
    let graphs = 0
    let cancels = 0
    const open = Effect.map(
      db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM tasks WHERE state IN ('blocked', 'ready', 'running')`),
      (r) => r[0]!.n
    )
    const submitter = Effect.gen(function*() {
      while (Date.now() < deadline) {
        while (Date.now() < deadline && (yield* open) > maxOpen) yield* Effect.sleep(Duration.millis(100))
        const g = yield* submitGraph(randomGraph(recentFutures))
        graphs++
        for (const node of Object.values(g.nodes)) {
          recentTasks.push(node.task)
          recentFutures.push(...Object.values(node.outputs))
        }
        if (recentFutures.length > 200) recentFutures.splice(0, recentFutures.length - 200)
        if (recentTasks.length > 200) recentTasks.splice(0, recentTasks.length - 200)
        if (rand() < 0.15) {
          const r = yield* Effect.either(cancelTask(pick(recentTasks)))
          if (r._tag === "Right") cancels++
        }
        yield* Effect.sleep(Duration.millis(Math.floor(rand() * 30)))
      }
    })
    const killing = killEveryS > 0 ? yield* Effect.fork(chaos(workers, url, dataDir, counts)) : undefined
    yield* Effect.all(Array.from({ length: submitters }, () => submitter), { concurrency: "unbounded" })
    if (killing) yield* Fiber.interrupt(killing)

    // Everything submitted must settle (bounded): workers keep running until it has.
    const settleDeadline = Date.now() + 120_000
    for (;;) {
      const [r] = yield* db.rows<{ open: number }>(sql`
        SELECT count(*)::int AS open FROM tasks t JOIN graphs g ON g.id = t.graph_id
        WHERE g.label = ${runId} AND t.state IN ('blocked', 'ready', 'running')`)
      if (r!.open === 0) break
      if (Date.now() > settleDeadline) {
        console.error(`${r!.open} tasks still unsettled two minutes after the last submission`)
        break
      }
      yield* Effect.sleep(Duration.millis(200))
    }
    const report = yield* checkInvariants(sql`g.label = ${runId}`)
    // Attempts beyond the first. Of tasks that never fail on their own (no `fail` param) only a
    // lost worker causes them: those are the retries the kills caused.
    const [retried] = yield* db.rows<{ retries: number; lostRetries: number; lost: number }>(sql`
      SELECT coalesce(sum(t.attempts - 1) FILTER (WHERE t.attempts > 1), 0)::int AS retries,
             coalesce(sum(t.attempts - 1) FILTER (WHERE t.attempts > 1 AND t.params->>'fail' IS NULL), 0)::int AS "lostRetries",
             count(*) FILTER (WHERE t.error->>'code' = 'worker_lost')::int AS lost
      FROM tasks t JOIN graphs g ON g.id = t.graph_id WHERE g.label = ${runId}`)
    return { graphs, cancels, report, ...retried! }
  })

const run = async () => {
  let url = process.env.DATABASE_URL
  // The workers' artifact store (unused by these kinds, but created at start).
  const dataDir = path.join(os.tmpdir(), `cairn-stress-${process.pid}`)
  let cleanup = () => fs.rm(dataDir, { recursive: true, force: true })
  if (!url) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-stress-"))
    await fs.chmod(dir, 0o777)
    const server = await startEmbedded(path.join(dir, "data"), { settings: { fsync: "off", synchronous_commit: "off" } })
    url = server.url
    const removeDataDir = cleanup
    cleanup = async () => {
      await server.stop()
      await fs.rm(dir, { recursive: true, force: true })
      await removeDataDir()
    }
  }
  // Ctrl-C or SIGTERM: stop the workers, then the database.
  onInterrupt(cleanup)
  await Effect.runPromise(runMigrations(url))
  const layer = Layer.mergeAll(
    DbLive(Redacted.make(url), 8),
    TaskKinds.layer(builtinKinds),
    CairnConfigFrom({ databaseUrl: Option.some(Redacted.make(url)) })
  )
  const workers: Array<Proc> = Array.from({ length: processes }, () => startWorker(url!, dataDir))
  const counts = { kills: 0 }
  const started = Date.now()
  console.log(`${runId}: ${durationS}s, ${processes} worker processes x ${slots} slots, ${submitters} submitters, seed ${args.seed}`)
  try {
    const summary = await Effect.runPromise(main(workers, url, dataDir, counts).pipe(Effect.scoped, Effect.provide(layer)))
    const seconds = (Date.now() - started) / 1000
    const { kills } = counts
    const { report } = summary
    console.log(`graphs ${summary.graphs}, tasks ${report.tasks} (${(report.tasks / seconds).toFixed(0)}/s), cancels ${summary.cancels}, worker kills ${kills}`)
    console.log(`retried attempts ${summary.retries} (after a lost worker ${summary.lostRetries}), tasks failed worker_lost ${summary.lost}, ran ${seconds.toFixed(0)} s`)
    console.log(`final states: ${Object.entries(report.byState).map(([k, n]) => `${k} ${n}`).join(", ")}`)
    if (report.violations.length === 0) console.log("invariants: all hold")
    else {
      console.log(`invariants: ${report.violations.length} violation(s)`)
      for (const m of report.violations) console.log(`  - ${m}`)
    }
    if (args.json) {
      await fs.writeFile(args.json, JSON.stringify({
        run: runId, seed: Number(args.seed), seconds, processes, slots, submitters, killEverySeconds: killEveryS,
        graphs: summary.graphs, tasks: report.tasks, cancels: summary.cancels, kills,
        retries: summary.retries, retriesAfterLostWorker: summary.lostRetries, workerLost: summary.lost,
        byState: report.byState, violations: report.violations
      }, null, 2))
    }
    process.exitCode = report.violations.length === 0 ? 0 : 1
  } finally {
    await stopAll(workers, 10_000)
    await cleanup()
  }
}

run().catch((e) => {
  console.error(`stress: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
})
