/**
 * The main layer of each kind of cairn process, shared by the npm entry points (serve.ts,
 * worker.ts) and the CLI's `cairn serve` / `cairn worker`.
 */
import { Effect, Layer } from "effect"
import { ServerLive } from "../api/server.js"
import { CairnConfig } from "../config/config.js"
import { runHistoryRetention } from "../content/lifecycle/auto-purge.js"
import { runWorker } from "../engine/worker.js"
import { runScheduler } from "../schedules/scheduler.js"
import { ApiClusterLive, isApiProcess } from "./api-cluster.js"
import { ProcessLive } from "./runtime.js"

/** Worker slots (CAIRN_WORKERS; 0: none) and, with them, the scheduler and the history purge. */
const WorkerSlots = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    if (config.workers > 0) {
      yield* runWorker()
      yield* runScheduler
      yield* runHistoryRetention
    }
  })
)

/**
 * `serve`: the API and content app, plus CAIRN_WORKERS worker slots (0: none) and, with them, the
 * scheduler and CAIRN_HISTORY_RETENTION_SECONDS (the automatic history purge), if set. A process
 * without workers runs no scheduler: schedules submit work, and work is the workers' business; an
 * API-only process answers requests and writes nothing it was not asked to (and adding API
 * processes adds no scheduler traffic). Ticks missed while no worker runs are submitted, once, when
 * one starts.
 *
 * With CAIRN_API_PROCESSES > 1 the HTTP side runs in that many forked API processes
 * (api-cluster.ts): this process keeps the worker slots, and each fork, which runs this same
 * program, takes the API role.
 */
export const ServeMain = Layer.unwrapEffect(
  Effect.map(CairnConfig, (config) =>
    isApiProcess()
      ? ServerLive
      : config.apiProcesses > 1
      ? Layer.merge(ApiClusterLive, WorkerSlots)
      : Layer.merge(ServerLive, WorkerSlots))
).pipe(Layer.provide(ProcessLive))

/** Worker slots (CAIRN_WORKERS, at least 1), the scheduler, the automatic history purge if set, and no HTTP listener. */
export const WorkerMain = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    yield* runWorker({ slots: Math.max(1, config.workers) })
    yield* runScheduler
    yield* runHistoryRetention
  })
).pipe(Layer.provide(ProcessLive))
