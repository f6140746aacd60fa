/**
 * The scheduler: every worker process runs one (DESIGN.md, "Schedules"). It keeps no state of its
 * own and elects no leader; every scheduler of the cluster does the same thing, and the claim
 * transaction (ticks.ts) makes sure each tick is submitted once.
 *
 *   pass    read every schedule's current revision and latest claimed tick (one statement); for
 *           each schedule that owes a tick now (due.ts), claim it; then compute the earliest next
 *           tick of all enabled schedules.
 *   sleep   until that tick, or until a schedule changes (the `cairn_schedules` channel: a trigger
 *           on every write of a schedule's name, src/schedules/sql/cairn_schedules_changed.sql),
 *           or a session reconnect (notifications may have been lost), whichever comes first; at
 *           most RECHECK_MS (a slow safety net, one statement a minute).
 *
 * So an idle cluster costs each worker process one statement per tick and one per minute, and a
 * change is seen within a round trip. Time comes from SchedulerClock (clock.ts). Schedulers claim
 * due schedules in a random order of their own, so that when many schedules share a tick the
 * processes mostly take different ones instead of all waiting on the same row.
 */
import { sql } from "drizzle-orm"
import { Cause, Effect, Queue, Random, SubscriptionRef } from "effect"
import { Db } from "../db/client.js"
import { Session } from "../engine/session.js"
import { SchedulerClock } from "./clock.js"
import { formatTick } from "./cron.js"
import { dueTick, nextRun, type RevisionTimes } from "./due.js"
import type { ScheduleFields } from "./revisions.js"
import { claimTick, type TickToClaim } from "./ticks.js"

/** Schedulers' wake-ups: a schedule was created, changed or deleted. */
export const SCHEDULES_CHANNEL = "cairn_schedules"

/** The safety net: a pass at least this often, even when nothing announced a change. */
export const RECHECK_MS = 60_000

/** After a pass fails (database away), wait this long, doubling, up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 500
const MAX_RETRY_MS = 30_000

/** A pass that met a schedule changing under it runs again at once, at most this many times in a row. */
const MAX_RERUNS = 3

export interface SchedulerStatus {
  /** Passes completed. */
  readonly passes: number
  /** The time the latest completed pass ran at: every tick owed then was claimed (by some process). */
  readonly checkedAt: number | undefined
  /** When the scheduler wakes next, unless a change wakes it first. */
  readonly wakeAt: number | undefined
  /**
   * Whether the latest pass settled (claimed everything owed at its time). If it did not, `wakeAt`
   * is its retry, and says nothing about when a tick is owed.
   */
  readonly settled: boolean
  /** Graphs this scheduler submitted. */
  readonly submitted: number
  /**
   * How many schedule changes had been announced to it (`changesAnnounced`) when the latest
   * completed pass started: that pass saw every one of them. For observers that must know a change
   * has been acted on (tests).
   */
  readonly changesSeen: number
}

interface CurrentRow {
  readonly schedule: string
  readonly name: string
  readonly id: string
  readonly created_at: string | Date
  readonly cron: string
  readonly timezone: string
  readonly enabled: boolean
  readonly last_tick: string | Date | null
}

interface RevisionRow {
  readonly id: string
  readonly created_at: string | Date
  readonly cron: string
  readonly timezone: string
  readonly enabled: boolean
}

const ms = (t: string | Date) => new Date(t).getTime()
const firstLine = (cause: Cause.Cause<unknown>) => Cause.pretty(cause).split("\n")[0]
const times = (r: RevisionRow): RevisionTimes => ({ id: r.id, createdAt: ms(r.created_at), cron: r.cron, timezone: r.timezone, enabled: r.enabled })

