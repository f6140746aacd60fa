/**
 * The tables of schedules (src/schedules; DESIGN.md, "Schedules"). A schedule is a named resource like a
 * repository: a `resources` row (kind `schedule`) for its identity, a `names` row pointing at its
 * current revision, and immutable revisions here.
 *
 * - `schedule_revisions`: cron, time zone, graph body and `enabled`, as of `created_at`. A revision
 *   owns the ticks after its `created_at` up to the next revision's (the revision current at a tick
 *   is the one whose graph that tick submits). `created_at` is written from the schedulers' clock
 *   (src/schedules/clock.ts) after the name's row is locked, so that ticks and edits are compared on
 *   one clock, and an edit is dated after every claim it waited for.
 * - `schedule_state`: one row per schedule, its latest claimed tick. A scheduler claims tick T by
 *   moving `tick` forward to T with a compare-and-swap in the transaction that writes the graph:
 *   exactly one transaction moves it to T, and none ever moves it back (src/schedules/ticks.ts).
 * - `schedule_ticks`: every claimed tick, keyed by schedule and tick (a second guard: one row per
 *   tick, ever), with the graph it submitted or why it submitted none. A tick's row goes with its
 *   graph when the graph is purged (history.purge), so the history is as long as the graphs'.
 */
import { boolean, index, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core"
import { resources } from "./content-schema.js"
import { graphs } from "./schema.js"

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 6, mode: "date" })

export const scheduleRevisions = pgTable(
  "schedule_revisions",
  {
    id: text("id").primaryKey(),
    scheduleId: text("schedule_id").notNull().references(() => resources.id),
    name: text("name").notNull(),
    cron: text("cron").notNull(),
    timezone: text("timezone").notNull(),
    /** The graph body, as for POST /api/v1/graphs (its `label` is replaced at each tick). */
    graph: jsonb("graph").notNull(),
    enabled: boolean("enabled").notNull(),
    createdAt: ts("created_at").notNull()
  },
  (t) => [index("schedule_revisions_schedule").on(t.scheduleId, t.createdAt)]
)

export const scheduleState = pgTable("schedule_state", {
  scheduleId: text("schedule_id").primaryKey().references(() => resources.id, { onDelete: "cascade" }),
  /** The latest tick claimed: only ever moves forward. */
  tick: ts("tick").notNull()
})

export const scheduleTicks = pgTable(
  "schedule_ticks",
  {
    scheduleId: text("schedule_id").notNull().references(() => resources.id, { onDelete: "cascade" }),
    tick: ts("tick").notNull(),
    /** The graph the tick submitted; null when it submitted none (see `error`). */
    graphId: text("graph_id").references(() => graphs.id, { onDelete: "cascade" }),
    /** Why the tick submitted no graph (its graph was refused at the tick): `{ code, message, details? }`. */
    error: jsonb("error"),
    claimedAt: ts("claimed_at").notNull().defaultNow()
  },
  (t) => [primaryKey({ columns: [t.scheduleId, t.tick] }), index("schedule_ticks_graph").on(t.graphId)]
)
