/**
 * The pure part of schedules (src/schedules/cron.ts, due.ts): which cron expressions and time zones
 * are accepted, ticks across daylight-saving changes, and which tick a schedule owes, checked as a
 * property against a model that walks minute by minute and knows nothing of croner.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { cronProblem, formatTick, latestTick, nextTick, timezoneProblem } from "../src/schedules/cron.js"
import { dueTick, nextRun, type RevisionTimes } from "../src/schedules/due.js"
import { matches, MINUTE, minuteFields, type ModelRevision, modelDue } from "./support/schedule-model.js"
const at = (iso: string) => Date.parse(iso)
const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString())

/** The ticks of `cron` in `timezone` after `from`, as ISO strings. */
const ticksAfter = (cron: string, timezone: string, from: string, n: number) => {
  const out: Array<string> = []
  let t = at(from)
  for (let i = 0; i < n; i++) {
    t = nextTick({ cron, timezone }, t)!
    out.push(iso(t)!)
  }
  return out
}

describe("cron expressions and time zones", () => {
  it.each(["* * * * *", "0 3 * * *", "*/15 9-17 * * 1-5", "0 0 1 1 *", "0 0 29 2 *", "5 4 * * sun", "0 12 1,15 * 1"])(
    "accepts %j",
    (cron) => {
      expect(cronProblem(cron)).toBeUndefined()
    }
  )

  it.each([
    ["* * * *", "exactly five"],
    ["* * * * * *", "requires exactly 5 parts"],
    ["61 * * * *", "minute: 61"],
    ["", "exactly five"],
    ["a b c d e", "illegal characters"],
    ["*/0 * * * *", "illegal stepping"],
    ["0 0 31 2 *", "never fires"]
  ])("refuses %j, saying why (%s)", (cron, why) => {
    const problem = cronProblem(cron)
    expect(problem).toContain(`cron ${JSON.stringify(cron)}`)
    expect(problem).toContain(why)
  })

  it("accepts IANA time zone names and refuses the rest", () => {
    for (const tz of ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]) expect(timezoneProblem(tz)).toBeUndefined()
    for (const tz of ["Mars/Olympus", "", "+01:00", "Europe/Nowhere"]) expect(timezoneProblem(tz)).toContain(`timezone ${JSON.stringify(tz)}`)
  })

  it("writes ticks as RFC 3339 in UTC, whole seconds", () => {
    expect(formatTick(at("2026-03-08T07:00:00.000Z"))).toBe("2026-03-08T07:00:00Z")
  })
})

describe("ticks in a time zone, across daylight-saving changes", () => {
  // America/New_York in 2026: clocks go 02:00 EST -> 03:00 EDT on 8 March, 02:00 EDT -> 01:00 EST on 1 November.
  it("a daily time that does not exist (spring forward) runs once, at the end of the gap", () => {
    expect(ticksAfter("30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", 4)).toEqual([
      "2026-03-07T07:30:00.000Z", // 02:30 EST
      "2026-03-08T07:00:00.000Z", // 03:00 EDT: 02:30 never happened
      "2026-03-09T06:30:00.000Z", // 02:30 EDT
      "2026-03-10T06:30:00.000Z"
    ])
  })

  it("a daily time that happens twice (fall back) runs once, at its first instant", () => {
    expect(ticksAfter("30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z", 3)).toEqual([
      "2026-10-31T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T05:30:00.000Z", // 01:30 EDT (and not again at 01:30 EST, 06:30Z)
      "2026-11-02T06:30:00.000Z" // 01:30 EST
    ])
  })

  it("an interval runs at both instants of a repeated time, and the schedule's offset follows the zone", () => {
    expect(ticksAfter("*/30 * * * *", "America/New_York", "2026-11-01T04:40:00Z", 5)).toEqual([
      "2026-11-01T05:00:00.000Z", // 01:00 EDT
      "2026-11-01T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T06:00:00.000Z", // 01:00 EST
      "2026-11-01T06:30:00.000Z", // 01:30 EST
      "2026-11-01T07:00:00.000Z" // 02:00 EST
    ])
    // Europe/Berlin goes CET -> CEST on 29 March 2026: 09:00 on weekdays is 08:00Z, then 07:00Z.
    expect(ticksAfter("0 9 * * 1-5", "Europe/Berlin", "2026-03-26T12:00:00Z", 2)).toEqual([
      "2026-03-27T08:00:00.000Z", // Friday, CET
      "2026-03-30T07:00:00.000Z" // Monday, CEST
    ])
  })

  it("the latest missed tick across a gap is the one the next tick would have been", () => {
    const spec = { cron: "30 2 * * *", timezone: "America/New_York" }
    expect(iso(latestTick(spec, at("2026-03-07T12:00:00Z"), at("2026-03-08T12:00:00Z")))).toBe("2026-03-08T07:00:00.000Z")
    // Bounds: after `lo`, up to and including `hi`.
    expect(latestTick(spec, at("2026-03-08T07:00:00Z"), at("2026-03-08T12:00:00Z"))).toBeUndefined()
    expect(iso(latestTick(spec, at("2026-03-08T06:59:59.999Z"), at("2026-03-08T07:00:00Z")))).toBe("2026-03-08T07:00:00.000Z")
  })

  it("latestTick agrees with stepping nextTick, in several zones (property)", () => {
    const zones = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"]
    const crons = ["*/7 * * * *", "0 * * * *", "30 2 * * *", "15,45 1-3 * * *", "0 0 * * 0"]
    const year = at("2026-01-01T00:00:00Z")
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.constantFrom(...crons),
        fc.integer({ min: 0, max: 364 * 24 * 60 }),
        fc.integer({ min: 0, max: 3 * 24 * 60 }),
        (timezone, cron, startMinute, spanMinutes) => {
          const spec = { cron, timezone }
          const lo = year + startMinute * MINUTE + 17_000
          const hi = lo + spanMinutes * MINUTE
          let stepped: number | undefined
          for (let t = nextTick(spec, lo); t !== undefined && t <= hi; t = nextTick(spec, t)) stepped = t
          expect(latestTick(spec, lo, hi)).toBe(stepped)
        }
      ),
      { numRuns: 300 }
    )
  })
})

