/**
 * Renderers of a `DagModel`: pure functions from the model to a string.
 *   text     the terminal view: layered listing, outputs, errors with cause chains, why-blocked chains
 *   mermaid  a Mermaid flowchart
 *   dot      a Graphviz digraph
 *   json     { root, graph, tasks: [... with waiting_on], edges: [{ from, to, reason, key?, future? }] }
 */
import {
  type DagModel,
  type Edge,
  type FutureState,
  isSettled,
  outputsOf,
  retryAt,
  retryPhrase,
  TASK_GLYPH,
  type TaskState,
  type TaskView,
  stateCounts,
  timing
} from "./model.js"

export type Format = "text" | "mermaid" | "dot" | "json"
export const FORMATS: ReadonlyArray<Format> = ["text", "mermaid", "dot", "json"]

export interface TextOptions {
  /** ANSI colours. */
  readonly color: boolean
  /** How deep to follow "waits for" chains. */
  readonly depth: number
}

// ---- colours --------------------------------------------------------------------------------------

const ANSI = {
  red: 31,
  green: 32,
  yellow: 33,
  blue: 34,
  magenta: 35,
  cyan: 36,
  gray: 90
} as const
type Color = keyof typeof ANSI

const painter = (enabled: boolean) => ({
  color: (c: Color, s: string) => (enabled ? `\x1b[${ANSI[c]}m${s}\x1b[39m` : s),
  bold: (s: string) => (enabled ? `\x1b[1m${s}\x1b[22m` : s),
  dim: (s: string) => (enabled ? `\x1b[2m${s}\x1b[22m` : s)
})

const taskColor: Record<TaskState, Color> = {
  blocked: "yellow",
  ready: "blue",
  running: "cyan",
  succeeded: "green",
  failed: "red",
  canceled: "magenta"
}
const futureColor: Record<FutureState, Color> = { pending: "yellow", resolved: "green", failed: "red", canceled: "magenta" }

// ---- text -----------------------------------------------------------------------------------------

const MAX_INDENT_LEVEL = 16

