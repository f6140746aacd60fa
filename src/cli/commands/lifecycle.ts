/**
 * Commands of the lifecycle: `purge` (history.purge) and what `gc` and `repo versions delete`
 * share with it: run one task and print its `report` output.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Console, Effect, Option } from "effect"
import type { CairnClientShape } from "../../client/effect.js"
import { awaitFuture } from "../../client/graphs.js"
import { common, type Common, fields, parseDuration, printJson, withClient } from "../common.js"
import { requireSuccess, submitAndFollow, waitForGraph } from "../follow.js"

export const wait = Options.boolean("wait").pipe(
  Options.withAlias("w"),
  Options.withDescription("Follow the graph to its end (a live view on a terminal); exit 0 only if it succeeded.")
)

/** A task's report (`{ key: value }`) as aligned `key: value` lines; nested values as JSON. */
export const reportLines = (value: unknown) =>
  value !== null && typeof value === "object"
    ? fields(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]))
    : JSON.stringify(value)

/** Print the `report` output of a settled task (the graph has succeeded). */
export const printReport = (client: CairnClientShape, reportFuture: string) =>
  Effect.flatMap(awaitFuture(client, reportFuture), (f) => Console.log(reportLines(f.value)))

/**
 * Submit a one-node graph (`node` runs `task` with `params`); with `wait`, follow it and print its
 * report, failing unless it succeeded.
 */
export const runReporting = (
  client: CairnClientShape,
  c: Pick<Common, "json">,
  wait: boolean,
  label: string,
  task: string,
  params: Record<string, unknown>,
  priority: Option.Option<number> = Option.none()
) =>
  Effect.gen(function*() {
    const node = { task, params, ...(Option.isSome(priority) ? { priority: priority.value } : {}) }
    const done = yield* submitAndFollow(client, { label, nodes: { run: node } }, c, wait)
    if (done === undefined || c.json) return
    yield* printReport(client, done.nodes.run!.outputs.report!)
  })

/** Follow an already submitted graph whose `task` has a `report` output (as submitAndFollow does with `wait`). */
export const followReporting = (client: CairnClientShape, c: Pick<Common, "json">, graph: string, task: string) =>
  Effect.gen(function*() {
    const final = yield* waitForGraph(client, graph, c)
    if (c.json) yield* printJson(final)
    yield* requireSuccess(final)
    if (c.json) return
    const view = Object.values(final.nodes).find((t) => t.id === task)
    if (view?.outputs.report) yield* printReport(client, view.outputs.report)
  })

const olderThan = Options.text("older-than").pipe(
  Options.withDescription("Purge history older than this (30d, 12h, 0s, ...); default: the task's (30 days)."),
  Options.optional
)

export const purgeCommand = Command.make("purge", { ...common, wait, olderThan }, (c) =>
  withClient(c, (client) =>
    Effect.gen(function*() {
      const seconds = Option.isSome(c.olderThan) ? yield* parseDuration(c.olderThan.value, "--older-than") : undefined
      yield* runReporting(client, c, c.wait, "history purge", "history.purge", seconds === undefined ? {} : { older_than_seconds: Math.round(seconds) })
    })
  )).pipe(Command.withDescription(
    "Delete history (a history.purge task): graphs whose tasks all settled longer ago than --older-than, with their tasks " +
      "and futures (those a kept version, a served publication or unsettled work still holds stay), and superseded " +
      "revisions. Purged graphs, tasks and futures answer 404 afterwards."
  ))
