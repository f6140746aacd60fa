/**
 * The schedule rule as a model for tests (DESIGN.md, "Schedules"), written from its statement and
 * knowing nothing of croner or of src/schedules/due.ts: cron expressions are `<minute field> * * * *`
 * in UTC, and time is walked a minute at a time.
 */
export const MINUTE = 60_000

/** Minute fields the model understands. */
export const minuteFields = ["*", "*/2", "*/3", "*/7", "0", "13", "5,35", "59"] as const

/** Does minute field `f` match the minute starting at `t`? */
export const matches = (f: string, t: number) => {
  const minute = new Date(t).getUTCMinutes()
  if (f === "*") return true
  if (f.startsWith("*/")) return minute % Number(f.slice(2)) === 0
  return f.split(",").map(Number).includes(minute)
}

export interface ModelRevision {
  readonly id: string
  readonly createdAt: number
  /** The minute field of `<field> * * * *`. */
  readonly field: string
  readonly enabled: boolean
}

/**
 * The tick owed at `now` by a schedule with these revisions (oldest first) whose latest claimed tick
 * is `lastTick`: the latest minute <= now after the last tick whose owner (the revision created last
 * before it) is enabled and matches it; nothing unless the current revision is enabled.
 */
export const modelDue = (revisions: ReadonlyArray<ModelRevision>, lastTick: number | undefined, now: number) => {
  const current = revisions[revisions.length - 1]
  if (current === undefined || !current.enabled) return undefined
  const floor = Math.max(lastTick ?? -Infinity, revisions[0]!.createdAt)
  for (let m = Math.floor(now / MINUTE) * MINUTE; m > floor; m -= MINUTE) {
    const owner = [...revisions].reverse().find((r) => r.createdAt < m)
    if (owner && owner.enabled && matches(owner.field, m)) return { tick: m, revision: owner.id }
  }
  return undefined
}

/** A tick as the API writes it: RFC 3339, UTC, whole seconds. */
export const modelTick = (tick: number) => new Date(tick).toISOString().replace(/\.000Z$/, "Z")

/** The label of a tick's graph: `<name> <tick>`. */
export const modelLabel = (name: string, tick: number) => `${name} ${modelTick(tick)}`
