/**
 * Small statistics for benchmarks: percentile summaries (never a single number), a seeded PRNG
 * so that every draw is reproducible, and formatting helpers.
 */
import { mulberry32 } from "../../lib/random.js"

export interface Summary {
  readonly n: number
  readonly mean: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly min: number
  readonly max: number
}

const EMPTY: Summary = { n: 0, mean: NaN, p50: NaN, p95: NaN, p99: NaN, min: NaN, max: NaN }

/** Nearest-rank-with-interpolation percentile of an ascending array (q in [0, 1]). */
export const quantileSorted = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return NaN
  if (sorted.length === 1) return sorted[0]!
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo)
}

export const summarize = (values: ReadonlyArray<number>): Summary => {
  const xs = values.filter((v) => Number.isFinite(v))
  if (xs.length === 0) return EMPTY
  const sorted = [...xs].sort((a, b) => a - b)
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length
  return {
    n: sorted.length,
    mean,
    p50: quantileSorted(sorted, 0.5),
    p95: quantileSorted(sorted, 0.95),
    p99: quantileSorted(sorted, 0.99),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!
  }
}

export const median = (values: ReadonlyArray<number>) => summarize(values).p50

/** A seeded PRNG of floats in [0, 1). */
export const prng = (seed: number) => {
  const next = mulberry32(seed)
  return () => next() / 4294967296
}

export const shuffle = <A>(xs: ReadonlyArray<A>, rand: () => number): Array<A> => {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** A number with about 3 significant digits (no exponent for ordinary magnitudes). */
export const sig = (v: number, digits = 3): string => {
  if (!Number.isFinite(v)) return "–"
  if (v === 0) return "0"
  const a = Math.abs(v)
  if (a >= 10 ** digits) return Math.round(v).toLocaleString("en-US")
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(a)))
  return v.toFixed(Math.min(decimals, 6))
}

/** Milliseconds, human-scaled: "0.84 ms", "12.3 ms", "1.52 s". */
export const ms = (v: number): string => {
  if (!Number.isFinite(v)) return "–"
  if (Math.abs(v) >= 1000) return `${sig(v / 1000)} s`
  return `${sig(v)} ms`
}

export const pct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : "–")

/** "p50 / p95 / p99 (min–max)" in milliseconds. */
export const spread = (s: Summary, f: (v: number) => string = ms) =>
  s.n === 0 ? "–" : `${f(s.p50)} / ${f(s.p95)} / ${f(s.p99)} (${f(s.min)}–${f(s.max)})`

/** "median (min-max)" of one figure over a benchmark's rounds; just the median for one round. */
export const medianRange = (values: ReadonlyArray<number>, f: (v: number) => string = sig) =>
  `${f(median(values))}${values.length > 1 ? ` (${f(Math.min(...values))}-${f(Math.max(...values))})` : ""}`

export const bytes = (v: number): string => {
  if (!Number.isFinite(v)) return "–"
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${sig(v)} ${units[u]}`
}

/** High-resolution wall clock in epoch milliseconds (comparable across processes on one host). */
export const nowMs = () => performance.timeOrigin + performance.now()

export const sleep = (msec: number) => new Promise<void>((r) => setTimeout(r, msec))
