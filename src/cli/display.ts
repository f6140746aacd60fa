/**
 * How a graph looks while it runs: one line per task with its state, a progress bar (files
 * done/total), elapsed time and the cause of any failure.
 *
 * Two forms: `liveFrame` (a terminal: the block is redrawn in place) and `PlainLog` (a pipe or a
 * file: a line whenever a task changes, never a redraw). Timing words and durations are the dag
 * view's (src/dag/model.ts), so both tools say the same thing the same way.
 */
import { formatDuration, TASK_GLYPH, timing } from "../dag/model.js"
import type { GraphView, TaskView } from "../client/graphs.js"

const COLOR: Record<string, number> = {
  blocked: 33,
  ready: 34,
  running: 36,
  pending: 33,
  succeeded: 32,
  failed: 31,
  canceled: 35
}
const paint = (on: boolean, state: string, s: string) => (on && COLOR[state] ? `\x1b[${COLOR[state]}m${s}\x1b[39m` : s)

const BAR_WIDTH = 20

/** `[██████░░░░░░]` for done/total, or blanks when there is nothing to measure. */
export const progressBar = (done: number, total: number | undefined, width = BAR_WIDTH): string => {
  if (total === undefined || total <= 0) return " ".repeat(width + 2)
  const filled = Math.max(0, Math.min(width, Math.round((done / total) * width)))
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}]`
}

/** "12/20 files", "3 orphans deleted", or "". */
export const progressText = (t: TaskView): string => {
  const p = t.progress
  if (p === undefined) return ""
  const unit = p.unit === undefined ? "" : ` ${p.unit}`
  return p.total === undefined ? `${p.done}${unit}` : `${p.done}/${p.total}${unit}`
}

/**
 * Why a task failed, in words: its own error, or for a task that never ran because an input failed,
 * the node where the failure started and that node's message.
 */
export const causeOf = (t: TaskView, g: GraphView): string | undefined => {
  const e = t.error
  if (e === undefined) return undefined
  if (t.state === "ready" && e.retrying) return `retrying after: ${e.message}`
  if (e.code === "upstream_failed" || e.code === "upstream_canceled") {
    const root = Object.values(g.nodes).find((n) => n.id === e.cause_task)
    const how = e.code === "upstream_failed" ? "failed" : "was canceled"
    if (root !== undefined && root.id !== t.id) return `because ${root.node} ${how}${root.error ? `: ${root.error.message}` : ""}`
  }
  return e.code === "task_failed" ? e.message : `${e.code}: ${e.message}`
}

const nodesInOrder = (g: GraphView) => Object.values(g.nodes)

const elapsedOf = (g: GraphView, now: number) =>
  formatDuration((g.finished_at === undefined ? now : Date.parse(g.finished_at)) - Date.parse(g.created_at))

/** `graph 01J… "label"  running  3.2s` */
const headerSegments = (g: GraphView, now: number): Array<Segment> => [
  { text: `graph ${g.id}${g.label === undefined ? "" : ` ${JSON.stringify(g.label)}`}  ` },
  { text: g.state, state: g.state },
  { text: `  ${elapsedOf(g, now)}` }
]

/** The last line: how the graph ended. */
export const finalLine = (g: GraphView, now: number) => {
  const why = g.state === "succeeded" ? "" : failureReason(g)
  return `graph ${g.id} ${g.state} in ${elapsedOf(g, now)}${why === "" ? "" : `: ${why}`}`
}

/** The failed (or canceled) tasks where trouble started, as "b (debug.sleep) failed: boom". */
const failureReason = (g: GraphView): string => {
  const roots = nodesInOrder(g).filter((t) =>
    (t.state === "failed" || t.state === "canceled") && t.error?.code !== "upstream_failed" && t.error?.code !== "upstream_canceled"
  )
  const first = roots.find((t) => t.state === "failed") ?? roots[0]
  if (first === undefined) return ""
  const more = roots.length > 1 ? ` (and ${roots.length - 1} more)` : ""
  const what = first.state === "failed" ? `failed: ${causeOf(first, g) ?? "no reason given"}` : "was canceled"
  return `task ${first.node} (${first.task}) ${what}${more}`
}

/** One sentence for stderr when a waited-for graph did not succeed. */
export const failureSentence = (g: GraphView) => {
  const why = failureReason(g)
  return `graph ${g.id} ${g.state}${why === "" ? "" : `: ${why}`}`
}

// ---- terminal: redrawn in place -----------------------------------------------------------------

interface Segment {
  readonly text: string
  readonly state?: string
}

/** Join segments, cut to `width` visible characters, colour after cutting (escapes take no room). */
const fit = (segments: ReadonlyArray<Segment>, width: number, color: boolean) => {
  let room = width
  let out = ""
  for (const s of segments) {
    if (room <= 0) break
    const text = s.text.length > room ? `${s.text.slice(0, Math.max(0, room - 1))}…` : s.text
    room -= text.length
    out += s.state === undefined ? text : paint(color, s.state, text)
  }
  return out
}

export interface FrameOptions {
  readonly color: boolean
  /** Terminal columns; lines never wrap (a wrapped line would break the redraw). */
  readonly width: number
}

/** The block a terminal shows: a header line, then one line per task. */
export const liveFrame = (g: GraphView, now: number, opts: FrameOptions): Array<string> => {
  const tasks = nodesInOrder(g)
  const nodeW = Math.max(...tasks.map((t) => t.node.length))
  const kindW = Math.max(...tasks.map((t) => t.task.length))
  const width = Math.max(20, opts.width - 1)
  const lines = [fit(headerSegments(g, now), width, opts.color)]
  // The bar and count columns only when some task reports progress (a sync does, a sleep does not).
  const bars = tasks.some((t) => t.progress?.total !== undefined)
  const countW = Math.max(0, ...tasks.map((t) => progressText(t).length))
  for (const t of tasks) {
    const cause = causeOf(t, g)
    const bar = bars ? `${progressBar(t.progress?.done ?? 0, t.progress?.total)} ` : ""
    const count = countW > 0 ? `${progressText(t).padEnd(countW)}  ` : ""
    lines.push(fit([
      { text: `${TASK_GLYPH[t.state]} `, state: t.state },
      { text: `${t.node.padEnd(nodeW)}  ${t.task.padEnd(kindW)}  ` },
      { text: t.state.padEnd(9), state: t.state },
      { text: `  ${bar}${count}${timing(t, now)}` },
      ...(cause === undefined ? [] : [{ text: `  ${cause}`, state: t.state }])
    ], width, opts.color))
  }
  return lines
}

/** Moves the cursor back over the previous frame and draws the next one. */
export class LiveScreen {
  private height = 0
  constructor(private readonly out: NodeJS.WriteStream) {}
  draw(lines: ReadonlyArray<string>) {
    // Up to the first line of the last frame, clear to the end of the screen, draw.
    const up = this.height > 0 ? `\x1b[${this.height}F` : ""
    this.out.write(`${up}\x1b[J${lines.join("\n")}\n`)
    this.height = lines.length
  }
}

// ---- pipes and files: a line per change ---------------------------------------------------------

/**
 * Lines for a log: each task once when first seen, then whenever its state changes; progress at
 * most every `progressEveryMs` per task (a sync of 10,000 files must not print 10,000 lines).
 */
export class PlainLog {
  private readonly seen = new Map<string, { state: string; progressAt: number; progress: string }>()
  constructor(private readonly progressEveryMs = 5_000) {}

  update(g: GraphView, now: number): Array<string> {
    const lines: Array<string> = []
    const nodeW = Math.max(...nodesInOrder(g).map((t) => t.node.length))
    for (const t of nodesInOrder(g)) {
      const before = this.seen.get(t.id)
      const progress = progressText(t)
      const changed = before === undefined || before.state !== t.state
      const progressed = !changed && progress !== before.progress && now - before.progressAt >= this.progressEveryMs
      if (!changed && !progressed) continue
      this.seen.set(t.id, { state: t.state, progress, progressAt: now })
      const cause = causeOf(t, g)
      lines.push(
        [t.node.padEnd(nodeW), t.task, t.state, progress, timing(t, now), cause ?? ""].filter((s) => s !== "").join("  ")
      )
    }
    return lines
  }
}
