/**
 * `serve` with CAIRN_API_PROCESSES > 1: that many API processes (node:cluster workers) answering
 * HTTP on the one port, because one Node process answers HTTP on one core (DESIGN.md §1).
 *
 * The primary (the process `npm start` or `cairn serve` started) starts or joins the database and
 * migrates it before forking, runs the worker slots, the scheduler and the history purge itself,
 * and opens the listening socket, which node:cluster shares with the API processes (Node 20 has no
 * SO_REUSEPORT): each accepts connections from it directly (SCHED_NONE, see below), so the primary
 * is in the path of no request, and a connection's requests are all answered by one process. API
 * processes run the API and the content app and nothing else (like `CAIRN_WORKERS=0` processes of
 * a cluster), each with its own pool, session (LISTEN), route table and small-file cache; every
 * cross-request rule they apply is kept in the database.
 *
 * - Start: the start-up line is printed once every API process listens; one that exits before that
 *   fails the start (its own log says why), so a bad port is not retried for ever.
 * - A process that exits later is logged and replaced, at once the first time, then after a delay
 *   that doubles (up to 10 s) while replacements keep exiting within 10 s of their start.
 * - SIGTERM/SIGINT (the primary's scope closing): every API process gets SIGTERM and drains as a
 *   single process would (long-polls answered, idle connections closed, busy ones finished); the
 *   primary waits for all of them before its workers drain and its database closes.
 * - The primary killed (SIGKILL): its IPC channel closes, and node:cluster ends each API process at
 *   once (process.exit on 'disconnect'), so nothing is left serving.
 */
import cluster, { type Worker } from "node:cluster"
import { Deferred, Effect, Exit, Layer, Runtime } from "effect"
import { answerMetricsAsks, serveMetricsGathers } from "../api/cluster-metrics.js"
import { CairnConfig } from "../config/config.js"

/** What an API process tells the primary once it listens (src/api/server.ts). */
export interface ListeningMessage {
  readonly type: "cairn:listening"
  readonly url: string
}

const FIRST_RESTART_MS = 100
const MAX_RESTART_MS = 10_000
/** A replacement that lived at least this long resets the delay. */
const STABLE_MS = 10_000

/** Is this process one of a cluster's API processes (a node:cluster worker)? */
export const isApiProcess = () => cluster.isWorker

/** In an API process: tell the primary where it listens, and answer its metrics asks. */
export const announceListening = (url: string) => {
  answerMetricsAsks()
  process.send?.({ type: "cairn:listening", url } satisfies ListeningMessage)
}

const describeExit = (code: number | null, signal: string | null) => (signal !== null ? `signal ${signal}` : `code ${code}`)

/** In the primary: CAIRN_API_PROCESSES API processes, kept running until the scope closes. */
export const ApiClusterLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) => void Runtime.runFork(runtime)(effect)

    const children = new Set<Worker>()
    const started = yield* Deferred.make<string, Error>()
    /** API processes of the first start that listen. */
    let listening = 0
    /** Every API process has listened once: from then on, one that exits is replaced. */
    let up = false
    let stopping = false
    let allGone: (() => void) | undefined
    let restartDelay = FIRST_RESTART_MS
    const timers = new Set<NodeJS.Timeout>()

    /** An API process; `replacing`: the pid of the one that exited. */
    const fork = (replacing?: number) => {
      const child = cluster.fork()
      const bornAt = Date.now()
      let listened = false
      children.add(child)
      child.on("message", (m: ListeningMessage) => {
        if (m?.type !== "cairn:listening" || listened) return
        listened = true
        listening += 1
        if (listening === config.apiProcesses && !up) {
          up = true
          Deferred.unsafeDone(started, Exit.succeed(m.url))
        }
        if (replacing !== undefined) log(Effect.logInfo(`API process ${child.process.pid} listening, replacing ${replacing}`))
      })
      child.once("exit", (code, signal) => {
        children.delete(child)
        if (stopping) {
          if (children.size === 0) allGone?.()
          return
        }
        const how = describeExit(code, signal)
        if (!up) {
          Deferred.unsafeDone(started, Exit.fail(new Error(`API process ${child.process.pid} exited (${how}) before it listened: its log above says why`)))
          return
        }
        restartDelay = Date.now() - bornAt >= STABLE_MS ? FIRST_RESTART_MS : restartDelay
        log(Effect.logError(`API process ${child.process.pid} exited (${how}); starting another in ${restartDelay} ms`))
        const timer = setTimeout(() => {
          timers.delete(timer)
          if (!stopping) fork(child.process.pid)
        }, restartDelay)
        timers.add(timer)
        restartDelay = Math.min(MAX_RESTART_MS, restartDelay * 2)
      })
      return child
    }

    const stopAll = Effect.async<void>((resume) => {
      stopping = true
      for (const t of timers) clearTimeout(t)
      if (children.size === 0) return resume(Effect.void)
      allGone = () => resume(Effect.void)
      for (const child of children) child.process.kill("SIGTERM")
    })
    yield* Effect.addFinalizer(() => stopAll)
    const stopGathers = serveMetricsGathers(() => children)
    yield* Effect.addFinalizer(() => Effect.sync(stopGathers))

    // Every API process accepts from the one listening socket itself (the kernel picks which):
    // node:cluster's default on Linux, round-robin, has the primary accept each connection and hand
    // it over IPC, waiting for the API process's answer before the next, which put this process
    // (and its worker slots' load) in the path of every new connection: a loaded machine took
    // seconds to hand out a load generator's 256 connections.
    cluster.schedulingPolicy = cluster.SCHED_NONE
    for (let i = 0; i < config.apiProcesses; i++) fork()
    const url = yield* Deferred.await(started)
    console.log(`cairn listening on ${url}`)
    yield* Effect.logInfo(`${config.apiProcesses} API processes listening`).pipe(
      Effect.annotateLogs({ pids: [...children].map((c) => c.process.pid).join(",") })
    )
  })
)
