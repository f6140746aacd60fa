/**
 * The engine's invariants, checked from the rows a run left behind. Used by scripts/stress.ts (and
 * the chaos scripts) after hours of random work, and by tests after a short run.
 *
 *   1. settled exactly once: every task terminal, every future settled and consistent with its
 *      producer, no queue rows left, attempts within max_attempts;
 *   2. data order: a task that ran started after each of its inputs settled, all of them resolved;
 *   3. propagation: a task that did not run because of an input is upstream_failed/upstream_canceled
 *      with cause_future = one of its own inputs settled that way and cause_task = that input's root;
 *      a task whose inputs all resolved is never upstream_*;
 *   4. strict FCFS per key: of two conflicting tasks that both ran, the later-submitted one started
 *      after the earlier one finished (which also means they never overlapped).
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../../src/db/client.js"

interface TaskRow {
  id: string
  seq: string
  state: string
  started_us: string | null
  finished_us: string | null
  exclusive: Array<string>
  shared: Array<string>
  error: { code: string; cause_task?: string; cause_future?: string } | null
  attempts: number
  max_attempts: number
}
interface FutureRow {
  id: string
  producer: string
  state: string
  settled_us: string | null
  error: { code: string; cause_task?: string } | null
}

export interface InvariantReport {
  readonly tasks: number
  readonly byState: Record<string, number>
  readonly violations: ReadonlyArray<string>
}

const TERMINAL = new Set(["succeeded", "failed", "canceled"])
const FUTURE_OF: Record<string, string> = { succeeded: "resolved", failed: "failed", canceled: "canceled" }

/** Check every task whose graph matches `graphs` (a SQL condition on `g`, the graphs table). */
export const checkInvariants = (graphs: SQL) =>
  Effect.gen(function*() {
    const db = yield* Db
    const tasks = yield* db.rows<TaskRow>(sql`
      SELECT t.id, t.seq::text, t.state, t.exclusive, t.shared, t.error, t.attempts, t.max_attempts,
             (extract(epoch FROM t.started_at) * 1e6)::bigint::text AS started_us,
             (extract(epoch FROM t.finished_at) * 1e6)::bigint::text AS finished_us
      FROM tasks t JOIN graphs g ON g.id = t.graph_id WHERE ${graphs}`)
    const futures = yield* db.rows<FutureRow>(sql`
      SELECT f.id, f.producer_task AS producer, f.state, f.error,
             (extract(epoch FROM f.settled_at) * 1e6)::bigint::text AS settled_us
      FROM futures f WHERE f.producer_task IN (SELECT t.id FROM tasks t JOIN graphs g ON g.id = t.graph_id WHERE ${graphs})
         OR f.id IN (SELECT ti.future_id FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id JOIN graphs g ON g.id = t.graph_id WHERE ${graphs})`)
    const inputs = yield* db.rows<{ task_id: string; future_id: string }>(sql`
      SELECT ti.task_id, ti.future_id FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id JOIN graphs g ON g.id = t.graph_id WHERE ${graphs}`)
    const [leftover] = yield* db.rows<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM task_keys k JOIN tasks t ON t.id = k.task_id JOIN graphs g ON g.id = t.graph_id WHERE ${graphs}`)

    const violations: Array<string> = []
    const v = (m: string) => {
      if (violations.length < 200) violations.push(m)
    }
    const fut = new Map(futures.map((f) => [f.id, f]))
    const taskById = new Map(tasks.map((t) => [t.id, t]))
    const inputsOf = new Map<string, Array<string>>()
    for (const i of inputs) (inputsOf.get(i.task_id) ?? inputsOf.set(i.task_id, []).get(i.task_id)!).push(i.future_id)
    const byState: Record<string, number> = {}

    // 1. settled exactly once, consistently.
    for (const t of tasks) {
      byState[t.state] = (byState[t.state] ?? 0) + 1
      if (!TERMINAL.has(t.state)) v(`task ${t.id} is still ${t.state}`)
      if (t.attempts > t.max_attempts) v(`task ${t.id} ran ${t.attempts} times, max_attempts ${t.max_attempts}`)
    }
    for (const f of futures) {
      const p = taskById.get(f.producer)
      if (!p) continue // an input from a graph outside the checked set
      if (f.state === "pending") v(`future ${f.id} is still pending`)
      else if (TERMINAL.has(p.state) && FUTURE_OF[p.state] !== f.state) v(`future ${f.id} is ${f.state} but its task ${p.id} ${p.state}`)
    }
    if ((leftover?.n ?? 0) > 0) v(`${leftover!.n} FCFS queue rows remain for settled tasks`)

    // 2 and 3. data order and propagation.
    for (const t of tasks) {
      const ins = (inputsOf.get(t.id) ?? []).map((id) => fut.get(id)!).filter(Boolean)
      const bad = ins.filter((f) => f.state === "failed" || f.state === "canceled")
      if (t.started_us !== null) {
        for (const f of ins) {
          if (f.state !== "resolved") v(`task ${t.id} ran although input ${f.id} is ${f.state}`)
          else if (BigInt(t.started_us) < BigInt(f.settled_us!)) v(`task ${t.id} started before its input ${f.id} settled`)
        }
      }
      const code = t.error?.code
      if (code === "upstream_failed" || code === "upstream_canceled") {
        const cf = t.error!.cause_future ? fut.get(t.error!.cause_future) : undefined
        if (!cf || !ins.includes(cf)) v(`task ${t.id}: cause_future ${t.error!.cause_future} is not one of its inputs`)
        else {
          const want = code === "upstream_failed" ? "failed" : "canceled"
          if (cf.state !== want) v(`task ${t.id} is ${code} but its cause_future ${cf.id} is ${cf.state}`)
          const root = cf.error?.cause_task ?? cf.producer
          if (t.error!.cause_task !== root) v(`task ${t.id}: cause_task ${t.error!.cause_task}, expected the root ${root}`)
        }
        if (code === "upstream_failed" && t.state !== "failed") v(`task ${t.id} is ${t.state} with ${code}`)
        if (code === "upstream_canceled" && t.state !== "canceled") v(`task ${t.id} is ${t.state} with ${code}`)
      } else if (t.started_us === null && bad.length > 0 && t.error?.code !== "canceled") {
        v(`task ${t.id} never ran, has failed/canceled inputs, but is ${t.state} (${code ?? "no error"})`)
      }
      if (ins.length > 0 && bad.length === 0 && (code === "upstream_failed" || code === "upstream_canceled")) {
        v(`task ${t.id} is ${code} although all its inputs resolved`)
      }
    }

    // 4. strict FCFS per key, from recorded times.
    const byKey = new Map<string, Array<{ t: TaskRow; exclusive: boolean }>>()
    for (const t of tasks) {
      for (const k of t.exclusive) (byKey.get(k) ?? byKey.set(k, []).get(k)!).push({ t, exclusive: true })
      for (const k of t.shared) (byKey.get(k) ?? byKey.set(k, []).get(k)!).push({ t, exclusive: false })
    }
    for (const [key, rows] of byKey) {
      rows.sort((a, b) => (BigInt(a.t.seq) < BigInt(b.t.seq) ? -1 : 1))
      let lastAny: TaskRow | undefined // the earlier ran task that finished last
      let lastExclusive: TaskRow | undefined
      for (const { t, exclusive } of rows) {
        if (t.started_us === null) continue
        const must = exclusive ? lastAny : lastExclusive
        if (must && BigInt(t.started_us) < BigInt(must.finished_us!)) {
          v(`FCFS on ${key}: task ${t.id} (seq ${t.seq}) started before earlier conflicting task ${must.id} (seq ${must.seq}) finished`)
        }
        if (t.finished_us !== null) {
          if (!lastAny || BigInt(t.finished_us) > BigInt(lastAny.finished_us!)) lastAny = t
          if (exclusive && (!lastExclusive || BigInt(t.finished_us) > BigInt(lastExclusive.finished_us!))) lastExclusive = t
        }
      }
    }
    return { tasks: tasks.length, byState, violations } satisfies InvariantReport
  })
