/**
 * A fresh, migrated database for one test file, and the Effect layers to use it.
 */
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { CairnConfigFrom } from "../../src/config/config.js"
import { DbLive } from "../../src/db/client.js"
import { runMigrations } from "../../src/db/migrate.js"
import { builtinKinds } from "../../src/engine/kinds/index.js"
import { type TaskKind, TaskKinds } from "../../src/engine/kind.js"
import { SessionLive } from "../../src/engine/session.js"

let counter = 0

export const createTestDatabase = async (): Promise<string> => {
  const admin = new pg.Client({ connectionString: inject("pgUrl") })
  await admin.connect()
  const name = `t_${process.pid}_${Date.now().toString(36)}_${counter++}`
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(inject("pgUrl"))
  url.pathname = `/${name}`
  await Effect.runPromise(runMigrations(url.toString()))
  return url.toString()
}

/** Fast timings so liveness tests finish in seconds. */
export const testConfig = (url: string, overrides: Parameters<typeof CairnConfigFrom>[0] = {}) =>
  CairnConfigFrom({
    databaseUrl: Option.some(Redacted.make(url)),
    workers: 2,
    heartbeatInterval: Duration.millis(200),
    heartbeatTimeout: Duration.seconds(3),
    reapInterval: Duration.millis(250),
    pollInterval: Duration.seconds(2),
    shutdownGrace: Duration.seconds(5),
    ...overrides
  })

export const engineLayer = (
  url: string,
  overrides: Parameters<typeof CairnConfigFrom>[0] = {},
  kinds: ReadonlyArray<TaskKind<any, never>> = builtinKinds
) => {
  const config = testConfig(url, overrides)
  const db = DbLive(Redacted.make(url), 10)
  const session = SessionLive.pipe(Layer.provide(db))
  return Layer.mergeAll(config, db, session, TaskKinds.layer(kinds))
}
