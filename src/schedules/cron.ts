/**
 * Cron expressions and time zones, through croner (a maintained, dependency-free parser; chosen
 * over cron-parser, which also parses 5 fields, for its documented DST rules, and because it needs
 * no date library). Five fields: minute, hour, day of month, month, day of week (0 or 7 = Sunday);
 * a day given in both day fields matches either, as in Vixie cron.
 *
 * Time zones are IANA names (`Europe/Berlin`, `UTC`), evaluated with the platform's Intl data.
 * Daylight saving time follows croner's rules, which are Vixie cron's: an expression whose minute
 * and hour are single values (`30 2 * * *`) runs once a day whatever happens: at the first valid
 * time after a skipped hour (spring forward), and once in a repeated hour (fall back); an
 * expression with a wildcard, step or list in its minute or hour (`*\/15 * * * *`, `0 * * * *`) is
 * an interval: it skips times that do not exist and runs at both instants of a repeated time.
 *
 * Ticks are whole minutes; every function here takes and returns milliseconds since the epoch.
 */
import { Cron } from "croner"
import { LRUCache } from "lru-cache"

export interface CronSpec {
  readonly cron: string
  readonly timezone: string
}

const FIELDS = "minute hour day-of-month month day-of-week"

/** Why `timezone` is not a time zone name this process knows, or undefined. */
export const timezoneProblem = (timezone: string): string | undefined => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone })
    return undefined
  } catch {
    return `timezone ${JSON.stringify(timezone)} is not a known IANA time zone name (like "UTC" or "Europe/Berlin")`
  }
}

const make = (spec: CronSpec) => new Cron(spec.cron, { mode: "5-part", timezone: spec.timezone, paused: true })

/**
 * Why `cron` is not a usable 5-field cron expression, or undefined. One that can never fire
 * (`0 0 31 2 *`) is refused too: a schedule that never ticks is a mistake.
 */
export const cronProblem = (cron: string): string | undefined => {
  let c: Cron
  try {
    c = make({ cron, timezone: "UTC" })
  } catch (e) {
    const why = String((e as Error).message ?? e).replace(/^CronPattern:\s*/, "")
    return `cron ${JSON.stringify(cron)} is not a 5-field cron expression (${FIELDS}): ${why}`
  }
  if (c.nextRun(new Date()) === null) return `cron ${JSON.stringify(cron)} never fires`
  return undefined
}

// Parsing costs about as much as computing a run; schedules are few and their expressions fixed.
const compiled = new LRUCache<string, Cron>({ max: 10_000 })
const compile = (spec: CronSpec) => {
  const key = `${spec.timezone}\u0000${spec.cron}`
  let c = compiled.get(key)
  if (c === undefined) compiled.set(key, (c = make(spec)))
  return c
}

/** The first tick strictly after `after`; undefined when there is none (croner looks years ahead). */
export const nextTick = (spec: CronSpec, after: number): number | undefined => compile(spec).nextRun(new Date(after))?.getTime()

/** The latest tick T with `lo` < T <= `hi`; undefined when there is none. */
export const latestTick = (spec: CronSpec, lo: number, hi: number): number | undefined => {
  if (hi <= lo) return undefined
  // previousRuns looks strictly before its reference.
  const t = compile(spec).previousRuns(1, new Date(hi + 1))[0]?.getTime()
  return t !== undefined && t > lo ? t : undefined
}

/** A tick as RFC 3339 in UTC, whole seconds: `2026-03-08T07:00:00Z`. */
export const formatTick = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z")