export const renderText = (m: DagModel, opts: TextOptions): string => {
  const p = painter(opts.color)
  const st = (s: TaskState) => p.color(taskColor[s], s)
  const fst = (s: FutureState) => p.color(futureColor[s], s)
  const task = (id: string) => m.tasks.get(id)
  const isMain = (t: TaskView) => t.graph === m.graph.id

  /** "sync" for this graph's tasks, "sync@<graph id>" for others, the task id if not loaded. */
  const nameOf = (id: string) => {
    const t = task(id)
    if (!t) return `task ${id}`
    return isMain(t) ? p.bold(t.node) : `${p.bold(t.node)}${p.dim(`@${t.graph}`)}`
  }
  /** "running on worker-x for 12s", "blocked for 3.0s", "failed: task_failed: boom". */
  const stateOf = (t: TaskView) => {
    const parts = [st(t.state)]
    if (t.state === "running" && t.worker) parts.push(`on ${t.worker}`)
    const retry = retryAt(t)
    if (retry !== undefined) parts.push(`waiting for its ${retryPhrase(retry, m.now)}`)
    else if (!isSettled(t)) parts.push(timing(t, m.now).replace(/^(running|ready|blocked) /, "") + (t.state === "ready" ? ", waiting for a free worker" : ""))
    if ((t.state === "failed" || t.state === "canceled") && t.error) parts.push(`— ${t.error.code}: ${t.error.message}`)
    return parts.join(" ")
  }
  const describe = (id: string) => {
    const t = task(id)
    return t ? `${nameOf(id)} (${stateOf(t)})` : `task ${id} (not loaded)`
  }
  const futureLabel = (fid: string) => {
    const o = m.outputOf.get(fid)
    const producer = o === undefined ? undefined : task(o.task)
    const state = producer ? outputsOf(producer, m.futures).find((x) => x.id === fid)?.state : m.futures.get(fid)?.state
    const of = producer ? `${producer.node}.${o!.output}` : undefined
    return `${fid}${of || state ? ` (${[of, state ? fst(state) : undefined].filter(Boolean).join(", ")})` : ""}`
  }

  /** Why a blocked task waits, recursively: each input and each key, then what those wait for. */
  const why = (t: TaskView, indent: string, out: Array<string>) => {
    const expanded = new Set<string>([t.id])
    const walk = (cur: TaskView, pad: string, depth: number) => {
      for (const w of cur.waiting_on) {
        const target = task(w.task)
        let line: string
        if (w.reason === "input") {
          line = `<- input ${w.future ? futureLabel(w.future) : "?"} of ${describe(w.task)}`
        } else {
          const verb = !target ? "held or queued by" : target.state === "running" || target.state === "ready" ? "held by" : isSettled(target) ? "released by" : "queued ahead by"
          line = `<- resource ${p.bold(w.key ?? "?")} ${verb} ${describe(w.task)}`
        }
        if (target && target.state === "blocked") {
          if (expanded.has(target.id)) {
            out.push(`${pad}${line} ${p.dim("(see above)")}`)
            continue
          }
          if (depth + 1 >= opts.depth) {
            out.push(`${pad}${line} ${p.dim(`(… stopped at depth ${opts.depth})`)}`)
            continue
          }
          out.push(`${pad}${line}`)
          expanded.add(target.id)
          if (target.waiting_on.length === 0) out.push(`${pad}   ${p.dim("(blocked, but waits on nothing it could name: an input settled this instant?)")}`)
          walk(target, `${pad}   `, depth + 1)
        } else out.push(`${pad}${line}`)
      }
    }
    if (t.waiting_on.length === 0) out.push(`${indent}${p.dim("blocked, but the engine names nothing it waits for")}`)
    walk(t, indent, 0)
  }

  /** The error and the way back to its root: cause_future -> producer -> its cause_future ... */
  const causeChain = (t: TaskView, indent: string, out: Array<string>) => {
    const e = t.error
    if (!e) return
    const head = e.retrying ? `last error (will retry): ` : "error: "
    out.push(`${indent}${p.color(e.retrying ? "yellow" : "red", head + `${e.code}: ${e.message}`)}`)
    const visited = new Set<string>([t.id])
    let cur: TaskView = t
    let root: string | undefined
    for (let hop = 0; hop < 100; hop++) {
      const cf = cur.error?.cause_future
      if (cf === undefined) {
        if (cur !== t) root = cur.id
        break
      }
      const producerId = m.outputOf.get(cf)?.task ?? m.futures.get(cf)?.producer
      const producer = producerId === undefined ? undefined : task(producerId)
      out.push(
        `${indent}  <- via ${futureLabel(cf)} from ${
          producer ? describe(producer.id) : producerId ? `task ${producerId} (not loaded)` : "an unknown producer"
        }`
      )
      if (!producer || visited.has(producer.id)) break
      visited.add(producer.id)
      cur = producer
    }
    const ct = e.cause_task
    if (root !== undefined && ct !== undefined && root !== ct) {
      out.push(`${indent}  ${p.dim(`(the error names ${ct} as the root cause, the chain ended at ${root})`)}`)
    } else if (root === undefined && ct !== undefined && ct !== t.id) {
      out.push(`${indent}  root cause: ${describe(ct)}`)
    } else if (root !== undefined) {
      out.push(`${indent}  ${p.dim("root cause:")} ${nameOf(root)}`)
    }
  }

  const taskLine = (t: TaskView, prefix: string) => {
    const parts = [
      `${prefix}${p.color(taskColor[t.state], TASK_GLYPH[t.state])} ${p.bold(t.node)}`,
      t.task,
      st(t.state)
    ]
    const tm = timing(t, m.now)
    if (tm) parts.push(tm)
    if (t.worker) parts.push(`worker ${t.worker}`)
    parts.push(`attempts ${t.attempts}/${t.max_attempts}`)
    if (t.progress) {
      const pr = t.progress
      parts.push(`progress ${pr.done}${pr.total !== undefined ? `/${pr.total}` : ""}${pr.unit ? ` ${pr.unit}` : ""}` + (pr.total ? ` (${Math.floor((100 * pr.done) / pr.total)}%)` : ""))
    }
    parts.push(p.dim(t.id))
    return parts.join("  ")
  }

  const details = (t: TaskView, pad: string, out: Array<string>) => {
    const incoming = m.edges.filter((e) => e.to === t.id)
    if (incoming.length > 0) {
      const deps = incoming.map((e) => {
        const src = task(e.from)
        const name = src ? (isMain(src) ? src.node : `${src.node}@${src.graph}`) : e.from
        const what = e.reason === "input" ? (e.output ?? "input") : `resource ${e.key ?? "?"}`
        return `${name} (${what})`
      })
      out.push(`${pad}${p.dim("after:")} ${deps.join(", ")}`)
    }
    const outs = outputsOf(t, m.futures)
    if (outs.length > 0) out.push(`${pad}${p.dim("out:")}   ${outs.map((o) => `${o.name} ${o.id} ${fst(o.state)}`).join(", ")}`)
    if (t.error) causeChain(t, pad, out)
    if (t.state === "blocked") {
      out.push(`${pad}${p.color("yellow", "why blocked:")}`)
      why(t, `${pad}  `, out)
    } else if (t.state === "ready") {
      const retry = retryAt(t)
      out.push(retry !== undefined
        ? `${pad}${p.color("yellow", `ready: waits for its ${retryPhrase(retry, m.now)}, keeping its place on its resource keys`)}`
        : `${pad}${p.dim("ready: waits only for a free worker")}`)
    }
  }

  const out: Array<string> = []
  const g = m.graph
  const counts = stateCounts(m)
  const summary = [...counts.entries()].map(([s, n]) => `${n} ${st(s)}`).join(", ")
  out.push(
    `${p.bold("graph")} ${g.id}${g.label ? ` ${JSON.stringify(g.label)}` : ""}  ${
      p.color(g.state === "succeeded" ? "green" : g.state === "failed" ? "red" : g.state === "canceled" ? "magenta" : g.state === "running" ? "cyan" : "yellow", g.state)
    }  created ${g.created_at}${g.finished_at ? `  finished ${g.finished_at}` : ""}`
  )
  if (m.root.kind !== "graph") {
    const t = m.root.kind === "task" ? task(m.root.id) : undefined
    const o = m.root.kind === "future" ? m.outputOf.get(m.root.id) : undefined
    const what = t ? ` is node ${t.node}` : o ? ` is output ${task(o.task)?.node ?? o.task}.${o.output}` : ""
    out.push(p.dim(`(${m.root.kind} ${m.root.id}${what} of this graph)`))
  }
  out.push(`${m.order.length} task${m.order.length === 1 ? "" : "s"}: ${summary}`)
  out.push("")
  for (const id of m.order) {
    const t = task(id)!
    const level = m.level.get(id) ?? 0
    const indent = "  ".repeat(Math.min(level, MAX_INDENT_LEVEL))
    const prefix = level === 0 ? "" : `${indent.slice(2)}└ `
    out.push(taskLine(t, prefix) + (level > MAX_INDENT_LEVEL ? p.dim(`  (level ${level})`) : ""))
    details(t, `${indent}    `, out)
  }
  if (m.external.length > 0) {
    out.push("")
    out.push(p.bold("in other graphs (upstream, blockers, causes):"))
    for (const id of m.external) {
      const t = task(id)!
      out.push(`${taskLine(t, "")}  ${p.dim(`graph ${t.graph}`)}`)
      if (t.error) causeChain(t, "    ", out)
    }
  }
  return out.join("\n") + "\n"
}

