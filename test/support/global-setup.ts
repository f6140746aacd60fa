/**
 * One real PostgreSQL for the whole test run (the embedded server, on a fresh data directory), and
 * in it a migrated template database; every test file clones its own database from the template
 * (test/support/db.ts), which is much cheaper than migrating one per file.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import pg from "pg"
import type { TestProject } from "vitest/node"
import { startEmbedded } from "../../src/db/embedded.js"
import { runMigrations } from "../../src/db/migrate.js"

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string
    pgDataDir: string
    /** The migrated database every test database is a copy of. */
    pgTemplate: string
  }
}

export default async function setup(project: TestProject) {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-test-"))
  // The server runs as the OS user `postgres` when we are root: it must reach its data directory.
  await fs.chmod(root, 0o777)
  const dataDir = path.join(root, "data")
  // Durability is not what these tests measure; crash tests restart the server cleanly.
  const server = await startEmbedded(dataDir, { settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off" } })
  await makeTemplate(server.url, TEMPLATE)
  project.provide("pgUrl", server.url)
  project.provide("pgTemplate", TEMPLATE)
  project.provide("pgDataDir", dataDir)
  return async () => {
    await server.stop()
    await fs.rm(root, { recursive: true, force: true })
  }
}

const TEMPLATE = "cairn_template"

/**
 * Create and migrate the template, then close it to connections: PostgreSQL copies a template
 * only while nobody is connected to it, and nobody can be now (autovacuum's workers are asked to
 * leave by the copy itself).
 */
const makeTemplate = async (serverUrl: string, name: string) => {
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    await Effect.runPromise(runMigrations(url.toString()))
    await admin.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`)
  } finally {
    await admin.end()
  }
}
