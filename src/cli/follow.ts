/**
 * `--wait`: follow a graph to its end with the display that fits where stdout goes (a terminal: a
 * block redrawn in place; anything else: a line per change; --json: nothing until the final view),
 * and turn an unsuccessful end into the command's failure.
 */
import { Console, Effect } from "effect"
import type { CairnClientShape } from "../client/effect.js"
import type { CairnError } from "../client/errors.js"
import { followGraph, type GraphView, submitGraph, type SubmittedGraph } from "../client/graphs.js"
import { type Common, CliError, isTty, printJson, table, useColor } from "./common.js"
import { failureSentence, finalLine, liveFrame, LiveScreen, PlainLog } from "./display.js"

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

const write = (s: string) => Effect.sync(() => process.stdout.write(s))

const followLive = (client: CairnClientShape, id: string) => {
  const screen = new LiveScreen(process.stdout)
  const draw = (g: GraphView) =>
    Effect.sync(() => screen.draw(liveFrame(g, Date.now(), { color: useColor(), width: process.stdout.columns || 100 })))
  // The cursor is hidden while the block is redrawn, and comes back however this ends.
  return Effect.acquireUseRelease(write("\x1b[?25l"), () => followGraph(client, id, { onUpdate: draw }), () => write("\x1b[?25h"))
}

const followPlain = (client: CairnClientShape, id: string) => {
  const log = new PlainLog()
  return followGraph(client, id, {
    onUpdate: (g) => Effect.forEach(log.update(g, Date.now()), (line) => Console.log(line), { discard: true })
  })
}

/** Follow graph `id` to its end; the final view, whatever its state. */
export const waitForGraph = (client: CairnClientShape, id: string, c: Pick<Common, "json">): Effect.Effect<GraphView, CairnError> =>
  (c.json ? followGraph(client, id) : isTty() ? followLive(client, id) : followPlain(client, id)).pipe(
    Effect.tap((g) => (c.json ? Effect.void : Console.log(finalLine(g, Date.now())))),
    // Ctrl-C stops the waiting, not the work: say so, and how to stop the work too.
    Effect.onInterrupt(() => Console.error(`cairn: stopped waiting; graph ${id} goes on (\`cairn cancel ${id}\` stops it)`))
  )

/** Succeed with the graph if it succeeded, else fail with one sentence naming the first cause. */
export const requireSuccess = (g: GraphView) =>
  g.state === "succeeded" ? Effect.succeed(g) : Effect.fail(new CliError({ message: failureSentence(g) }))

const describeSubmitted = (s: SubmittedGraph) =>
  [
    `submitted graph ${s.id}`,
    table([
      ["node", "task", "outputs"],
      ...Object.entries(s.nodes).map(([node, n]) => [
        node,
        n.task,
        Object.entries(n.outputs).map(([name, f]) => `${name}=${f}`).join(" ")
      ])
    ])
  ].join("\n")

/**
 * Submit `graph`; without `wait`, print what was created (every id); with it, follow the graph to
 * its end and fail unless it succeeded. With --json the output is the submitted graph, or with
 * `wait` the final graph view (printed before failing, so scripts see the states and errors).
 */
export const submitAndFollow = (client: CairnClientShape, graph: unknown, c: Pick<Common, "json">, wait: boolean) =>
  Effect.gen(function*() {
    const submitted = yield* submitGraph(client, graph)
    if (!wait) {
      yield* c.json ? printJson(submitted) : Console.log(describeSubmitted(submitted))
      return undefined
    }
    if (!c.json) yield* Console.log(`submitted graph ${submitted.id} (${plural(Object.keys(submitted.nodes).length, "task")})`)
    const final = yield* waitForGraph(client, submitted.id, c)
    if (c.json) yield* printJson(final)
    return yield* requireSuccess(final)
  })