// ---- mermaid --------------------------------------------------------------------------------------

const mermaidFill: Record<TaskState, string> = {
  blocked: "fill:#fff3cd,stroke:#b58900",
  ready: "fill:#dbe9ff,stroke:#268bd2",
  running: "fill:#d1f2f7,stroke:#2aa198,stroke-width:3px",
  succeeded: "fill:#d4edda,stroke:#2e7d32",
  failed: "fill:#f8d7da,stroke:#c62828",
  canceled: "fill:#eeeeee,stroke:#8e24aa,stroke-dasharray:4 2"
}

/** Mermaid text inside "...": quotes and angle brackets as entities. */
const mq = (s: string) => s.replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;")
const mid = (id: string) => `t_${id}`

const edgeLabel = (e: Edge) => (e.reason === "input" ? (e.output ?? "input") : (e.key ?? "resource")) + (e.waiting ? " (waiting)" : "")

/** Tasks grouped by graph, main graph first. */
const byGraph = (m: DagModel) => {
  const groups = new Map<string, Array<TaskView>>([[m.graph.id, m.order.map((id) => m.tasks.get(id)!)]])
  for (const id of m.external) {
    const t = m.tasks.get(id)!
    ;(groups.get(t.graph) ?? groups.set(t.graph, []).get(t.graph)!).push(t)
  }
  return groups
}

/** Edges between loaded tasks only (a renderer cannot draw a node it knows nothing of). */
const drawable = (m: DagModel) => m.edges.filter((e) => m.tasks.has(e.from) && m.tasks.has(e.to))

