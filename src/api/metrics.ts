/**
 * GET /metrics: the registry (`src/engine/metrics.ts`: engine, content app and cleanup
 * instruments) rendered by prom-client in the Prometheus text format, plus gauges read at scrape
 * time from the database (`src/engine/queries/metrics.ts`), the pool and the long-poll waiters.
 * With several API processes, the registries of all of `serve`'s processes, added up
 * (`cluster-metrics.ts`): a scrape means the same whichever process answers it.
 */
import { Effect } from "effect"
import { Gauge } from "prom-client"
import { Db } from "../db/client.js"
import { metricsRegistry } from "../engine/metrics.js"
import { clusterMetricsText } from "./cluster-metrics.js"
import { futureCounts, taskCounts, workersAlive } from "../engine/queries/metrics.js"
import { FutureWaiters } from "./waiters.js"

const registers = [metricsRegistry]

const tasks = new Gauge({ name: "cairn_tasks", help: "Tasks by kind and state", labelNames: ["kind", "state"] as const, registers })
const readyQueueDepth = new Gauge({ name: "cairn_ready_queue_depth", help: "Tasks ready and waiting for a worker", registers })
const futures = new Gauge({ name: "cairn_futures", help: "Futures by state", labelNames: ["state"] as const, registers })
const workers = new Gauge({ name: "cairn_workers_alive", help: "Registered live workers", registers })
const longPolls = new Gauge({ name: "cairn_long_polls", help: "Long-polls waiting in this server's processes", registers })
const pool = new Gauge({ name: "cairn_db_pool_connections", help: "The database pools of this server's processes", labelNames: ["state"] as const, registers })

/** Read from the database by the process answering the scrape: never added up across processes. */
const DATABASE_FAMILIES = new Set(["cairn_tasks", "cairn_ready_queue_depth", "cairn_futures", "cairn_workers_alive"])

export const METRICS_CONTENT_TYPE = metricsRegistry.contentType

/** The text of GET /metrics. A database that does not answer leaves its gauges empty (or 0). */
export const renderMetrics = Effect.gen(function*() {
  const db = yield* Db
  const waiters = yield* FutureWaiters
  const [taskRows, futureRows, alive] = yield* Effect.all([
    taskCounts().pipe(Effect.orElseSucceed(() => [])),
    futureCounts().pipe(Effect.orElseSucceed(() => [])),
    workersAlive().pipe(Effect.orElseSucceed(() => 0))
  ]).pipe(Effect.provideService(Db, db))
  const waiting = yield* waiters.size
  return yield* Effect.promise(() => {
    // Set and handed to prom-client in one synchronous step (it collects every family's samples
    // before its first await), and `reset` drops label sets whose rows are gone: a family never
    // mixes the rows of two scrapes.
    tasks.reset()
    for (const t of taskRows) tasks.set({ kind: t.kind, state: t.state }, t.n)
    readyQueueDepth.set(taskRows.filter((t) => t.state === "ready").reduce((n, t) => n + t.n, 0))
    futures.reset()
    for (const f of futureRows) futures.set({ state: f.state }, f.n)
    workers.set(alive)
    longPolls.set(waiting)
    pool.set({ state: "total" }, db.pool.totalCount)
    pool.set({ state: "idle" }, db.pool.idleCount)
    pool.set({ state: "waiting" }, db.pool.waitingCount)
    return clusterMetricsText(DATABASE_FAMILIES)
  })
})
