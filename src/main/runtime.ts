/**
 * What every cairn process is made of: configuration, logging, the database (embedded or not),
 * the session connection, and the task kinds this build knows.
 */
import { Config, Effect, Layer, Logger, LogLevel } from "effect"
import { CairnConfig, CairnConfigLive } from "../config/config.js"
import { DatabaseLive } from "../db/database.js"
import { builtinKinds } from "../engine/kinds/index.js"
import { TaskKinds } from "../engine/kind.js"
import { SessionLive } from "../engine/session.js"

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

/** Text logs by default; CAIRN_LOG_FORMAT=json for one JSON object per line. */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const format = yield* Config.literal("text", "json")("CAIRN_LOG_FORMAT").pipe(Config.withDefault("text" as const))
    return Layer.merge(
      format === "json" ? Logger.replace(Logger.defaultLogger, Logger.jsonLogger) : Logger.replace(Logger.defaultLogger, Logger.logfmtLogger),
      Logger.minimumLogLevel(levels[config.logLevel] ?? LogLevel.Info)
    )
  })
)

export const kindsLive = TaskKinds.layer(builtinKinds)

/** Config + Db + Session + TaskKinds, with logging configured. */
export const ProcessLive = Layer.mergeAll(SessionLive, kindsLive).pipe(
  Layer.provideMerge(DatabaseLive),
  Layer.provideMerge(LoggingLive),
  Layer.provideMerge(CairnConfigLive)
)