export const renderMermaid = (m: DagModel): string => {
  const out: Array<string> = ["flowchart TD"]
  for (const [s, style] of Object.entries(mermaidFill)) out.push(`  classDef ${s} ${style}`)
  for (const [gid, tasks] of byGraph(m)) {
    const title = gid === m.graph.id ? `graph ${gid}${m.graph.label ? ` ${m.graph.label}` : ""} (${m.graph.state})` : `graph ${gid}`
    out.push(`  subgraph g_${gid}["${mq(title)}"]`)
    for (const t of tasks) {
      const extra = t.state === "running" && t.worker ? `on ${t.worker}` : t.error ? t.error.code : undefined
      const label = [t.node, t.task, t.state, ...(extra === undefined ? [] : [extra])].map(mq).join("<br/>")
      out.push(`    ${mid(t.id)}["${label}"]:::${t.state}`)
    }
    out.push("  end")
  }
  for (const e of drawable(m)) {
    const arrow = e.reason === "resource" ? "-.->" : e.waiting ? "==>" : "-->"
    out.push(`  ${mid(e.from)} ${arrow}|"${mq(edgeLabel(e))}"| ${mid(e.to)}`)
  }
  return out.join("\n") + "\n"
}

// ---- dot ------------------------------------------------------------------------------------------

const dotFill: Record<TaskState, string> = {
  blocked: "#fff3cd",
  ready: "#dbe9ff",
  running: "#d1f2f7",
  succeeded: "#d4edda",
  failed: "#f8d7da",
  canceled: "#eeeeee"
}

const dq = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")}"`

export const renderDot = (m: DagModel): string => {
  const out: Array<string> = [
    `digraph ${dq(`cairn ${m.graph.id}`)} {`,
    "  rankdir=TB;",
    "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];",
    "  edge [fontname=\"Helvetica\", fontsize=10];"
  ]
  for (const [gid, tasks] of byGraph(m)) {
    const title = gid === m.graph.id ? `graph ${gid}${m.graph.label ? ` "${m.graph.label}"` : ""} (${m.graph.state})` : `graph ${gid}`
    out.push(`  subgraph ${dq(`cluster_${gid}`)} {`)
    out.push(`    label=${dq(title)};`)
    for (const t of tasks) {
      const extra = t.state === "running" && t.worker ? `\non ${t.worker}` : t.error ? `\n${t.error.code}` : ""
      const pen = t.state === "running" ? ", penwidth=2" : ""
      out.push(`    ${dq(t.id)} [label=${dq(`${t.node}\n${t.task}\n${t.state}${extra}`)}, fillcolor=${dq(dotFill[t.state])}${pen}];`)
    }
    out.push("  }")
  }
  for (const e of drawable(m)) {
    const attrs = [`label=${dq(edgeLabel(e))}`]
    if (e.reason === "resource") attrs.push("style=dashed")
    if (e.waiting) attrs.push("color=\"#b58900\"", "penwidth=2")
    out.push(`  ${dq(e.from)} -> ${dq(e.to)} [${attrs.join(", ")}];`)
  }
  out.push("}")
  return out.join("\n") + "\n"
}

// ---- json -----------------------------------------------------------------------------------------

export interface JsonDocument {
  readonly root: DagModel["root"]
  readonly graph: { id: string; label?: string; state: string; created_at: string; finished_at?: string }
  readonly tasks: ReadonlyArray<
    TaskView & { readonly in_graph: boolean; readonly level?: number; readonly output_states: Record<string, FutureState> }
  >
  readonly edges: ReadonlyArray<{ from: string; to: string; reason: "input" | "resource"; key?: string; future?: string; output?: string; waiting: boolean }>
}

export const toJson = (m: DagModel): JsonDocument => {
  const { nodes: _nodes, ...graph } = m.graph
  const task = (id: string, inGraph: boolean) => {
    const t = m.tasks.get(id)!
    const level = m.level.get(id)
    return {
      ...t,
      in_graph: inGraph,
      ...(inGraph && level !== undefined ? { level } : {}),
      output_states: Object.fromEntries(outputsOf(t, m.futures).map((o) => [o.name, o.state]))
    }
  }
  return {
    root: m.root,
    graph,
    tasks: [...m.order.map((id) => task(id, true)), ...m.external.map((id) => task(id, false))],
    edges: m.edges.map((e) => ({ ...e }))
  }
}

export const renderJson = (m: DagModel): string => JSON.stringify(toJson(m), null, 2) + "\n"

export const render = (m: DagModel, format: Format, opts: TextOptions): string => {
  switch (format) {
    case "text":
      return renderText(m, opts)
    case "mermaid":
      return renderMermaid(m)
    case "dot":
      return renderDot(m)
    case "json":
      return renderJson(m)
  }
}
