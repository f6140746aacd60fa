/**
 * Analysis of a run of tasks ordered by FCFS on resource keys (seed 003's benchmark), computed from
 * the task rows alone: when each task became runnable, how long it then waited, and the lower
 * bounds its makespan is judged against.
 */
import type { TaskRow } from "./cairn.js"

/** Tasks conflict on a key when either holds it exclusively. */
const conflicts = (a: TaskRow, b: TaskRow, key: string) => a.exclusive.includes(key) || b.exclusive.includes(key)

export interface FcfsTask {
  readonly row: TaskRow
  /** max(created, finished of every earlier conflicting task). */
  readonly runnable: number
  readonly waitFromRunnable: number
  readonly waitFromCreated: number
  /** Fewer than `workers` other tasks were runnable-or-running when this one became runnable. */
  readonly workerFree: boolean
}

/**
 * `rows` in seq order, all settled. For every task: its runnable moment (its last conflicting
 * predecessor settled, or its creation), the wait from there to its start, and whether a worker
 * was free at that moment.
 */
export const analyseFcfs = (rows: ReadonlyArray<TaskRow>, workers: number): Array<FcfsTask> => {
  const byKey = new Map<string, Array<TaskRow>>()
  const out: Array<Omit<FcfsTask, "workerFree">> = []
  for (const t of rows) {
    let runnable = t.created
    for (const key of [...t.exclusive, ...t.shared]) {
      for (const p of byKey.get(key) ?? []) {
        if (conflicts(p, t, key) && p.finished !== null) runnable = Math.max(runnable, p.finished)
      }
      const list = byKey.get(key) ?? []
      list.push(t)
      byKey.set(key, list)
    }
    const started = t.started ?? NaN
    out.push({ row: t, runnable, waitFromRunnable: started - runnable, waitFromCreated: started - t.created })
  }
  // Occupancy at each runnable moment: tasks runnable at or before it and not finished yet.
  const events = out.map((t) => ({ at: t.runnable, end: t.row.finished ?? Infinity }))
  return out.map((t, i) => {
    let busy = 0
    for (let j = 0; j < events.length; j++) {
      if (j === i) continue
      const e = events[j]!
      if (e.at <= t.runnable && e.end > t.runnable) busy++
    }
    return { ...t, workerFree: busy < workers }
  })
}

export interface Bounds {
  /** Total work divided by the workers. */
  readonly work: number
  /** Longest chain of conflicting tasks (FCFS order) times the task duration. */
  readonly chain: number
  /** The bound: max(work, chain). */
  readonly bound: number
  /**
   * The same chain bound with each task released at its actual creation time (infinite workers):
   * the submission burst is part of the makespan, and a chain cannot start before it is submitted.
   */
  readonly releaseChain: number
  /** max(work from the first creation, releaseChain). */
  readonly releaseBound: number
  /** Tasks in the longest chain. */
  readonly chainLength: number
}

/**
 * The longest chain is the longest path through "must finish before" edges: a task waits for every
 * earlier task that conflicts with it on some key (either holds the key exclusively). Two tasks that
 * only share a key do not wait for each other, so per key the best path ending in any holder feeds
 * an exclusive holder, and only the best path ending in an exclusive holder feeds a shared one.
 */
export const fcfsBounds = (rows: ReadonlyArray<TaskRow>, durationMs: number, workers: number): Bounds => {
  const t0 = Math.min(...rows.map((r) => r.created))
  interface Path { readonly len: number; readonly es: number }
  const anyHolder = new Map<string, Path>()
  const exclusiveHolder = new Map<string, Path>()
  const better = (a: Path | undefined, b: Path): Path => (a ? { len: Math.max(a.len, b.len), es: Math.max(a.es, b.es) } : b)
  let chainLength = 0
  let releaseEnd = 0
  for (const t of rows) {
    let len = 0
    let es = t.created - t0
    const before = [...t.exclusive.map((k) => anyHolder.get(k)), ...t.shared.filter((k) => !t.exclusive.includes(k)).map((k) => exclusiveHolder.get(k))]
    for (const p of before) {
      if (!p) continue
      len = Math.max(len, p.len)
      es = Math.max(es, p.es + durationMs)
    }
    const me = { len: len + 1, es }
    for (const key of [...t.exclusive, ...t.shared]) anyHolder.set(key, better(anyHolder.get(key), me))
    for (const key of t.exclusive) exclusiveHolder.set(key, better(exclusiveHolder.get(key), me))
    chainLength = Math.max(chainLength, me.len)
    releaseEnd = Math.max(releaseEnd, es + durationMs)
  }
  const work = (rows.length * durationMs) / workers
  const chain = chainLength * durationMs
  return { work, chain, bound: Math.max(work, chain), releaseChain: releaseEnd, releaseBound: Math.max(work, releaseEnd), chainLength }
}

/** Strict FCFS held: no task started before an earlier conflicting task finished. */
export const fcfsViolations = (rows: ReadonlyArray<TaskRow>): number => {
  const byKey = new Map<string, Array<TaskRow>>()
  let bad = 0
  for (const t of rows) {
    for (const key of [...t.exclusive, ...t.shared]) {
      for (const p of byKey.get(key) ?? []) {
        if (conflicts(p, t, key) && t.started !== null && p.finished !== null && t.started < p.finished - 0.001) bad++
      }
      byKey.set(key, [...(byKey.get(key) ?? []), t])
    }
  }
  return bad
}
