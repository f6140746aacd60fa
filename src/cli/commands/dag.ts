/**
 * `cairn dag <id>` (also `npm run dag`): the debug view of a graph, drawn by src/dag (loader,
 * model, renderers), with --watch redrawing it until every task has settled.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect } from "effect"
import { httpSource } from "../../dag/http-source.js"
import { allSettled, buildModel, DagError, type DagModel, loadSnapshot, type Source } from "../../dag/model.js"
import { FORMATS, render } from "../../dag/render.js"
import { CliError, common, connection, isTty, parseId, useColor } from "../common.js"

const options = {
  ...common,
  id: Args.text({ name: "id" }).pipe(Args.withDescription("A graph, task or future id (a task or future shows its whole graph).")),
  format: Options.choice("format", FORMATS).pipe(
    Options.withAlias("f"),
    Options.withDescription("text, mermaid, dot or json (--json is --format json)."),
    Options.withDefault("text" as const)
  ),
  watch: Options.boolean("watch").pipe(Options.withAlias("w"), Options.withDescription("Redraw every second until every task has settled.")),
  depth: Options.integer("depth").pipe(Options.withDescription("How far to follow \"waits for\" chains."), Options.withDefault(10)),
  db: Options.boolean("db").pipe(Options.withDescription("Read the database (DATABASE_URL or the embedded server) instead of the API."))
}

/** The dag modules speak promises and DagError; here they become Effects and CliError. */
const attempt = <A>(f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (e) => new CliError({ message: e instanceof DagError ? e.message : `dag: ${(e as Error).message}`, exitCode: e instanceof DagError ? e.exitCode : 1 })
  })

const openSource = (c: Parameters<typeof connection>[0] & { readonly db: boolean }) =>
  c.db
    ? attempt(async () => (await import("../../dag/db-source.js")).dbSource())
    : Effect.map(connection(c), (conn): Source => httpSource({ baseUrl: conn.url, token: conn.token }))

export const dagCommand = Command.make("dag", options, (c) =>
  Effect.gen(function*() {
    const id = yield* parseId(c.id, "graph, task or future")
    if (c.depth < 1 || c.depth > 1000) {
      return yield* new CliError({ message: `--depth must be a whole number from 1 to 1000, not ${c.depth}`, exitCode: 2 })
    }
    const format = c.json ? "json" : c.format
    const tty = isTty()
    const textOptions = { color: format === "text" && useColor(), depth: c.depth }
    const source = yield* openSource(c)
    const snapshot = attempt(async () => buildModel(await loadSnapshot(source, id, { depth: c.depth })))
    const frameKey = (m: DagModel) =>
      JSON.stringify([...m.tasks.values()].map((t) => [t.id, t.state, t.waiting_on, t.progress, t.attempts, t.worker]))

    let last: string | undefined
    const step: Effect.Effect<void, CliError> = Effect.gen(function*() {
      const model = yield* snapshot
      const frame = render(model, format, textOptions)
      const done = allSettled(model)
      if (!c.watch) return yield* Effect.sync(() => process.stdout.write(frame))
      if (tty) {
        yield* Effect.sync(() => process.stdout.write(`\x1b[2J\x1b[H${frame}${done ? "" : "\n(watching; Ctrl-C to stop)\n"}`))
      } else if (frameKey(model) !== last) {
        // Not a terminal: a new frame only when something other than the clock changed.
        yield* Console.log(`${last === undefined ? "" : "\n"}${frame.trimEnd()}`)
        last = frameKey(model)
      }
      if (!done) yield* Effect.zipRight(Effect.sleep("1 second"), Effect.suspend(() => step))
    })
    yield* step.pipe(Effect.ensuring(Effect.promise(() => source.close())))
  })).pipe(Command.withDescription("Draw a graph and explain what each task waits for (text, mermaid, dot or json)."))