export const makeScheduler = Effect.gen(function*() {
  const db = yield* Db
  const session = yield* Session
  const clock = yield* SchedulerClock
  const status = yield* SubscriptionRef.make<SchedulerStatus>({
    passes: 0,
    checkedAt: undefined,
    wakeAt: undefined,
    settled: false,
    submitted: 0,
    changesSeen: 0
  })

  const kick = yield* Queue.sliding<void>(1)
  let announced = 0
  yield* session.listen(SCHEDULES_CHANNEL)
  yield* session.onWakeup((w) => {
    // undefined: the session (re)connected; anything may have changed meanwhile.
    if (w.channel !== undefined && w.channel !== SCHEDULES_CHANNEL) return
    announced += 1
    kick.unsafeOffer(undefined)
  })

  const current = db.rows<CurrentRow>(sql`
    SELECT n.resource_id AS schedule, n.name, r.id, r.created_at, r.cron, r.timezone, r.enabled, s.tick AS last_tick
    FROM names n JOIN schedule_revisions r ON r.id = n.revision_id
    LEFT JOIN schedule_state s ON s.schedule_id = n.resource_id
    WHERE n.kind = 'schedule'`)
  const history = (schedule: string) =>
    Effect.map(
      db.rows<RevisionRow>(sql`
        SELECT id, created_at, cron, timezone, enabled FROM schedule_revisions WHERE schedule_id = ${schedule} ORDER BY created_at DESC`),
      (rows) => rows.map(times)
    )
  const claimedTick = (schedule: string) =>
    Effect.map(
      db.rows<{ tick: string | Date }>(sql`SELECT tick FROM schedule_state WHERE schedule_id = ${schedule}`),
      ([r]) => (r === undefined ? undefined : ms(r.tick))
    )
  const graphOf = (revision: string) =>
    Effect.map(
      db.rows<{ graph: ScheduleFields["graph"] }>(sql`SELECT graph FROM schedule_revisions WHERE id = ${revision}`),
      ([r]) => r!.graph
    )

  /** Claims `t` unless someone visibly did already; true when the schedule changed under us. */
  const claim = (t: TickToClaim) =>
    Effect.gen(function*() {
      const claimed = yield* claimedTick(t.schedule)
      // Every scheduler wakes at the same tick: most find it claimed here, before preparing the graph.
      if (claimed !== undefined && claimed >= t.tick) return false
      const result = yield* claimTick(t, { graph: yield* graphOf(t.revision) })
      const at = { schedule: t.name, tick: formatTick(t.tick) }
      switch (result._tag) {
        case "Submitted":
          yield* SubscriptionRef.update(status, (s) => ({ ...s, submitted: s.submitted + 1 }))
          yield* Effect.logInfo(`schedule ${t.name}: tick ${at.tick} submitted graph ${result.graph}`).pipe(Effect.annotateLogs(at))
          return false
        case "Refused":
          yield* Effect.logWarning(`schedule ${t.name}: tick ${at.tick} submitted nothing: ${result.error.message}`).pipe(
            Effect.annotateLogs(at)
          )
          return false
        case "Taken":
          return false
        case "Stale":
          return true
      }
    })

  /** Claims the tick `row`'s schedule owes at `now`, if any; true when the schedule changed under us. */
  const settle = (row: CurrentRow, now: number) =>
    Effect.gen(function*() {
      const lastTick = row.last_tick === null ? undefined : ms(row.last_tick)
      let due = dueTick([times(row)], lastTick, now, false)
      if (due._tag === "NeedHistory") due = dueTick(yield* history(row.schedule), lastTick, now, true)
      return due._tag === "Due"
        ? yield* claim({ schedule: row.schedule, name: row.name, tick: due.tick, revision: due.revision.id })
        : false
    })

  /**
   * One pass at `now`: claims what is owed. Returns the earliest next tick, whether to look again at
   * once (a schedule changed under a claim), and whether a claim failed (the others still went on).
   */
  const pass = (now: number) =>
    Effect.gen(function*() {
      const rows = yield* Random.shuffle(yield* current)
      let next = Infinity
      let again = false
      let failed = false
      for (const row of rows) {
        again ||= yield* settle(row, now).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.sync(() => (failed = true)).pipe(
                Effect.zipRight(Effect.logWarning(`schedule ${row.name}: claiming its tick failed, trying again shortly: ${firstLine(cause)}`))
              ),
              false
            )
          )
        )
        next = Math.min(next, nextRun(times(row), now) ?? Infinity)
      }
      return { next, again, failed }
    })

  const loop = Effect.gen(function*() {
    let failures = 0
    let reruns = 0
    for (;;) {
      const seen = announced
      const now = yield* clock.now
      const outcome = yield* pass(now).pipe(
        Effect.map((r) => ({ ok: !r.failed, ...r })),
        Effect.catchAllCause((cause) =>
          Effect.as(Effect.logWarning(`scheduler: a pass failed, trying again shortly: ${firstLine(cause)}`), { ok: false as const })
        )
      )
      if (outcome.ok && outcome.again && reruns < MAX_RERUNS) {
        reruns += 1
        continue
      }
      reruns = 0
      // Settled: every tick owed at `now` is claimed. A schedule that kept changing under the
      // claims has not settled either: it is looked at again shortly, like a failed pass.
      const settled = outcome.ok && !outcome.again
      if (outcome.ok && outcome.again) yield* Effect.logWarning(`scheduler: schedules kept changing under its claims, trying again shortly`)
      let wakeAt: number
      if (settled) {
        failures = 0
        wakeAt = Math.min(outcome.next, now + RECHECK_MS)
      } else {
        wakeAt = now + Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** failures)
        failures += 1
      }
      yield* SubscriptionRef.update(status, (s) => ({
        ...s,
        passes: s.passes + 1,
        checkedAt: settled ? now : s.checkedAt,
        wakeAt,
        settled,
        changesSeen: settled ? seen : s.changesSeen
      }))
      yield* Effect.raceFirst(clock.sleepUntil(wakeAt), Queue.take(kick))
    }
  })
  yield* Effect.forkScoped(loop)
  return {
    status,
    /** Schedule changes announced to this scheduler so far (see SchedulerStatus.changesSeen). */
    changesAnnounced: () => announced
  }
})

/** Runs a scheduler in this process until the scope closes (the worker processes' wiring: src/main/layers.ts). */
export const runScheduler = Effect.asVoid(makeScheduler)
