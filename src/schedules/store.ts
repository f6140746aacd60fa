/**
 * Schedules as named resources: create, get, list, revisions, update (compare-and-swap on
 * `if-match`), delete. The copy-on-write part is src/content/named.ts's, as for repositories; what
 * is a schedule's own is here: its fields are checked before anything is written (the cron
 * expression, the time zone, and the graph exactly as POST /graphs checks it, without submitting
 * it), and the current revision is shown with its status: `next_run` and what its latest tick did.
 */
import { sql } from "drizzle-orm"
import { Effect, Either } from "effect"
import { Db } from "../db/client.js"
import { InvalidRequest, NotFound } from "../engine/errors.js"
import { prepareGraph } from "../engine/submit.js"
import { createNamed, deleteNamed, getNamed, listNamed, listRevisions, type RevisionView, updateNamed } from "../content/named.js"
import { SchedulerClock } from "./clock.js"
import { cronProblem, formatTick, timezoneProblem } from "./cron.js"
import { nextRun } from "./due.js"
import type { ScheduleFields, ScheduleRevisionView } from "./revisions.js"

export type { ScheduleFields, ScheduleRevisionView } from "./revisions.js"

export interface ScheduleCreate {
  readonly name: string
  readonly cron: string
  readonly timezone?: string | undefined
  readonly graph: ScheduleFields["graph"]
  readonly enabled?: boolean | undefined
}

export type SchedulePatch = Partial<ScheduleFields>

/** The current revision, and what the scheduler makes of it. */
export interface ScheduleView extends ScheduleRevisionView {
  /** The next tick after now; null while disabled, or when the expression never fires again. */
  readonly next_run: string | null
  /** The latest tick claimed, whether or not it submitted a graph. */
  readonly last_tick: string | null
  /** The graph the latest tick submitted (null before the first tick, when it submitted none, or once purged). */
  readonly last_graph: string | null
  /** Why the latest tick submitted no graph: its graph was refused at the tick. */
  readonly last_error: { readonly code: string; readonly message: string; readonly details?: unknown } | null
}

export const DEFAULT_TIMEZONE = "UTC"

/**
 * Every problem of the fields given (a patch gives some), in one InvalidRequest: `details.fields`
 * names the fields (`cron`, `timezone`, `graph`), `details.nodes` is the graph's own answer.
 */
const check = (fields: SchedulePatch) =>
  Effect.gen(function*() {
    const problems: Record<string, string> = {}
    if (fields.cron !== undefined) {
      const p = cronProblem(fields.cron)
      if (p !== undefined) problems.cron = p
    }
    if (fields.timezone !== undefined) {
      const p = timezoneProblem(fields.timezone)
      if (p !== undefined) problems.timezone = p
    }
    let nodes: unknown
    if (fields.graph !== undefined) {
      const graph = yield* Effect.either(prepareGraph(fields.graph))
      if (Either.isLeft(graph)) {
        const e = graph.left
        if (e._tag !== "InvalidRequest") return yield* e
        problems.graph = e.message
        nodes = (e.details as { nodes?: unknown } | undefined)?.nodes
      }
    }
    const sentences = Object.values(problems)
    if (sentences.length === 0) return
    return yield* new InvalidRequest({
      message: sentences.join("; "),
      details: nodes === undefined ? { fields: problems } : { fields: problems, nodes }
    })
  })

interface StateRow {
  readonly schedule_id: string
  readonly tick: string | Date
  readonly graph_id: string | null
  readonly error: ScheduleView["last_error"]
}

