/**
 * TLS to an external PostgreSQL, as managed databases require it: `sslmode` and `sslrootcert` in
 * DATABASE_URL. A server with a certificate from a CA made here (openssl) that refuses plain
 * connections; real cairn processes against it; pg_stat_ssl says every connection of theirs
 * (pool, session, migrations) is encrypted.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EmbeddedServer, startEmbedded } from "../src/db/embedded.js"
import { withLibpqSslModes } from "../src/db/url.js"
import { api, spawnCairn, startServer } from "./support/processes.js"

const run = promisify(execFile)
let root: string
let server: EmbeddedServer
let caFile: string
let otherCaFile: string
/** postgres://postgres:<password>@localhost:<port>/<database>, no TLS parameters yet. */
let base: URL
/** Our own connection for looking at pg_stat_ssl (TLS too: the server takes nothing else). */
let admin: pg.Client

const openssl = (...args: Array<string>) => run("openssl", args, { cwd: root })

/** A CA, and a key and certificate for `localhost` and 127.0.0.1 signed by it. */
const makeCerts = async () => {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  await openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=cairn test CA")
  await openssl("req", "-x509", ...ec, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=someone else's CA")
  await openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
  await fs.writeFile(path.join(root, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  await openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
  // PostgreSQL reads the key as its own OS user and refuses a key others can read.
  const key = path.join(root, "server.key")
  if (process.getuid?.() === 0) {
    const uid = Number((await run("id", ["-u", "postgres"]).catch(() => ({ stdout: "" }))).stdout.trim())
    if (uid > 0) await fs.chown(key, uid, -1)
  }
  await fs.chmod(key, 0o600)
  await fs.chmod(path.join(root, "server.pem"), 0o644)
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-tls-"))
  await fs.chmod(root, 0o777)
  // The postgres OS user must exist before the key is given to it: a first start creates it.
  if (process.getuid?.() === 0) await run("id", ["-u", "postgres"]).catch(() => run("useradd", ["-M", "postgres"]))
  await makeCerts()
  caFile = path.join(root, "ca.pem")
  otherCaFile = path.join(root, "other-ca.pem")
  server = await startEmbedded(path.join(root, "data"), {
    settings: { ssl: "on", ssl_cert_file: path.join(root, "server.pem"), ssl_key_file: path.join(root, "server.key"), fsync: "off" },
    // TLS or nothing: a connection that silently went without it would be refused, not counted.
    hba: ["hostnossl all all 0.0.0.0/0 reject", "hostssl all all 127.0.0.1/32 scram-sha-256"]
  })
  base = new URL(server.url)
  base.hostname = "localhost"
  admin = new pg.Client({ connectionString: withLibpqSslModes(`${base}?sslmode=verify-full&sslrootcert=${caFile}`) })
  await admin.connect()
  await admin.query("CREATE DATABASE cairn_tls")
  base.pathname = "/cairn_tls"
})

afterAll(async () => {
  await admin?.end().catch(() => undefined)
  await server?.stop()
  await fs.rm(root, { recursive: true, force: true })
})

/** The connections of process `pid`'s backends... by application: all client backends of the test database but ours. */
const connections = async () =>
  (await admin.query<{ pid: number; ssl: boolean; version: string | null }>(
    `SELECT a.pid, s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
     WHERE a.datname = 'cairn_tls' AND a.backend_type = 'client backend'`
  )).rows

describe("TLS to PostgreSQL from DATABASE_URL", () => {
  for (const params of [`sslmode=verify-full&sslrootcert=CA`, "sslmode=require"]) {
    it(`a cairn process with ?${params} runs, and every connection it opens is encrypted`, async () => {
      const url = `${base}?${params.replace("CA", caFile)}`
      const srv = await startServer(url, { CAIRN_WORKERS: "1", CAIRN_DATA_DIR: path.join(root, `data-${params.length}`) })
      try {
        const client = api(srv.url)
        const g = await client.post("/api/v1/graphs", { nodes: { a: { task: "debug.sleep", params: { value: "over tls" } } } })
        expect(g.status).toBe(201)
        expect(await client.settled(g.body.nodes.a.outputs.result)).toMatchObject({ state: "resolved", value: "over tls" })
        // The session (LISTEN, liveness lock) and the pool's connections, all over TLS.
        const conns = await connections()
        expect(conns.length).toBeGreaterThanOrEqual(2)
        for (const c of conns) expect(c).toMatchObject({ ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) })
      } finally {
        await srv.stop()
      }
    })
  }

  it("a certificate from another CA is refused at start with a message saying so", async () => {
    const p = spawnCairn("worker", { DATABASE_URL: `${base}?sslmode=verify-full&sslrootcert=${otherCaFile}`, CAIRN_DATA_DIR: path.join(root, "data-bad") })
    const code = await p.exited
    expect(code).not.toBe(0)
    expect(p.output()).toMatch(/self[- ]signed certificate|unable to verify|certificate/i)
  })

  it("sslmode keeps libpq's meaning: require encrypts without verifying, verify-* verify", () => {
    expect(withLibpqSslModes("postgres://u:p@db:5432/x?sslmode=require")).toBe("postgres://u:p@db:5432/x?sslmode=require&uselibpqcompat=true")
    expect(withLibpqSslModes("postgres://u@db/x?sslmode=verify-full&sslrootcert=/ca.pem")).toBe(
      "postgres://u@db/x?sslmode=verify-full&sslrootcert=/ca.pem&uselibpqcompat=true"
    )
    // Said already, a node-postgres-only mode, or no TLS at all: left as written.
    for (const url of ["postgres://u@db/x?sslmode=require&uselibpqcompat=true", "postgres://u@db/x?sslmode=no-verify", "postgres://u@db/x"]) {
      expect(withLibpqSslModes(url)).toBe(url)
    }
  })
})
