/**
 * The main layer of each kind of cairn process, shared by the npm entry points (serve.ts,
 * worker.ts) and the CLI's `cairn serve` / `cairn worker`.
 */
import { Effect, Layer } from "effect"
import { ServerLive } from "../api/server.js"
import { CairnConfig } from "../config/config.js"
import { runHistoryRetention } from "../content/lifecycle/auto-purge.js"
import { runWorker } from "../engine/worker.js"
import { ProcessLive } from "./runtime.js"

/**
 * The API and content app, plus CAIRN_WORKERS worker slots (0: none); a process with workers also
 * applies CAIRN_HISTORY_RETENTION_SECONDS (the automatic history purge), if set.
 */
export const ServeMain = Layer.mergeAll(
  ServerLive,
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const config = yield* CairnConfig
      if (config.workers > 0) {
        yield* runWorker()
        yield* runHistoryRetention
      }
    })
  )
).pipe(Layer.provide(ProcessLive))

/** Worker slots (CAIRN_WORKERS, at least 1), the automatic history purge if set, and no HTTP listener. */
export const WorkerMain = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    yield* runWorker({ slots: Math.max(1, config.workers) })
    yield* runHistoryRetention
  })
).pipe(Layer.provide(ProcessLive))
