/**
 * The lower bounds bench:tasking judges makespans against (scripts/bench/lib/fcfs.ts), against a
 * model: the longest path through "waits for" edges, where a task waits for every earlier task
 * that holds one of its keys exclusively or holds exclusively a key it holds at all. Two tasks that
 * only share a key never wait for each other, so they must not lengthen the chain.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { TaskRow } from "../scripts/bench/lib/cairn.js"
import { fcfsBounds } from "../scripts/bench/lib/fcfs.js"

const row = (seq: number, created: number, exclusive: ReadonlyArray<string>, shared: ReadonlyArray<string>): TaskRow => ({
  id: `t${seq}`, graph_id: "g", node: `n${seq}`, seq, state: "succeeded", exclusive, shared,
  created, ready: created, started: created, finished: created + 1, worker_id: null
})

/** Longest chain (tasks) and its earliest end with release times, by brute force over all pairs. */
const model = (rows: ReadonlyArray<TaskRow>, d: number) => {
  const t0 = Math.min(...rows.map((r) => r.created))
  const waits = (a: TaskRow, b: TaskRow) =>
    a.exclusive.some((k) => b.exclusive.includes(k) || b.shared.includes(k)) || b.exclusive.some((k) => a.shared.includes(k))
  const len: Array<number> = []
  const es: Array<number> = []
  rows.forEach((t, i) => {
    len[i] = 1
    es[i] = t.created - t0
    for (let j = 0; j < i; j++) {
      if (!waits(rows[j]!, t)) continue
      len[i] = Math.max(len[i]!, len[j]! + 1)
      es[i] = Math.max(es[i]!, es[j]! + d)
    }
  })
  return { chainLength: Math.max(...len), releaseChain: Math.max(...es.map((e) => e + d)) }
}

describe("fcfsBounds", () => {
  it("does not chain tasks that only share a key", () => {
    const rows = [row(1, 0, [], ["k"]), row(2, 0, [], ["k"]), row(3, 0, ["k"], []), row(4, 0, [], ["k"]), row(5, 0, [], ["k"])]
    // shared, shared | exclusive | shared, shared: three steps, not five.
    expect(fcfsBounds(rows, 10, 100).chainLength).toBe(3)
    expect(fcfsBounds(rows, 10, 100).chain).toBe(30)
  })

  it("equals the longest waits-for path, with and without release times", () => {
    const keys = ["a", "b", "c", "d"]
    const task = fc.record({
      created: fc.integer({ min: 0, max: 50 }),
      exclusive: fc.subarray(keys, { maxLength: 2 }),
      shared: fc.subarray(keys, { maxLength: 3 })
    })
    fc.assert(fc.property(fc.array(task, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 20 }), (ts, d) => {
      const rows = ts.map((t, i) => row(i + 1, t.created, t.exclusive, t.shared.filter((k) => !t.exclusive.includes(k))))
      const b = fcfsBounds(rows, d, 1)
      const m = model(rows, d)
      expect(b.chainLength).toBe(m.chainLength)
      expect(b.releaseChain).toBe(m.releaseChain)
    }), { numRuns: 500 })
  })
})
