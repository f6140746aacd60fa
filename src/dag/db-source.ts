/**
 * The database as a `Source`, through the engine's own read models (src/engine/views.ts), so that
 * `--db` shows exactly what the API would. DATABASE_URL, or (unset) the embedded server of
 * CAIRN_DATA_DIR, joined when running; nothing is migrated or written.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Option, Redacted } from "effect"
import { CairnConfig, CairnConfigLive } from "../config/config.js"
import { Db, DbLive } from "../db/client.js"
import { resolveDatabaseUrl } from "../db/database.js"
import { getFuture, getGraph, getTask } from "../engine/views.js"
import { DagError, type Source } from "./model.js"

const messageOf = (cause: Cause.Cause<unknown>) => {
  const e = Cause.squash(cause) as { message?: unknown; code?: unknown }
  const msg = typeof e?.message === "string" && e.message ? e.message : String(e)
  return msg.split("\n")[0]!
}

export const dbSource = async (): Promise<Source> => {
  // Check the configuration first: a typo'd CAIRN_DATA_DIR must not initialise a fresh cluster.
  const config = await Effect.runPromiseExit(Effect.provide(CairnConfig, CairnConfigLive))
  if (Exit.isFailure(config)) throw new DagError(`invalid configuration: ${messageOf(config.cause)}`)
  const where = Option.isSome(config.value.databaseUrl)
    ? "the database at DATABASE_URL"
    : `the embedded database of ${path.resolve(config.value.dataDir)}`
  if (Option.isNone(config.value.databaseUrl) && !fs.existsSync(path.join(config.value.dataDir, "postgres.json"))) {
    throw new DagError(
      `there is no embedded database in ${path.resolve(config.value.dataDir)}; set CAIRN_DATA_DIR to the server's data directory or DATABASE_URL`
    )
  }

  const layer = Layer.unwrapScoped(
    Effect.map(resolveDatabaseUrl, (url: Redacted.Redacted<string>) => DbLive(url, 4)).pipe(
      // resolveDatabaseUrl logs "joined the embedded PostgreSQL" through Effect's logger (stdout).
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  ).pipe(Layer.provide(CairnConfigLive))
  const runtime = ManagedRuntime.make(layer)

  const run = async <A>(what: string, eff: Effect.Effect<A, unknown, Db>): Promise<A> => {
    const exit = await runtime.runPromiseExit(eff)
    if (Exit.isSuccess(exit)) return exit.value
    const msg = messageOf(exit.cause)
    if (/relation .* does not exist/.test(msg)) throw new DagError(`${where} has no cairn tables (${msg})`)
    throw new DagError(`cannot read ${what} from ${where}: ${msg}`)
  }

  return {
    name: where,
    getGraph: (id) => run(`graph ${id}`, getGraph(id)),
    getTask: (id) => run(`task ${id}`, getTask(id)),
    getFuture: (id) => run(`future ${id}`, getFuture(id)),
    close: () => runtime.dispose()
  }
}