/** The current revisions `views`, with next_run and their latest ticks. */
const withStatus = (views: ReadonlyArray<RevisionView>) =>
  Effect.gen(function*() {
    if (views.length === 0) return []
    const db = yield* Db
    const now = yield* (yield* SchedulerClock).now
    const rows = yield* db.rows<StateRow>(sql`
      SELECT s.schedule_id, s.tick, t.graph_id, t.error
      FROM schedule_state s LEFT JOIN schedule_ticks t ON t.schedule_id = s.schedule_id AND t.tick = s.tick
      WHERE s.schedule_id = ANY(${sql.param(views.map((v) => v.id))}::text[])`)
    const state = new Map(rows.map((r) => [r.schedule_id, r]))
    return views.map((view): ScheduleView => {
      const v = view as unknown as ScheduleRevisionView
      const s = state.get(v.id)
      const next = nextRun({ ...v, createdAt: Date.parse(v.created_at) }, now)
      return {
        ...v,
        next_run: next === undefined ? null : formatTick(next),
        last_tick: s ? formatTick(new Date(s.tick).getTime()) : null,
        last_graph: s?.graph_id ?? null,
        last_error: s?.error ?? null
      }
    })
  })

const one = (view: RevisionView) => Effect.map(withStatus([view]), (vs) => vs[0]!)

export const createSchedule = (body: ScheduleCreate) =>
  Effect.gen(function*() {
    const fields: ScheduleFields = {
      cron: body.cron,
      timezone: body.timezone ?? DEFAULT_TIMEZONE,
      graph: body.graph,
      enabled: body.enabled ?? true
    }
    yield* check(fields)
    return yield* one(yield* createNamed("schedule", body.name, { ...fields }))
  })

export const getSchedule = (name: string) => Effect.flatMap(getNamed("schedule", name), one)

export const listSchedules = () => Effect.flatMap(listNamed("schedule"), withStatus)

/** Every revision, newest first, as it was written (no status: that belongs to the current one). */
export const scheduleRevisions = (name: string) =>
  Effect.map(listRevisions("schedule", name), (vs) => vs as unknown as ReadonlyArray<ScheduleRevisionView>)

/** A new revision with `patch` applied; with `ifMatch`, only if the name is still at that revision. */
export const updateSchedule = (name: string, patch: SchedulePatch, ifMatch: string | undefined) =>
  Effect.gen(function*() {
    yield* check(patch)
    return yield* one(yield* updateNamed("schedule", name, { ...patch }, ifMatch))
  })

/** A claimed tick and what it did: the graph it submitted, or why it submitted none. */
export interface ScheduleTickView {
  readonly tick: string
  readonly graph: string | null
  readonly error: ScheduleView["last_error"]
}

export const DEFAULT_TICKS_LIMIT = 100

/**
 * The ticks schedule `name` claimed, newest first, at most `limit`, before tick `before` if given
 * (the next page: the last tick of this one). A tick whose graph was purged is gone with it.
 */
export const scheduleTicks = (name: string, page: { readonly limit?: number | undefined; readonly before?: string | undefined } = {}) =>
  Effect.gen(function*() {
    const db = yield* Db
    const before = page.before === undefined ? undefined : Date.parse(page.before)
    if (before !== undefined && Number.isNaN(before)) {
      return yield* new InvalidRequest({ message: `before ${JSON.stringify(page.before)} is not an RFC 3339 timestamp` })
    }
    const [n] = yield* db.rows<{ id: string }>(sql`SELECT resource_id AS id FROM names WHERE kind = 'schedule' AND name = ${name}`)
    if (n === undefined) return yield* new NotFound({ message: `no schedule named ${name}` })
    const rows = yield* db.rows<{ tick: string | Date; graph_id: string | null; error: ScheduleView["last_error"] }>(sql`
      SELECT tick, graph_id, error FROM schedule_ticks
      WHERE schedule_id = ${n.id} ${before === undefined ? sql`` : sql`AND tick < ${new Date(before).toISOString()}::timestamptz`}
      ORDER BY tick DESC LIMIT ${page.limit ?? DEFAULT_TICKS_LIMIT}`)
    return rows.map((r): ScheduleTickView => ({ tick: formatTick(new Date(r.tick).getTime()), graph: r.graph_id, error: r.error }))
  })

/** The name is freed at once; no tick submits anything after this commits (src/schedules/ticks.ts). */
export const deleteSchedule = (name: string) => deleteNamed("schedule", name)
