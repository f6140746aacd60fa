/**
 * `npm start`: the HTTP API and the content app plus CAIRN_WORKERS worker slots, in one process.
 * SIGINT/SIGTERM interrupt the main fiber: the listener closes, the workers drain within the grace
 * period, the pools close, and an embedded database we started stops.
 */
import { ServeMain } from "./layers.js"
import { launch } from "./runtime.js"

launch(ServeMain)
