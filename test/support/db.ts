/**
 * A fresh, migrated database for one test file (a copy of the template the global setup migrated),
 * and the Effect layers to use it.
 */
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { CairnConfigFrom } from "../../src/config/config.js"
import { DbLive } from "../../src/db/client.js"
import { builtinKinds } from "../../src/engine/kinds/index.js"
import { type TaskKind, TaskKinds } from "../../src/engine/kind.js"
import { SessionLive } from "../../src/engine/session.js"
import { contentKinds } from "../../src/content/kinds/index.js"
import { type ContentServices, StorageLive } from "../../src/content/services.js"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

let counter = 0

export const createTestDatabase = async (): Promise<string> => {
  const admin = new pg.Client({ connectionString: inject("pgUrl") })
  await admin.connect()
  const name = `t_${process.pid}_${Date.now().toString(36)}_${counter++}`
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject("pgTemplate")}`)
  } finally {
    await admin.end()
  }
  const url = new URL(inject("pgUrl"))
  url.pathname = `/${name}`
  return url.toString()
}

/**
 * Fast timings so that tests finish in seconds, but a generous heartbeat timeout: a worker fences
 * itself after 60% of it without a heartbeat, and in-process workers share their process (and its
 * pool) with the test's own work, so on a loaded machine a few seconds without one happen and
 * would fail running tasks as worker_lost. Dead workers are still found at once by their session
 * lock; a test about the heartbeat path gives its own timeout.
 */
export const testConfig = (url: string, overrides: Parameters<typeof CairnConfigFrom>[0] = {}) =>
  CairnConfigFrom({
    databaseUrl: Option.some(Redacted.make(url)),
    workers: 2,
    heartbeatInterval: Duration.millis(200),
    heartbeatTimeout: Duration.seconds(60),
    reapInterval: Duration.millis(250),
    pollInterval: Duration.seconds(2),
    shutdownGrace: Duration.seconds(5),
    ...overrides
  })

/** Every kind a cairn process knows. */
export const allKinds: ReadonlyArray<TaskKind<any, ContentServices>> = [...builtinKinds, ...contentKinds]

/**
 * Config, Db, Session, ArtifactStorage (under a fresh temporary data directory unless `dataDir`
 * is given) and the task kinds (all of them unless given).
 */
export const engineLayer = (
  url: string,
  overrides: Parameters<typeof CairnConfigFrom>[0] = {},
  kinds: ReadonlyArray<TaskKind<any, ContentServices>> = allKinds
) => {
  const dataDir = overrides.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "cairn-test-"))
  const config = testConfig(url, { dataDir, ...overrides })
  const db = DbLive(Redacted.make(url), 10)
  const session = SessionLive.pipe(Layer.provide(db))
  const storage = StorageLive.pipe(Layer.provide(config))
  const base = Layer.mergeAll(config, db, session, storage)
  return Layer.merge(base, TaskKinds.layer(kinds).pipe(Layer.provide(base)))
}

/**
 * Watches a database for writes: `fingerprint()` digests every row version (ctid, xmin) of every
 * table but `workers` and `slot_locks` (which live processes touch on their own), so equal before
 * and after means nothing was written. Cheap: no column is read.
 */
export const watchWrites = async (dbUrl: string) => {
  const db = new pg.Client({ connectionString: dbUrl })
  await db.connect()
  const tables = (await db.query<{ t: string }>(
    `SELECT table_name AS t FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT IN ('workers', 'slot_locks') ORDER BY 1`
  )).rows.map((r) => r.t)
  const digest = tables
    .map((t) => `(SELECT md5(coalesce(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid), '')) FROM "${t}") AS "${t}"`)
    .join(", ")
  return {
    fingerprint: async () => (await db.query(`SELECT ${digest}`)).rows[0] as Record<string, string>,
    close: () => db.end()
  }
}
