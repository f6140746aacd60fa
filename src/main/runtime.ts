/**
 * What every cairn process is made of: configuration, logging, the database (embedded or not),
 * the session connection, and the task kinds this build knows.
 */
import { writeSync } from "node:fs"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Logger, LogLevel } from "effect"
import { CairnConfig, CairnConfigLive } from "../config/config.js"
import { DatabaseLive } from "../db/database.js"
import { builtinKinds } from "../engine/kinds/index.js"
import { TaskKinds } from "../engine/kind.js"
import { SessionLive } from "../engine/session.js"
import { contentKinds } from "../content/kinds/index.js"
import { TombstoneRecoveryLive } from "../content/cleanup.js"
import { SecretsNoticeLive } from "../content/secrets.js"
import { StorageLive } from "../content/services.js"
import { TracingLive } from "../observability/tracing.js"

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

/**
 * Log lines go to stderr together, once per turn of the event loop (in order; what is left at exit).
 * A worker logs a line per finished task attempt: written one by one, each line was a write to the
 * pipe, which cost a busy worker a fifth of its CPU per no-op task.
 */
let pendingLines: Array<string> = []
const flushLines = () => {
  if (pendingLines.length === 0) return
  const out = pendingLines.join("")
  pendingLines = []
  process.stderr.write(out)
}
let flushAtExit = false
const stderrLines = (format: Logger.Logger<unknown, string>): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    if (!flushAtExit) {
      flushAtExit = true
      process.on("exit", () => {
        if (pendingLines.length > 0) writeSync(2, pendingLines.join(""))
        pendingLines = []
      })
    }
    if (pendingLines.push(`${format.log(options)}\n`) === 1) setImmediate(flushLines)
  })

/** Text logs by default; CAIRN_LOG_FORMAT=json for one JSON object per line. */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const format = yield* Config.literal("text", "json")("CAIRN_LOG_FORMAT").pipe(Config.withDefault("text" as const))
    return Layer.merge(
      // Logs go to stderr; stdout carries only the start-up line ("cairn listening on ...").
      Logger.replace(Logger.defaultLogger, stderrLines(format === "json" ? Logger.jsonLogger : Logger.logfmtLogger)),
      Logger.minimumLogLevel(levels[config.logLevel] ?? LogLevel.Info)
    )
  })
)

/** Every task kind this build knows; handlers get the process's Db, storage and config. */
export const kindsLive = TaskKinds.layer([...builtinKinds, ...contentKinds])

/**
 * Config + Db + Session + ArtifactStorage + TaskKinds; at start, artifacts a crashed cleanup left
 * tombstoned are restored or purged according to the database.
 */
export const ProcessLive = Layer.mergeAll(SessionLive, kindsLive, TombstoneRecoveryLive, SecretsNoticeLive).pipe(
  Layer.provideMerge(Layer.merge(DatabaseLive, StorageLive)),
  Layer.provideMerge(CairnConfigLive)
)

/** Logging (configured) and tracing (when the OTEL variables ask for it), for every process. */
export const ObservabilityLive = Layer.merge(LoggingLive.pipe(Layer.provide(CairnConfigLive)), TracingLive)

/**
 * Run a process's main layer until SIGINT/SIGTERM, with our logger in charge of every fiber
 * (including those that build the layers).
 */
export const launch = <E>(main: Layer.Layer<never, E, never>) =>
  NodeRuntime.runMain(
    Layer.launch(main).pipe(Effect.provide(ObservabilityLive)),
    { disablePrettyLogger: true }
  )
