/**
 * Which tick a schedule owes now, and when it next ticks: pure functions of its revisions, its
 * latest claimed tick and the time (DESIGN.md, "Schedules").
 *
 * The rule. A revision owns the ticks of its cron (in its time zone) after its `created_at`, up to
 * and including the `created_at` of the next revision: the tick uses the revision current at the
 * tick, so an edit takes effect at the first tick after it. A disabled revision owns no ticks.
 * At time `now` a schedule owes at most one tick: the latest tick T <= now later than its latest
 * claimed tick, and only while its current revision is enabled (a disabled or deleted schedule
 * submits nothing, not even ticks it missed before). Ticks missed while no scheduler ran are
 * therefore never submitted in a burst: only the latest one is, once.
 */
import { latestTick, nextTick } from "./cron.js"

export interface RevisionTimes {
  readonly id: string
  /** Milliseconds since the epoch. */
  readonly createdAt: number
  readonly cron: string
  readonly timezone: string
  readonly enabled: boolean
}

export type Due =
  | { readonly _tag: "Due"; readonly tick: number; readonly revision: RevisionTimes }
  | { readonly _tag: "None" }
  /** The revisions given do not reach back far enough to tell: ask again with the whole history. */
  | { readonly _tag: "NeedHistory" }

const none: Due = { _tag: "None" }

/**
 * The tick owed at `now`. `revisions` are the schedule's revisions newest first, starting with the
 * current one; `complete` says whether they are all of them (else the answer may be NeedHistory,
 * when a tick of an older revision could be owed).
 */
export const dueTick = (
  revisions: ReadonlyArray<RevisionTimes>,
  lastTick: number | undefined,
  now: number,
  complete: boolean
): Due => {
  const current = revisions[0]
  if (current === undefined || !current.enabled) return none
  const floor = lastTick ?? -Infinity
  let end = now
  for (const r of revisions) {
    if (end <= floor) return none
    if (r.enabled) {
      const tick = latestTick(r, Math.max(r.createdAt, floor), end)
      if (tick !== undefined) return { _tag: "Due", tick, revision: r }
    }
    // Older revisions own only ticks up to this one's creation.
    end = Math.min(end, r.createdAt)
  }
  return complete || end <= floor ? none : { _tag: "NeedHistory" }
}

/** The next tick of the current revision after `now` (undefined when disabled, or it never fires again). */
export const nextRun = (current: RevisionTimes, now: number): number | undefined =>
  current.enabled ? nextTick(current, Math.max(now, current.createdAt)) : undefined
