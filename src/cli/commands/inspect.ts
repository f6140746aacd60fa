/**
 * Commands that look at (or stop) work already submitted: `status`, `cancel`, `wait`, `workers`.
 * An id may name a graph, a task or a future; the API is asked in that order.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Duration, Effect, Option } from "effect"
import type { CairnClientShape } from "../../client/effect.js"
import type { CairnError } from "../../client/errors.js"
import { awaitFuture, type FutureView, type GraphView, type TaskView } from "../../client/graphs.js"
import { CliError, common, fields, isTty, output, parseDuration, parseId, printJson, table, useColor, withClient } from "../common.js"
import { finalLine, liveFrame, progressText } from "../display.js"

/** Some(answer), or None when the API says 404. */
const unlessMissing = <A>(call: Effect.Effect<A, CairnError>) =>
  call.pipe(
    Effect.map(Option.some),
    Effect.catchIf((e) => e.code === "not_found", () => Effect.succeed(Option.none<A>()))
  )

const notKnown = (client: CairnClientShape, id: string, what: string) =>
  new CliError({ message: `${id} is not a ${what} known to ${client.url}` })

// ---- status ---------------------------------------------------------------------------------------

const showGraph = (g: GraphView) => {
  const now = Date.now()
  const frame = liveFrame(g, now, { color: useColor(), width: isTty() ? process.stdout.columns || 100 : 400 })
  return [...frame, ...(g.state === "succeeded" || g.state === "failed" || g.state === "canceled" ? [finalLine(g, now)] : [])].join("\n")
}

const showTask = (t: TaskView) =>
  fields([
    ["task", t.id],
    ["kind", t.task],
    ["graph", `${t.graph} (node ${t.node})`],
    ["state", t.state],
    ["worker", t.worker],
    ["attempts", `${t.attempts} of ${t.max_attempts}`],
    ["priority", t.priority === 0 ? undefined : String(t.priority)],
    ["progress", progressText(t) || undefined],
    ["created", t.created_at],
    ["started", t.started_at],
    ["finished", t.finished_at],
    ["error", t.error === undefined ? undefined : `${t.error.code}: ${t.error.message}`],
    ["cause task", t.error?.cause_task],
    ...Object.entries(t.outputs).map(([name, f]) => [`output ${name}`, f] as const),
    ...t.waiting_on.map((w) =>
      ["waiting on", w.reason === "retry" ? `retry at ${w.retry_at}` : `${w.task} (${w.reason}${w.key ? ` ${w.key}` : ""})`] as const
    )
  ])

const showFuture = (f: FutureView) =>
  fields([
    ["future", f.id],
    ["kind", f.kind],
    ["state", f.state],
    ["producer", f.producer],
    ["created", f.created_at],
    ["settled", f.settled_at],
    ["value", f.value === undefined ? undefined : JSON.stringify(f.value)],
    ["error", f.error === undefined ? undefined : `${f.error.code}: ${f.error.message}`]
  ])

const status = Command.make(
  "status",
  { ...common, id: Args.text({ name: "id" }).pipe(Args.withDescription("A graph, task or future id.")) },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const id = yield* parseId(c.id, "graph, task or future")
        const graph = yield* unlessMissing(client.call((api) => api.graphs.get({ path: { id }, urlParams: {}, headers: {} })))
        if (Option.isSome(graph)) return yield* output(c, { graph: graph.value }, () => showGraph(graph.value))
        const task = yield* unlessMissing(client.call((api) => api.tasks.get({ path: { id } })))
        if (Option.isSome(task)) return yield* output(c, { task: task.value }, () => showTask(task.value))
        const future = yield* unlessMissing(client.call((api) => api.futures.get({ path: { id }, urlParams: {} })))
        if (Option.isSome(future)) return yield* output(c, { future: future.value }, () => showFuture(future.value))
        return yield* notKnown(client, id, "graph, task or future")
      })
    )
).pipe(Command.withDescription("Show a graph (every task), a task or a future. --json prints { graph | task | future: <view> }."))

// ---- cancel ---------------------------------------------------------------------------------------

const cancel = Command.make(
  "cancel",
  { ...common, id: Args.text({ name: "id" }).pipe(Args.withDescription("A graph or task id.")) },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const id = yield* parseId(c.id, "graph or task")
        const graph = yield* unlessMissing(client.call((api) => api.graphs.cancel({ path: { id } })))
        if (Option.isSome(graph)) {
          return yield* output(c, { graph: graph.value }, () => `cancel requested: graph ${id} is ${graph.value.state}`)
        }
        const task = yield* unlessMissing(client.call((api) => api.tasks.cancel({ path: { id } })))
        if (Option.isSome(task)) {
          return yield* output(c, { task: task.value }, () => `cancel requested: task ${id} is ${task.value.state}`)
        }
        return yield* notKnown(client, id, "graph or task")
      })
    )
).pipe(Command.withDescription("Cancel every unsettled task of a graph, or one task (a running task is interrupted)."))

// ---- wait -----------------------------------------------------------------------------------------

const wait = Command.make(
  "wait",
  {
    ...common,
    id: Args.text({ name: "future" }).pipe(Args.withDescription("A future id.")),
    timeout: Options.text("timeout").pipe(Options.withDescription("Give up after this long (30s, 10m, ...)."), Options.optional)
  },
  (c) =>
    withClient(c, (client) =>
      Effect.gen(function*() {
        const id = yield* parseId(c.id, "future")
        const seconds = Option.isSome(c.timeout) ? yield* parseDuration(c.timeout.value, "--timeout") : undefined
        const f = yield* awaitFuture(client, id, { timeout: seconds === undefined ? undefined : Duration.seconds(seconds) })
        // The value is the output (scripts: `cairn wait <id> | jq`); --json gives the whole view.
        yield* c.json ? printJson(f) : f.state === "resolved" ? Console.log(JSON.stringify(f.value ?? null, null, 2)) : Effect.void
        if (f.state !== "resolved") {
          return yield* new CliError({ message: `future ${id} ${f.state}: ${f.error?.message ?? "no reason given"}` })
        }
      })
    )
).pipe(Command.withDescription("Wait for a future to settle; print its value, or fail with its error."))

// ---- workers --------------------------------------------------------------------------------------

const ago = (iso: string) => `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 100) / 10)}s ago`

const workers = Command.make("workers", common, (c) =>
  withClient(c, (client) =>
    Effect.flatMap(client.call((api) => api.workers.list()), (ws) =>
      output(c, ws, () =>
        ws.length === 0
          ? "no live workers"
          : table([
            ["name", "host", "pid", "slots", "running", "started", "heartbeat"],
            ...ws.map((w) => [w.name, w.host, String(w.pid), String(w.slots), String(w.running.length), w.started_at, ago(w.last_heartbeat)])
          ])))
  )).pipe(Command.withDescription("List the live workers and what they run."))

export const inspectCommands = [status, cancel, wait, workers] as const
