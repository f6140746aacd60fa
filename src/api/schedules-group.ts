/**
 * /api/v1/schedules: named, copy-on-write schedules, with the same operations as the other named
 * resources (the factory in named-groups.ts). A schedule submits its graph at each tick of its cron
 * expression, once across the whole cluster (DESIGN.md, "Schedules").
 */
import { HttpApiEndpoint, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { makeGroup, NamePath, viewOf } from "./named-groups.js"
import { GraphSubmission, strict } from "./schemas.js"

const Timestamp = Schema.String.annotations({ description: "RFC 3339 timestamp, UTC", format: "date-time" })

export const ScheduleFields = {
  cron: Schema.String.pipe(Schema.maxLength(200)).annotations({
    description:
      "a 5-field cron expression: minute hour day-of-month month day-of-week (`0 3 * * *`: every day at 03:00). " +
      "A day given in both day fields matches either. An expression that can never fire is refused."
  }),
  timezone: Schema.optional(
    Schema.String.pipe(Schema.maxLength(100)).annotations({
      description: "the IANA time zone the expression is read in (default UTC). Across daylight-saving changes an " +
        "expression with a single minute and hour runs once a day (a skipped time runs at the end of the gap); " +
        "an interval expression skips missing times and runs at both instants of a repeated one."
    })
  ),
  graph: GraphSubmission.annotations({
    description: "the graph to submit at each tick, as the body of POST /graphs; checked like it when the schedule is " +
      "written (400 naming every offending node, nothing written). Named resources in it resolve at each tick. " +
      "Each submitted graph is labelled `<schedule name> <tick time>`."
  }),
  enabled: Schema.optional(Schema.Boolean.annotations({ description: "false: submit nothing (default true)" }))
}

const TickError = Schema.Struct({
  code: Schema.String,
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}).annotations({ identifier: "ScheduleTickError" })

export const ScheduleView = viewOf("Schedule", {
  cron: Schema.String.annotations({ description: "the 5-field cron expression of this revision" }),
  timezone: Schema.String.annotations({ description: "the IANA time zone the expression is read in" }),
  graph: GraphSubmission.annotations({ description: "the graph this revision submits at each of its ticks" }),
  enabled: Schema.Boolean.annotations({ description: "false: this revision submits nothing" }),
  next_run: Schema.optional(Schema.NullOr(Timestamp)).annotations({
    description: "the next tick after now; null while disabled. On the current revision only (not in /revisions)."
  }),
  last_tick: Schema.optional(Schema.NullOr(Timestamp)).annotations({
    description: "the latest tick claimed (an addition to the contract); null before the first. Current revision only."
  }),
  last_graph: Schema.optional(Schema.NullOr(Schema.String)).annotations({
    description: "the graph the latest tick submitted; null before the first tick or when it submitted none. Current revision only."
  }),
  last_error: Schema.optional(Schema.NullOr(TickError)).annotations({
    description: "why the latest tick submitted no graph (its graph was refused at the tick; an addition to the contract)."
  })
})

export const ScheduleTick = Schema.Struct({
  tick: Timestamp.annotations({ description: "the tick, RFC 3339 UTC" }),
  graph: Schema.NullOr(Schema.String).annotations({ description: "the graph the tick submitted (labelled `<name> <tick>`); null when it submitted none" }),
  error: Schema.NullOr(TickError).annotations({ description: "why the tick submitted no graph: its graph was refused at the tick" })
}).annotations({ identifier: "ScheduleTick" })

const TicksQuery = Schema.Struct({
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000))).annotations({
    description: "at most this many ticks (1..1000, default 100)"
  }),
  before: Schema.optional(Schema.String).annotations({
    description: "only ticks before this time (RFC 3339): the next page starts before the last tick of this one"
  })
}).annotations(strict)

export const SchedulesGroup = makeGroup("schedules", "schedules", ScheduleFields, ScheduleView, {
  create: "Create a schedule. Its first tick is the first time its cron expression matches after now. " +
    "A duplicate name: 409. Invalid cron or time zone, or a graph POST /graphs would refuse: 400 naming the field " +
    "(`details.fields`) and the graph's offending nodes (`details.nodes`); nothing is written.",
  list: "Every schedule's current revision, by name, with next_run and its latest tick.",
  get: "The current revision, with `next_run` and what its latest tick did (`last_tick`, `last_graph`, `last_error`).",
  revisions: "Every revision, newest first. A tick submits the graph of the revision current at that tick.",
  update: "A new revision from the current one with these fields changed; it takes effect from the next tick. With " +
    "`if-match: <revision>`: 412 if the schedule has moved on since. `enabled: false` stops submissions from the " +
    "moment this answers.",
  delete: "Delete the schedule: no tick submits anything after this answers; graphs already submitted run on."
}).add(
  HttpApiEndpoint.get("graphs", "/schedules/:name/graphs").setPath(NamePath).setUrlParams(TicksQuery)
    .addSuccess(Schema.Array(ScheduleTick))
    .annotate(
      OpenApi.Description,
      "The ticks the schedule claimed, newest first, each with the graph it submitted or why it submitted none. " +
        "A tick goes from this list when its graph is purged (history.purge). Unknown schedule: 404."
    )
).annotate(
  OpenApi.Description,
  "Schedules submit a graph at each tick of a cron expression, exactly once across all worker processes. A tick missed " +
    "while no worker ran is submitted once when one starts (only the latest missed tick)."
)
