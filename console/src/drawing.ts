/**
 * What the graph page draws, from the DAG model: boxes and arrows, before layout.
 *
 * Large graphs are mostly fan-outs (a thousand syncs behind one step, joined by one publish), so
 * "group similar nodes" draws the tasks of the graph that share a task kind, their predecessors
 * and their successors as one box ("1,000 × file.sync", with its state counts); a click expands
 * one group. Tasks of other graphs that the model brought in (inputs, blockers, causes) are drawn
 * as external boxes.
 *
 * `structure` changes only when boxes or arrows come or go, not when states change: the layout
 * (the expensive part) is redone only then.
 */
import { type DagModel, SETTLED, type TaskState, type TaskView } from "./dag.js"

export type Counts = Partial<Record<TaskState, number>>

export interface Box {
  readonly id: string
  readonly type: "task" | "group" | "external"
  /** The task (type task or external), or the group's first member. */
  readonly task: TaskView
  /** Task ids of a group, in graph order. */
  readonly members: ReadonlyArray<string>
  readonly title: string
  readonly state: TaskState
  readonly counts: Counts
}

export interface Arrow {
  readonly id: string
  readonly from: string
  readonly to: string
  readonly reason: "input" | "resource"
  /** The output it carries, or the resource key. */
  readonly label: string
  /** The target waits on it right now. */
  readonly waiting: boolean
}

export interface Drawing {
  readonly boxes: ReadonlyArray<Box>
  readonly arrows: ReadonlyArray<Arrow>
  /** task id -> id of the box that shows it. */
  readonly boxOf: ReadonlyMap<string, string>
  readonly structure: string
}

export interface DrawOptions {
  readonly group: boolean
  /** Groups the user opened. */
  readonly expanded: ReadonlySet<string>
  /** The fewest similar tasks that make a group. */
  readonly minGroup?: number
}

/** The state a group shows: the most pressing one among its members. */
const RANK: ReadonlyArray<TaskState> = ["failed", "running", "ready", "blocked", "canceled", "succeeded"]

const countStates = (ts: ReadonlyArray<TaskView>): Counts => {
  const c: Counts = {}
  for (const t of ts) c[t.state] = (c[t.state] ?? 0) + 1
  return c
}

export const drawingOf = (m: DagModel, o: DrawOptions): Drawing => {
  const minGroup = o.minGroup ?? 4
  const edges = m.edges.filter((e) => m.tasks.has(e.from) && m.tasks.has(e.to) && e.from !== e.to)
  const boxOf = new Map<string, string>()
  const boxes: Array<Box> = []

  // Similar tasks of this graph: same kind, same predecessors, same successors.
  const groups = new Map<string, Array<string>>()
  if (o.group) {
    const preds = new Map<string, Array<string>>()
    const succs = new Map<string, Array<string>>()
    for (const e of edges) {
      ;(preds.get(e.to) ?? preds.set(e.to, []).get(e.to)!).push(`${e.from}/${e.reason}/${e.output ?? e.key ?? ""}`)
      ;(succs.get(e.from) ?? succs.set(e.from, []).get(e.from)!).push(`${e.to}/${e.reason}`)
    }
    for (const id of m.order) {
      const t = m.tasks.get(id)!
      const key = `${t.task}|${(preds.get(id) ?? []).sort().join(",")}|${(succs.get(id) ?? []).sort().join(",")}`
      ;(groups.get(key) ?? groups.set(key, []).get(key)!).push(id)
    }
  }
  const grouped = new Map<string, Array<string>>()
  for (const members of groups.values()) {
    if (members.length < minGroup) continue
    const gid = `group:${members[0]}`
    if (o.expanded.has(gid)) continue
    grouped.set(gid, members)
    for (const id of members) boxOf.set(id, gid)
  }

  const emitted = new Set<string>()
  for (const id of m.order) {
    const gid = boxOf.get(id)
    if (gid === undefined) {
      const t = m.tasks.get(id)!
      boxOf.set(id, id)
      boxes.push({ id, type: "task", task: t, members: [id], title: t.node, state: t.state, counts: { [t.state]: 1 } })
    } else if (!emitted.has(gid)) {
      emitted.add(gid)
      const members = grouped.get(gid)!
      const ts = members.map((i) => m.tasks.get(i)!)
      const counts = countStates(ts)
      const state = RANK.find((s) => (counts[s] ?? 0) > 0) ?? "succeeded"
      boxes.push({ id: gid, type: "group", task: ts[0]!, members, title: `${members.length} × ${ts[0]!.task}`, state, counts })
    }
  }
  for (const id of m.external) {
    const t = m.tasks.get(id)!
    boxOf.set(id, id)
    boxes.push({ id, type: "external", task: t, members: [id], title: t.node, state: t.state, counts: { [t.state]: 1 } })
  }

  const arrows = new Map<string, Arrow>()
  for (const e of edges) {
    const from = boxOf.get(e.from)!
    const to = boxOf.get(e.to)!
    const label = e.reason === "input" ? (e.output ?? "input") : (e.key ?? "resource")
    const id = `${from}>${to}>${e.reason}>${label}`
    const had = arrows.get(id)
    if (!had) arrows.set(id, { id, from, to, reason: e.reason, label, waiting: e.waiting })
    else if (e.waiting && !had.waiting) arrows.set(id, { ...had, waiting: true })
  }
  const list = [...arrows.values()]
  const structure = `${boxes.map((b) => b.id).join(",")}|${list.map((a) => a.id).join(",")}`
  return { boxes, arrows: list, boxOf, structure }
}

/** Whether every task a box shows has settled. */
export const boxSettled = (b: Box) => Object.keys(b.counts).every((s) => SETTLED.has(s as TaskState))