// ---- which tick is owed: against a model ----------------------------------------------------------

const toTimes = (r: ModelRevision): RevisionTimes => ({
  id: r.id,
  createdAt: r.createdAt,
  cron: `${r.field} * * * *`,
  timezone: "UTC",
  enabled: r.enabled
})

const base = at("2031-01-01T00:00:00Z")

/** Offsets in ms: often exactly on a minute, sometimes a millisecond either side. */
const offset = (maxMinutes: number) =>
  fc.tuple(fc.integer({ min: 0, max: maxMinutes }), fc.constantFrom(0, 0, 1, -1, 20_000, 59_999)).map(([m, ms]) => Math.max(0, m * MINUTE + ms))

const scenario = fc
  .record({
    created: fc.array(offset(120), { minLength: 1, maxLength: 6 }),
    fields: fc.array(fc.constantFrom(...minuteFields), { minLength: 6, maxLength: 6 }),
    enabled: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
    after: offset(60),
    last: fc.option(offset(180), { nil: undefined })
  })
  .map(({ created, fields, enabled, after, last }) => {
    const times = [...created].sort((a, b) => a - b)
    const revisions = times.map((t, i): ModelRevision => ({ id: `r${i}`, createdAt: base + t, field: fields[i]!, enabled: enabled[i]! }))
    const now = base + times[times.length - 1]! + after
    // A claimed tick is a minute, never later than now.
    const lastTick = last === undefined ? undefined : Math.min(Math.floor((base + last) / MINUTE) * MINUTE, Math.floor(now / MINUTE) * MINUTE)
    return { revisions, now, lastTick }
  })

describe("the tick a schedule owes (property, against a minute-by-minute model)", () => {
  it("dueTick with the whole history is the model's answer", () => {
    fc.assert(
      fc.property(scenario, ({ revisions, now, lastTick }) => {
        const expected = modelDue(revisions, lastTick, now)
        const got = dueTick(revisions.map(toTimes).reverse(), lastTick, now, true)
        expect(got._tag === "Due" ? { tick: got.tick, revision: got.revision.id } : undefined).toEqual(expected)
      }),
      { numRuns: 2000 }
    )
  })

  it("with the current revision alone it answers the same, or asks for the history only when an older revision could owe a tick", () => {
    fc.assert(
      fc.property(scenario, ({ revisions, now, lastTick }) => {
        const expected = modelDue(revisions, lastTick, now)
        const current = revisions[revisions.length - 1]!
        const got = dueTick([toTimes(current)], lastTick, now, false)
        if (got._tag === "NeedHistory") {
          // Only when ticks before the current revision are not yet all accounted for.
          expect(lastTick === undefined || lastTick < current.createdAt).toBe(true)
          expect(expected === undefined || expected.revision !== current.id).toBe(true)
        } else {
          expect(got._tag === "Due" ? { tick: got.tick, revision: got.revision.id } : undefined).toEqual(
            expected?.revision === current.id ? expected : undefined
          )
          if (got._tag === "None") expect(expected).toBeUndefined()
        }
      }),
      { numRuns: 2000 }
    )
  })

  it("nextRun is the first matching minute after now and after the revision's creation", () => {
    fc.assert(
      fc.property(scenario, ({ revisions, now }) => {
        const current = revisions[revisions.length - 1]!
        let expected: number | undefined
        if (current.enabled) {
          for (let m = Math.floor(Math.max(now, current.createdAt) / MINUTE) * MINUTE + MINUTE; ; m += MINUTE) {
            if (matches(current.field, m)) {
              expected = m
              break
            }
          }
        }
        expect(nextRun(toTimes(current), now)).toBe(expected)
      }),
      { numRuns: 1000 }
    )
  })

  it("examples: a missed burst owes only the latest tick; an edit owns the ticks after it; disabling owes nothing", () => {
    const r = (id: string, minute: number, field: string, enabled = true): RevisionTimes => ({
      id,
      createdAt: base + minute * MINUTE + 30_000,
      cron: `${field} * * * *`,
      timezone: "UTC",
      enabled
    })
    const m = (minute: number) => base + minute * MINUTE
    // Created at 00:00:30, ticking every minute, nobody ran until 00:10:15: only 00:10 is owed.
    expect(dueTick([r("a", 0, "*")], undefined, m(10) + 15_000, true)).toMatchObject({ _tag: "Due", tick: m(10) })
    // 00:10 claimed; an edit at 00:10:30 to every other minute: 00:11 is not a tick of the new revision.
    expect(dueTick([r("b", 10, "*/2"), r("a", 0, "*")], m(10), m(11) + 1, true)._tag).toBe("None")
    expect(dueTick([r("b", 10, "*/2"), r("a", 0, "*")], m(10), m(12), true)).toMatchObject({ tick: m(12), revision: { id: "b" } })
    // The edit came after 00:11 but before anyone claimed it: 00:11 is the old revision's.
    expect(dueTick([r("b", 11, "*/2"), r("a", 0, "*")], m(10), m(11) + 40_000, true)).toMatchObject({ tick: m(11), revision: { id: "a" } })
    // Disabled since 00:10:30: nothing, not even the missed 00:10.
    expect(dueTick([r("b", 10, "*", false), r("a", 0, "*")], undefined, m(12), true)._tag).toBe("None")
  })
})
