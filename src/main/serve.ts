/**
 * `npm start`: the HTTP API (and, with the content store, the content app) plus CAIRN_WORKERS
 * worker slots, in one process. SIGINT/SIGTERM interrupt the main fiber: the listener closes, the
 * workers drain within the grace period, the pools close, and an embedded database we started stops.
 */
import { Effect, Layer } from "effect"
import { ServerLive } from "../api/server.js"
import { CairnConfig } from "../config/config.js"
import { runWorker } from "../engine/worker.js"
import { launch, ProcessLive } from "./runtime.js"

const WorkersLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    if (config.workers > 0) yield* runWorker()
  })
)

const MainLive = Layer.mergeAll(ServerLive, WorkersLive).pipe(Layer.provide(ProcessLive))

launch(MainLive)
