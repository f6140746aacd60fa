/**
 * The database host of a test cluster: the embedded PostgreSQL binaries, started in this host's
 * network namespace, listening on its address and admitting the cluster's network.
 *
 *   node --import tsx test/cluster/hosts/postgres.ts <dataDir> <listen address> <client CIDR> [--log-statements]
 *
 * With --log-statements every completed statement is logged with its client address and duration,
 * so that a test can wait for a statement from a given host to have run.
 *
 * Prints `postgres ready <url>`; on SIGTERM it stops the server (it is the only process attached).
 */
import { startEmbedded } from "../../../src/db/embedded.js"

const [dataDir, listen, cidr, flag] = process.argv.slice(2)
if (!dataDir || !listen || !cidr) throw new Error("usage: postgres.ts <dataDir> <listen address> <client CIDR>")

const server = await startEmbedded(dataDir, {
  listen,
  hba: [`host all all ${cidr} scram-sha-256`],
  // Durability is not what these tests look at; the machine is small.
  settings: {
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    ...(flag === "--log-statements" ? { log_min_duration_statement: "0", log_line_prefix: "'%m host=%h pid=%p '" } : {})
  },
  log: (line) => console.log(line)
})
console.log(`postgres ready ${server.url}`)

const keep = setInterval(() => undefined, 1 << 30)
process.once("SIGTERM", () => {
  void server.stop().finally(() => {
    clearInterval(keep)
    console.log("postgres stopped")
  })
})
