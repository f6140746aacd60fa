/**
 * `npm run worker`: a worker process with CAIRN_WORKERS slots and no HTTP listener. Run as many as
 * you like, on as many machines as you like, against one PostgreSQL.
 */
import { WorkerMain } from "./layers.js"
import { launch } from "./runtime.js"

launch(WorkerMain)
