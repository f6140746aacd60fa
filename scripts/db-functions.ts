/**
 * npm run db:functions [-- --name <migration name>] [-- --check]
 *
 * Makes the migrations produce the SQL functions and triggers as the files under src/**\/sql/
 * define them (src/db/sql-files.ts). It migrates a scratch database (a database created for the
 * purpose on the server of DATABASE_URL, or a throw-away embedded PostgreSQL when it is unset),
 * compares every file with what the migrations produced, and if some differ writes one custom
 * drizzle migration holding those files (`drizzle-kit generate --custom`, so that drizzle-kit's
 * journal and snapshots stay its own), then migrates again and checks that nothing differs.
 *
 * With --check it only reports, and exits 1 when the files and the migrations disagree.
 * It refuses (exit 1, nothing written) when a file does not apply, or when an object is defined by
 * no file or by two: those need a decision (add its file, or drop it in a hand-written migration).
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import pg from "pg"
import { startEmbedded } from "../src/db/embedded.js"
import { migrationsFolder, runMigrations } from "../src/db/migrate.js"
import { blockingProblems, changedFiles, type Check, checkSqlFiles, findSqlFiles, problems, projectRoot } from "../src/db/sql-files.js"

const { values } = parseArgs({ options: { name: { type: "string", default: "functions" }, check: { type: "boolean", default: false } } })
if (!/^[a-z0-9_]+$/.test(values.name)) {
  console.error(`--name must be lower-case letters, digits and _ (it becomes the migration's file name): ${values.name}`)
  process.exit(2)
}

/** A fresh database to migrate, and how to get rid of it. */
const scratchDatabase = async (): Promise<{ url: string; drop: () => Promise<void> }> => {
  const server = process.env.DATABASE_URL
  if (server) {
    const name = `cairn_functions_${process.pid}_${Date.now().toString(36)}`
    const admin = new pg.Client({ connectionString: server })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    const url = new URL(server)
    url.pathname = `/${name}`
    return {
      url: url.toString(),
      drop: async () => {
        const c = new pg.Client({ connectionString: server })
        await c.connect()
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => c.end())
      }
    }
  }
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-functions-"))
  await fs.chmod(root, 0o777) // the server runs as the OS user postgres when we are root
  const pgServer = await startEmbedded(path.join(root, "data"), { settings: { fsync: "off" } })
  return {
    url: pgServer.url,
    drop: async () => {
      await pgServer.stop()
      await fs.rm(root, { recursive: true, force: true })
    }
  }
}

const checkDatabase = async (url: string): Promise<Check> => {
  await Effect.runPromise(runMigrations(url))
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await checkSqlFiles(client, await findSqlFiles())
  } finally {
    await client.end()
  }
}

const journal = async () =>
  (JSON.parse(await fs.readFile(path.join(migrationsFolder, "meta", "_journal.json"), "utf8")) as { entries: Array<{ tag: string }> }).entries

/** An empty custom migration from drizzle-kit (journal entry and snapshot are its own); its path. */
const newCustomMigration = async (name: string) => {
  const before = new Set((await journal()).map((e) => e.tag))
  await promisify(execFile)(path.join(projectRoot, "node_modules", ".bin", "drizzle-kit"), ["generate", "--custom", "--name", name], { cwd: projectRoot })
  const added = (await journal()).filter((e) => !before.has(e.tag))
  if (added.length !== 1) throw new Error(`drizzle-kit generate --custom added ${added.length} journal entries, expected 1`)
  return path.join(migrationsFolder, `${added[0]!.tag}.sql`)
}

const main = async () => {
  const scratch = await scratchDatabase()
  try {
    const check = await checkDatabase(scratch.url)
    const blocking = blockingProblems(check)
    if (blocking.length > 0) {
      console.error(`The files under src/**/sql/ cannot be turned into a migration:\n${blocking.map((p) => `  - ${p}`).join("\n")}`)
      console.error(
        "A file that does not apply: fix it; CREATE OR REPLACE cannot drop anything, change a function's return type or its\n" +
          "argument names: do that first in a hand-written migration (npx drizzle-kit generate --custom --name ...).\n" +
          "An object no file defines: add its file under src/<module>/sql/, or drop it in a hand-written migration.\n" +
          "An object two files define: keep it in one. A file that defines nothing: remove it."
      )
      return 1
    }
    const changed = changedFiles(check)
    if (changed.length === 0) {
      console.log(`The migrations define the functions and triggers of all ${check.applied.length} files as the files do: no migration needed.`)
      return 0
    }
    for (const p of problems(check)) console.log(`  - ${p}`)
    if (values.check) {
      console.error(`${changed.length} file(s) differ from the migrations: run npm run db:functions.`)
      return 1
    }
    const file = await newCustomMigration(values.name)
    const header = [
      "-- Written by `npm run db:functions`: the current definitions of",
      ...changed.map((f) => `--   ${f.path}`),
      "-- Read and change them there; this migration is history (drizzle/README.md).",
      ""
    ].join("\n")
    await fs.writeFile(file, header + changed.map((f) => f.text.trimEnd() + "\n").join("--> statement-breakpoint\n"))
    const again = problems(await checkDatabase(scratch.url))
    if (again.length > 0) throw new Error(`${file} does not reproduce the files:\n${again.join("\n")}`)
    console.log(`wrote ${path.relative(projectRoot, file)} with ${changed.length} file(s); migrated again: no difference left.`)
    return 0
  } finally {
    await scratch.drop()
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
