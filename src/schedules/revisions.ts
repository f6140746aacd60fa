/**
 * A schedule's revisions in `schedule_revisions`: how src/content/named.ts, which keeps every kind
 * of named resource (names, compare-and-swap, 409 and 412), reads and writes this kind's fields.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../db/client.js"
import { SchedulerClock } from "./clock.js"

/** What a schedule revision holds beside its name; the API's create body without `name`. */
export interface ScheduleFields {
  readonly cron: string
  readonly timezone: string
  /** The graph body, as for POST /api/v1/graphs. */
  readonly graph: { readonly label?: string | undefined; readonly nodes: Readonly<Record<string, unknown>> }
  readonly enabled: boolean
}

export interface ScheduleRevisionView extends ScheduleFields {
  readonly id: string
  readonly name: string
  readonly revision: string
  readonly created_at: string
}

interface Row {
  readonly id: string
  readonly name: string
  readonly revision: string
  readonly created_at: string | Date
  readonly cron: string
  readonly timezone: string
  readonly graph: ScheduleFields["graph"]
  readonly enabled: boolean
}

export const scheduleRevisionView = (tx: Tx, revision: string) =>
  Effect.map(
    txRows<Row>(tx, sql`
      SELECT schedule_id AS id, name, id AS revision, created_at, cron, timezone, graph, enabled
      FROM schedule_revisions WHERE id = ${revision}`),
    ([r]): ScheduleRevisionView | undefined =>
      r && {
        id: r.id,
        name: r.name,
        revision: r.revision,
        created_at: new Date(r.created_at).toISOString(),
        cron: r.cron,
        timezone: r.timezone,
        graph: r.graph,
        enabled: r.enabled
      }
  )

/**
 * Writes revision `revision`. Its `created_at` comes from the schedulers' clock, read now: inside
 * the transaction that holds the name's row lock (a new name's row does not exist yet), so the
 * revision is dated after every tick claim it had to wait for (src/schedules/ticks.ts).
 *
 * A schedule's revisions are dated strictly one after the other: two edits within one millisecond
 * of the clock would otherwise share a `created_at`, and "the revision current at tick T" (the
 * latest created before T) would have no single answer; the later one is dated a millisecond
 * after the earlier. The name's row lock orders the edits, so the previous date read here is final.
 */
export const insertScheduleRevision = (tx: Tx, revision: string, scheduleId: string, name: string, fields: ScheduleFields) =>
  Effect.gen(function*() {
    const now = yield* (yield* SchedulerClock).now
    yield* txRows(tx, sql`
      INSERT INTO schedule_revisions (id, schedule_id, name, cron, timezone, graph, enabled, created_at)
      VALUES (${revision}, ${scheduleId}, ${name}, ${fields.cron}, ${fields.timezone}, ${JSON.stringify(fields.graph)}::jsonb,
              ${fields.enabled},
              GREATEST(${new Date(now).toISOString()}::timestamptz,
                       (SELECT max(created_at) + interval '1 millisecond' FROM schedule_revisions WHERE schedule_id = ${scheduleId})))`)
  })
