/**
 * `cairn schedule create|show|list|update|delete|revisions|graphs`: graphs submitted at each tick of a
 * cron expression, once across the cluster. show/list/delete/revisions are the other named kinds'
 * (named.ts); create and update take the graph from a file or stdin, as `cairn submit` does.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import { named, type PatchOf } from "../../client/named.js"
import { CliError, common, output, table, withClient } from "../common.js"
import { group } from "../group.js"
import { readGraph } from "./graphs.js"
import { ifMatch, type Kind, nameArg, sharedCommands } from "./named.js"

const scheduleKind: Kind<"schedules"> = {
  command: "schedule",
  group: "schedules",
  noun: "schedule",
  columns: ["cron", "timezone", "enabled", "next_run", "last_graph"]
}

const graphFile = Args.text({ name: "graph.json" }).pipe(
  Args.withDescription("The graph to submit at each tick (the body of POST /api/v1/graphs), or - for stdin.")
)
const cron = Options.text("cron").pipe(
  Options.withDescription("A 5-field cron expression: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\".")
)
const timezone = Options.text("timezone").pipe(
  Options.withDescription("The IANA time zone the expression is read in, e.g. Europe/Berlin (default UTC)."),
  Options.optional
)
const enabled = Options.boolean("enabled").pipe(Options.withDescription("Submit at each tick (the default for a new schedule)."))
const disabled = Options.boolean("disabled").pipe(Options.withDescription("Submit nothing until enabled again."))

/** --enabled / --disabled as a value: neither (undefined), or one of them; both is a usage error. */
const enabledFrom = (c: { readonly enabled: boolean; readonly disabled: boolean }) =>
  c.enabled && c.disabled
    ? Effect.fail(new CliError({ message: "give --enabled or --disabled, not both", exitCode: 2 }))
    : Effect.succeed(c.enabled ? true : c.disabled ? false : undefined)

const graphOf = (raw: unknown) => raw as PatchOf<"schedules">["graph"] & object

const create = Command.make(
  "create",
  { ...common, name: nameArg(scheduleKind), graph: graphFile, cron, timezone, enabled, disabled },
  (c) =>
    Effect.gen(function*() {
      const on = yield* enabledFrom(c)
      const graph = yield* readGraph(c.graph)
      yield* withClient(c, (client) =>
        Effect.flatMap(
          named(client, "schedules").create({
            name: c.name,
            cron: c.cron,
            graph: graphOf(graph),
            ...(Option.isSome(c.timezone) ? { timezone: c.timezone.value } : {}),
            ...(on === undefined ? {} : { enabled: on })
          }),
          (v) => output(c, v, () => `created schedule ${v.name} (revision ${v.revision}); next run ${v.next_run ?? "none (disabled)"}`)
        ))
    })
).pipe(Command.withDescription(
  "Create a schedule: submit the graph at each tick of --cron, once across all worker processes (the graph is checked now, like `cairn submit` would)."
))

const update = Command.make(
  "update",
  {
    ...common,
    name: nameArg(scheduleKind),
    ifMatch,
    graph: graphFile.pipe(Args.optional),
    cron: cron.pipe(Options.optional),
    timezone,
    enabled,
    disabled
  },
  (c) =>
    Effect.gen(function*() {
      const on = yield* enabledFrom(c)
      const patch: PatchOf<"schedules"> = {
        ...(Option.isSome(c.graph) ? { graph: graphOf(yield* readGraph(c.graph.value)) } : {}),
        ...(Option.isSome(c.cron) ? { cron: c.cron.value } : {}),
        ...(Option.isSome(c.timezone) ? { timezone: c.timezone.value } : {}),
        ...(on === undefined ? {} : { enabled: on })
      }
      if (Object.keys(patch).length === 0) {
        return yield* new CliError({ message: "nothing to change: give a graph file, --cron, --timezone, --enabled or --disabled", exitCode: 2 })
      }
      yield* withClient(c, (client) =>
        Effect.flatMap(named(client, "schedules").update(c.name, patch, Option.getOrUndefined(c.ifMatch)), (v) =>
          output(c, v, () => `schedule ${c.name} is at revision ${v.revision}; next run ${v.next_run ?? "none (disabled)"}`)))
    })
).pipe(Command.withDescription("Change a schedule: a new revision (the old one stays), in effect from the next tick."))

const graphs = Command.make(
  "graphs",
  {
    ...common,
    name: nameArg(scheduleKind),
    limit: Options.integer("limit").pipe(Options.withDescription("At most this many ticks (1..1000, default 100)."), Options.optional)
  },
  (c) =>
    withClient(c, (client) =>
      Effect.flatMap(
        client.call((api) =>
          api.schedules.graphs({ path: { name: c.name }, urlParams: Option.isSome(c.limit) ? { limit: c.limit.value } : {} })
        ),
        (ticks) =>
          output(c, ticks, () =>
            ticks.length === 0
              ? `schedule ${c.name} has claimed no tick yet`
              : table([["tick", "graph"], ...ticks.map((t) => [t.tick, t.graph ?? `none: ${t.error?.message ?? ""}`])]))
      ))
).pipe(Command.withDescription("List the ticks a schedule claimed, newest first, with the graph each submitted (or why none)."))

export const scheduleCommands = group("schedule", "Schedules: create, show, list, update, delete, revisions, graphs.", [
  create,
  ...sharedCommands(scheduleKind),
  update,
  graphs
])
