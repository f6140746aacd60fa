/**
 * A task's situation in words, from the DAG model (./dag.ts): what a blocked task waits for, and
 * the way from a failed task back to its root cause. The terminal view (src/dag/render.ts)
 * says the same things as coloured text; here they are sentences made of parts, so that the page
 * can make every task named in them a link.
 *
 *   waits for `sync` to resolve its `version` (running on worker-1 for 12s)
 *   waits behind `nightly` on key `repository:fedora` (queued, blocked itself)
 *   waits behind `mirror` on key `repository:fedora` (waiting for its retry at 12:00:41Z (in 11s))
 *   failed: upstream_failed … because its input `publish.publication` failed, from `publish`
 *   root cause: `sync` failed: task_failed: no disk
 */
import { type DagModel, formatDuration, isSettled, retryAt, retryPhrase, type TaskView } from "./dag.js"

type ErrorView = NonNullable<TaskView["error"]>

export type Part =
  | { readonly text: string }
  | { readonly code: string }
  | { readonly task: string; readonly label: string }

export type Sentence = ReadonlyArray<Part>

export interface WaitLine {
  readonly sentence: Sentence
  readonly children: ReadonlyArray<WaitLine>
}

const text = (s: string): Part => ({ text: s })
const code = (s: string): Part => ({ code: s })

/** The task's node name; for a task of another graph also that graph; a bare id if not loaded. */
export const nameOf = (m: DagModel, id: string): string => {
  const t = m.tasks.get(id)
  if (!t) return `task ${id}`
  return t.graph === m.graph.id ? t.node : `${t.node} (graph ${t.graph.slice(-6)})`
}

const link = (m: DagModel, id: string): Part => ({ task: id, label: nameOf(m, id) })

const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso))

/**
 * "running on worker-1 for 12s", "ready, waiting for a free worker", "waiting for its retry at
 * 12:00:41Z (in 11s)", "blocked", "failed".
 */
export const statePhrase = (t: TaskView, now: number): string => {
  switch (t.state) {
    case "running":
      return `running${t.worker ? ` on ${t.worker}` : ""} for ${formatDuration(now - (ms(t.started_at) ?? now))}`
    case "ready": {
      const retry = retryAt(t)
      return retry === undefined ? "ready, waiting for a free worker" : `waiting for its ${retryPhrase(retry, now)}`
    }
    case "blocked":
      return "blocked itself"
    default:
      return t.state
  }
}

/** What `t` waits for, and (to `depth`) what those wait for in turn. */
export const waitLines = (m: DagModel, t: TaskView, now: number, depth = 4): ReadonlyArray<WaitLine> => {
  const expanded = new Set<string>([t.id])
  const walk = (cur: TaskView, left: number): Array<WaitLine> =>
    cur.waiting_on.map((w): WaitLine => {
      const target = m.tasks.get(w.task)
      const about = target ? [text(` (${statePhrase(target, now)})`)] : []
      const sentence: Sentence = w.reason === "input"
        ? [
          text("waits for "),
          link(m, w.task),
          text(" to resolve its "),
          code((w.future !== undefined ? m.outputOf.get(w.future)?.output : undefined) ?? "output"),
          ...about
        ]
        : [text("waits behind "), link(m, w.task), text(" on key "), code(w.key ?? "?"), ...about]
      if (!target || target.state !== "blocked") return { sentence, children: [] }
      if (expanded.has(target.id)) return { sentence: [...sentence, text(" — see above")], children: [] }
      if (left <= 0) return { sentence: [...sentence, text(" — and so on")], children: [] }
      expanded.add(target.id)
      return { sentence, children: walk(target, left - 1) }
    })
  return walk(t, depth)
}

/** One line on where the task stands, for every state. */
export const situation = (m: DagModel, t: TaskView, now: number): Sentence => {
  switch (t.state) {
    case "blocked":
      return t.waiting_on.length === 0
        ? [text("blocked, but the engine names nothing it waits for (an input settled this instant?)")]
        : [text(`blocked for ${formatDuration(now - (ms(t.created_at) ?? now))}:`)]
    case "ready": {
      // A failed attempt waiting out its retry backoff is ready too, but not claimable before then;
      // it keeps its place on its resource keys meanwhile.
      const retry = retryAt(t)
      return retry === undefined
        ? [text(`ready for ${formatDuration(now - (ms(t.ready_at) ?? now))}: it waits only for a free worker`)]
        : [text(`attempt ${t.attempts} of ${t.max_attempts} failed; waits for its ${retryPhrase(retry, now)}, keeping its place on its resource keys`)]
    }
    case "running":
      return [text(statePhrase(t, now)), text(`, attempt ${t.attempts} of ${t.max_attempts}`)]
    case "succeeded": {
      const took = ms(t.finished_at)! - (ms(t.started_at) ?? ms(t.finished_at)!)
      return [text(`succeeded in ${formatDuration(took)}`), ...(t.worker ? [text(` on ${t.worker}`)] : [])]
    }
    default: {
      // The error itself is shown with its cause chain (causeChain).
      const started = ms(t.started_at)
      const finished = ms(t.finished_at) ?? now
      return [text(started === undefined ? `${t.state} without running` : `${t.state} after ${formatDuration(finished - started)}`)]
    }
  }
}

export interface CauseChain {
  readonly error: ErrorView
  /** Each hop back: the input future that failed (or was canceled) and the task that produced it. */
  readonly hops: ReadonlyArray<Sentence>
  /** The task where the failure or cancel started, if not `t` itself. */
  readonly root?: string | undefined
  readonly rootSentence?: Sentence | undefined
}

/** The error of `t` and the way back to its root cause: cause_future -> its producer -> its cause_future ... */
export const causeChain = (m: DagModel, t: TaskView): CauseChain | undefined => {
  const error = t.error
  if (!error) return undefined
  const hops: Array<Sentence> = []
  const visited = new Set<string>([t.id])
  let cur = t
  let end: string | undefined
  for (let hop = 0; hop < 100; hop++) {
    const cf = cur.error?.cause_future
    if (cf === undefined) {
      if (cur !== t) end = cur.id
      break
    }
    const o = m.outputOf.get(cf)
    const producerId = o?.task ?? m.futures.get(cf)?.producer
    const producer = producerId === undefined ? undefined : m.tasks.get(producerId)
    const how = cur.error?.code === "upstream_canceled" ? "was canceled" : "failed"
    hops.push([
      text("because its input "),
      code(producer && o ? `${producer.node}.${o.output}` : cf),
      text(` ${how}`),
      ...(producerId === undefined ? [] : [text(", from "), link(m, producerId)])
    ])
    if (!producer || visited.has(producer.id)) break
    visited.add(producer.id)
    cur = producer
  }
  // The engine records the root cause on every error; the chain is how we got there.
  const root = error.cause_task ?? end
  if (root === undefined || root === t.id) return { error, hops }
  const r = m.tasks.get(root)
  const rootSentence: Sentence = [
    text("root cause: "),
    link(m, root),
    ...(r && isSettled(r) ? [text(` ${r.state}`)] : []),
    ...(r?.error ? [text(": "), code(r.error.code), text(` ${r.error.message}`)] : [])
  ]
  return { error, hops, root, rootSentence }
}
