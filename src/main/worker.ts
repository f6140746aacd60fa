/**
 * `npm run worker`: a worker process with CAIRN_WORKERS slots and no HTTP listener. Run as many as
 * you like, on as many machines as you like, against one PostgreSQL.
 */
import { Effect, Layer } from "effect"
import { CairnConfig } from "../config/config.js"
import { runWorker } from "../engine/worker.js"
import { launch, ProcessLive } from "./runtime.js"

const WorkerLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    yield* runWorker({ slots: Math.max(1, config.workers) })
  })
)

launch(WorkerLive.pipe(Layer.provide(ProcessLive)))
