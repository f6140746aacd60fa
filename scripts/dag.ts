/**
 * `npm run dag -- <graph|task|future id> [--format text|mermaid|dot|json] [--watch] [--db] [--depth N]`
 *
 * The engine's debug view of a graph: every task with its state, timing, worker, attempts, progress,
 * outputs, errors with their cause chains, and for each blocked task what it waits for, recursively,
 * across graphs. Reads the HTTP API at CAIRN_URL (default http://127.0.0.1:8080, bearer CAIRN_TOKEN),
 * or with --db (or CAIRN_URL unset and DATABASE_URL set) the database through the engine's read models.
 */
import { parseArgs } from "node:util"
import { httpSource } from "./dag/http-source.js"
import { allSettled, buildModel, DagError, loadSnapshot, type Source, ULID } from "./dag/model.js"
import { type Format, FORMATS, render } from "./dag/render.js"

const USAGE = "usage: npm run dag -- <graph|task|future id> [--format text|mermaid|dot|json] [--watch] [--db] [--depth N]"

const HELP = `${USAGE}

Draws a cairn graph and explains what each task waits for.

  <id>            a graph, task or future id (ULID); a task or future shows its whole graph
  -f, --format    text (default), mermaid, dot or json
  -w, --watch     redraw every second until every task has settled (Ctrl-C to stop)
      --db        read the database (DATABASE_URL, or the embedded server of CAIRN_DATA_DIR)
                  instead of the HTTP API
      --depth N   how far to follow "waits for" chains (default 10)
  -h, --help      this text

Environment: CAIRN_URL (default http://127.0.0.1:8080), CAIRN_TOKEN (bearer token), DATABASE_URL,
CAIRN_DATA_DIR, NO_COLOR.
`

interface Cli {
  readonly id: string
  readonly format: Format
  readonly watch: boolean
  readonly db: boolean
  readonly depth: number
}

const parseCli = (argv: ReadonlyArray<string>): Cli | "help" => {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: "string", short: "f", default: "text" },
        watch: { type: "boolean", short: "w", default: false },
        db: { type: "boolean", default: false },
        depth: { type: "string", default: "10" },
        help: { type: "boolean", short: "h", default: false }
      }
    })
  } catch (e) {
    // node's messages run on ("To specify a positional argument starting with a '-', ..."): keep the first sentence.
    const first = (e as Error).message.split(/\.(\s|$)/)[0]!
    throw new DagError(`${first}; ${USAGE}`, 2)
  }
  const { values, positionals } = parsed
  if (values.help) return "help"
  if (positionals.length === 0) throw new DagError(`no id given; ${USAGE}`, 2)
  if (positionals.length > 1) throw new DagError(`expected one id, got ${positionals.length} (${positionals.join(" ")}); ${USAGE}`, 2)
  const id = positionals[0]!.trim().toUpperCase()
  if (!ULID.test(id)) throw new DagError(`${JSON.stringify(positionals[0])} is not a cairn id (a ULID: 26 characters, Crockford base32)`, 2)
  const format = values.format as Format
  if (!FORMATS.includes(format)) throw new DagError(`--format must be one of ${FORMATS.join(", ")}, not ${JSON.stringify(values.format)}`, 2)
  const depth = Number(values.depth)
  if (!Number.isInteger(depth) || depth < 1 || depth > 1000) throw new DagError(`--depth must be a whole number from 1 to 1000, not ${JSON.stringify(values.depth)}`, 2)
  return { id, format, watch: values.watch, db: values.db, depth }
}

const env = (name: string) => {
  const v = process.env[name]
  return v === undefined || v.trim() === "" ? undefined : v.trim()
}

const openSource = async (cli: Cli): Promise<Source> => {
  if (cli.db || (env("CAIRN_URL") === undefined && env("DATABASE_URL") !== undefined)) {
    const { dbSource } = await import("./dag/db-source.js")
    return dbSource()
  }
  const url = env("CAIRN_URL") ?? "http://127.0.0.1:8080"
  try {
    const u = new URL(url)
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http")
  } catch {
    throw new DagError(`CAIRN_URL ${JSON.stringify(url)} is not an http(s) URL`, 2)
  }
  return httpSource({ baseUrl: url, token: env("CAIRN_TOKEN") })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const main = async () => {
  const cli = parseCli(process.argv.slice(2))
  if (cli === "help") {
    process.stdout.write(HELP)
    return 0
  }
  const tty = process.stdout.isTTY === true
  const color = tty && cli.format === "text" && env("NO_COLOR") === undefined
  const source = await openSource(cli)
  let stopping = false
  process.on("SIGINT", () => {
    if (stopping) process.exit(130)
    stopping = true
  })
  try {
    let last: string | undefined
    for (;;) {
      const model = buildModel(await loadSnapshot(source, cli.id, { depth: cli.depth }))
      const frame = render(model, cli.format, { color, depth: cli.depth })
      if (!cli.watch) {
        process.stdout.write(frame)
        return 0
      }
      const done = allSettled(model)
      if (tty) process.stdout.write(`\x1b[2J\x1b[H${frame}${done ? "" : "\n(watching; Ctrl-C to stop)\n"}`)
      else {
        // Not a terminal: a new frame only when something other than the clock changed.
        const key = JSON.stringify([...model.tasks.values()].map((t) => [t.id, t.state, t.waiting_on, t.progress, t.attempts, t.worker]))
        if (key !== last) process.stdout.write(`${last === undefined ? "" : "\n"}${frame}`)
        last = key
      }
      if (done) return 0
      for (let i = 0; i < 10 && !stopping; i++) await sleep(100)
      if (stopping) return 130
    }
  } finally {
    await source.close()
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof DagError) {
      process.stderr.write(`dag: ${e.message}\n`)
      process.exit(e.exitCode)
    }
    process.stderr.write(`dag: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`)
    process.exit(1)
  }
)
