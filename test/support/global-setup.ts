/**
 * One real PostgreSQL for the whole test run (the embedded server, on a fresh data directory);
 * every test file creates its own database in it (test/support/db.ts).
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { startEmbedded } from "../../src/db/embedded.js"

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string
    pgDataDir: string
  }
}

export default async function setup(project: TestProject) {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-test-"))
  // The server runs as the OS user `postgres` when we are root: it must reach its data directory.
  await fs.chmod(root, 0o777)
  const dataDir = path.join(root, "data")
  // Durability is not what these tests measure; crash tests restart the server cleanly.
  const server = await startEmbedded(dataDir, { settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off" } })
  project.provide("pgUrl", server.url)
  project.provide("pgDataDir", dataDir)
  return async () => {
    await server.stop()
    await fs.rm(root, { recursive: true, force: true })
  }
}
