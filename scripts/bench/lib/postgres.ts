/**
 * The benchmark's PostgreSQL: DATABASE_URL if set (its database is only used as the admin
 * connection; every run creates a fresh database beside it), otherwise an embedded server started
 * here in a temporary directory and stopped at the end.
 *
 * The embedded server keeps PostgreSQL's durability defaults (fsync, synchronous_commit on: the
 * numbers include a real commit), allows 1,000 connections (64 worker processes with their pools)
 * and preloads pg_stat_statements so that a benchmark can count and time statements.
 */
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { startEmbedded } from "../../../src/db/embedded.js"
import { runMigrations } from "../../../src/db/migrate.js"
import { onInterrupt } from "../../lib/processes.js"
import { sig } from "./stats.js"
import type { Table } from "./table.js"

export interface Postgres {
  /** Connection string of the admin database (postgres). */
  readonly adminUrl: string
  readonly embedded: boolean
  readonly version: string
  /** pg_stat_statements can be created in new databases. */
  readonly statements: boolean
  readonly settings: Record<string, string>
  /** The server log (embedded server only): auto_explain output lands here. */
  readonly logFile: string | undefined
  /** The postmaster's pid (embedded server only), for CPU accounting (lib/cpu.ts). */
  readonly postmasterPid: number | undefined
  readonly stop: () => Promise<void>
}

export const startPostgres = async (opts: { readonly settings?: Record<string, string>; readonly log?: (s: string) => void } = {}): Promise<Postgres> => {
  const log = opts.log ?? ((s: string) => console.error(s))
  let adminUrl = process.env.DATABASE_URL
  let stop = async () => {}
  let embedded = false
  let logFile: string | undefined
  let postmasterPid: number | undefined
  if (!adminUrl) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-bench-pg-"))
    await fs.chmod(dir, 0o777)
    const settings = {
      max_connections: "1000",
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track": "top",
      "pg_stat_statements.max": "10000",
      ...opts.settings
    }
    log(`starting an embedded PostgreSQL in ${dir}`)
    const server = await startEmbedded(path.join(dir, "data"), { settings, log })
    adminUrl = server.url
    embedded = true
    logFile = path.join(dir, "data", "postgres.log")
    postmasterPid = Number((await fs.readFile(path.join(dir, "data", "pg", "postmaster.pid"), "utf8")).split("\n")[0])
    let stopped = false
    stop = async () => {
      if (stopped) return
      stopped = true
      await server.stop()
      await fs.rm(dir, { recursive: true, force: true })
    }
    onInterrupt(stop)
  }
  const c = await connect(adminUrl)
  try {
    const version = (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v
    const preload = (await c.query<{ v: string }>("SELECT current_setting('shared_preload_libraries') AS v")).rows[0]!.v
    const names = ["max_connections", "shared_buffers", "fsync", "synchronous_commit", "shared_preload_libraries"]
    const settings: Record<string, string> = {}
    for (const r of (await c.query<{ name: string; setting: string; unit: string | null }>(
      "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)",
      [names]
    )).rows) settings[r.name] = r.setting + (r.unit ? ` ${r.unit}` : "")
    return { adminUrl, embedded, version, statements: preload.includes("pg_stat_statements"), settings, logFile, postmasterPid, stop }
  } finally {
    await c.end()
  }
}

export const connect = async (url: string) => {
  const c = new pg.Client({ connectionString: url })
  c.on("error", () => undefined)
  await c.connect()
  return c
}

export const withClient = async <A>(url: string, f: (c: pg.Client) => Promise<A>): Promise<A> => {
  const c = await connect(url)
  try {
    return await f(c)
  } finally {
    await c.end().catch(() => undefined)
  }
}

const dbUrl = (adminUrl: string, name: string) => {
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return u.toString()
}

let counter = 0

/**
 * A fresh database named `bench_<label>_<n>`; with `migrate` cairn's migrations are applied.
 * pg_stat_statements is created in it when the server preloads it.
 */
export const createDatabase = async (
  pgs: Postgres,
  label: string,
  opts: { readonly migrate?: boolean; readonly explainMs?: number | undefined } = {}
): Promise<string> => {
  const name = `bench_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${process.pid}_${counter++}`
  await withClient(pgs.adminUrl, async (c) => {
    await c.query(`CREATE DATABASE ${name}`)
    if (opts.explainMs !== undefined) {
      // Every session of this database logs the plans (with actual times, nested statements of
      // the engine's PL/pgSQL functions included) of statements slower than explainMs.
      for (const set of [
        "session_preload_libraries = 'auto_explain'",
        `auto_explain.log_min_duration = ${Math.round(opts.explainMs)}`,
        "auto_explain.log_analyze = on",
        "auto_explain.log_buffers = on",
        "auto_explain.log_nested_statements = on"
      ]) await c.query(`ALTER DATABASE ${name} SET ${set}`)
    }
  })
  const url = dbUrl(pgs.adminUrl, name)
  if (pgs.statements) await withClient(url, (c) => c.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
  if (opts.migrate !== false) await Effect.runPromise(runMigrations(url))
  return url
}

export const dropDatabase = async (pgs: Postgres, url: string) => {
  const name = new URL(url).pathname.slice(1)
  await withClient(pgs.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined)
}

export interface StatementStat {
  readonly query: string
  readonly calls: number
  readonly total_ms: number
  readonly mean_ms: number
  readonly max_ms: number
  readonly rows: number
}

/** Forget the statistics of this database's statements (start of a measured phase). */
export const resetStatements = async (url: string) => {
  await withClient(url, (c) => c.query("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")).catch(() => undefined)
}

/** This database's statements, by total execution time. */
export const topStatements = async (url: string, limit = 12): Promise<ReadonlyArray<StatementStat>> =>
  withClient(url, async (c) => {
    try {
      const r = await c.query<StatementStat>(
        `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls::float8 AS calls,
                total_exec_time AS total_ms, mean_exec_time AS mean_ms, max_exec_time AS max_ms, rows::float8 AS rows
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat_statements%'
         ORDER BY total_exec_time DESC LIMIT $1`,
        [limit]
      )
      return r.rows.map((s) => ({ ...s, query: s.query.length > 160 ? `${s.query.slice(0, 157)}...` : s.query }))
    } catch {
      return []
    }
  })

/** The ten statements with the largest total time, as a report table. */
export const statementsTable = (title: string, statements: ReadonlyArray<StatementStat>): Table => ({
  title,
  headers: ["statement", "calls", "mean ms", "total ms"],
  rows: statements.slice(0, 10).map((s) => [s.query.slice(0, 110), String(s.calls), sig(s.mean_ms), sig(s.total_ms)])
})

/** Total statement executions in this database so far (pg_stat_statements), or NaN. */
export const statementCalls = async (url: string): Promise<number> =>
  withClient(url, async (c) => {
    try {
      const r = await c.query<{ n: number }>(
        `SELECT coalesce(sum(calls), 0)::float8 AS n FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat%'`
      )
      return r.rows[0]!.n
    } catch {
      return NaN
    }
  })

/** Committed + rolled back transactions of this database (pg_stat_database; includes our own probe). */
export const transactions = async (url: string): Promise<number> =>
  withClient(url, async (c) => {
    await c.query("SELECT pg_stat_clear_snapshot()")
    const r = await c.query<{ n: number }>(
      "SELECT (xact_commit + xact_rollback)::float8 AS n FROM pg_stat_database WHERE datname = current_database()"
    )
    return r.rows[0]!.n
  })
