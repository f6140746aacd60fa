/**
 * src/dag: the model and the renderers on hand-built graphs (no server, no database).
 */
import { describe, expect, it } from "vitest"
import {
  buildModel,
  DagError,
  type DagModel,
  type FutureView,
  type GraphView,
  inputRefs,
  loadSnapshot,
  type Snapshot,
  type Source,
  type TaskView
} from "../src/dag/model.js"
import { renderDot, renderMermaid, renderText, toJson } from "../src/dag/render.js"

/**
 * The console's sentences (console/src/explain.ts) from the same model. The console's sources are
 * typed against the DOM (console/tsconfig.json checks them), so they are loaded untyped here.
 */
type Sentence = ReadonlyArray<{ text: string } | { code: string } | { task: string; label: string }>
const explainModule: string = "../console/src/explain.js"
const explain = (await import(explainModule)) as {
  situation: (m: DagModel, t: TaskView, now: number) => Sentence
  waitLines: (m: DagModel, t: TaskView, now: number) => ReadonlyArray<{ sentence: Sentence }>
}

const NOW = Date.parse("2025-01-01T12:00:30.000Z")
const at = (s: number) => new Date(Date.parse("2025-01-01T12:00:00.000Z") + s * 1000).toISOString()

// 26-character ids: a readable stem padded with zeros (shape only; the renderers do not check them).
const id = (stem: string) => stem.toUpperCase().padEnd(26, "0")
const G = id("G1")
const OTHER = id("G2")

const task = (node: string, fields: Partial<TaskView> = {}): TaskView => ({
  id: id(`T${node}`),
  graph: G,
  node,
  task: "debug.sleep",
  state: "succeeded",
  params: {},
  outputs: { result: id(`F${node}`) },
  inputs: [],
  resources: { exclusive: [], shared: [] },
  waiting_on: [],
  attempts: 1,
  max_attempts: 1,
  priority: 0,
  retry_backoff_ms: 0,
  created_at: at(0),
  ...fields
})
const ref = (node: string) => ({ $ref: id(`F${node}`), kind: "value" })

/**
 * a        running on w1 for 12s
 * b        blocked on input a.result
 * c        blocked on key repository:abc, held by x of another graph (running)
 * d        blocked on key repository:abc behind c (queued), which waits for x
 * f1       failed (task_failed)
 * f2       upstream_failed via f1.result
 * f3       upstream_failed via f2.result (root: f1)
 */
const a = task("a", { state: "running", worker: "w1", started_at: at(18), ready_at: at(17) })
const b = task("b", {
  state: "blocked",
  attempts: 0,
  params: { inputs: [ref("a")] },
  waiting_on: [{ task: a.id, reason: "input", future: id("Fa") }]
})
const x = task("x", { graph: OTHER, state: "running", worker: "w2", started_at: at(0), resources: { exclusive: ["repository:abc"], shared: [] } })
const c = task("c", {
  state: "blocked",
  attempts: 0,
  resources: { exclusive: ["repository:abc"], shared: [] },
  waiting_on: [{ task: x.id, reason: "resource", key: "repository:abc" }]
})
const d = task("d", {
  state: "blocked",
  attempts: 0,
  resources: { exclusive: [], shared: ["repository:abc"] },
  waiting_on: [{ task: c.id, reason: "resource", key: "repository:abc" }]
})
const f1 = task("f1", { state: "failed", started_at: at(1), finished_at: at(3), error: { code: "task_failed", message: "disk full" } })
const f2 = task("f2", {
  state: "failed",
  attempts: 0,
  params: { inputs: [ref("f1")] },
  finished_at: at(3),
  error: { code: "upstream_failed", message: "input failed upstream: disk full", cause_future: id("Ff1"), cause_task: f1.id }
})
const f3 = task("f3", {
  state: "failed",
  attempts: 0,
  params: { inputs: [ref("f2")] },
  finished_at: at(3),
  error: { code: "upstream_failed", message: "input failed upstream: disk full", cause_future: id("Ff2"), cause_task: f1.id }
})

const graphOf = (tasks: ReadonlyArray<TaskView>, gid = G): GraphView => ({
  id: gid,
  label: "demo",
  state: "running",
  created_at: at(0),
  nodes: Object.fromEntries(tasks.filter((t) => t.graph === gid).map((t) => [t.node, t]))
})

const snapshot = (tasks: ReadonlyArray<TaskView>, extra: Partial<Snapshot> = {}): Snapshot => ({
  root: { kind: "graph", id: G },
  graph: graphOf(tasks),
  tasks: new Map(tasks.map((t) => [t.id, t])),
  futures: new Map(),
  now: NOW,
  ...extra
})

const model = buildModel(snapshot([a, b, x, c, d, f1, f2, f3]))
const text = renderText(model, { color: false, depth: 10 })
const lines = text.split("\n")
const lineWith = (s: string) => {
  const i = lines.findIndex((l) => l.includes(s))
  expect(i, `a line containing ${JSON.stringify(s)} in:\n${text}`).toBeGreaterThanOrEqual(0)
  return i
}

describe("dag model", () => {
  it("finds every $ref in params, once", () => {
    expect(inputRefs({ a: ref("a"), list: [ref("b"), { deep: ref("a") }], n: 1 })).toEqual([id("Fa"), id("Fb")])
  })

  it("orders producers before consumers even when the graph lists them the other way round", () => {
    const late = task("late", { params: { inputs: [ref("early")] } })
    const early = task("early")
    const m = buildModel(snapshot([late, early]))
    expect(m.order).toEqual([early.id, late.id])
    expect(m.level.get(late.id)).toBe(1)
  })

  it("draws input edges from params, resource edges from waiting_on (across graphs) and FCFS order in the graph", () => {
    const e = model.edges
    expect(e).toContainEqual({ from: a.id, to: b.id, reason: "input", future: id("Fa"), output: "result", waiting: true })
    expect(e).toContainEqual({ from: x.id, to: c.id, reason: "resource", key: "repository:abc", waiting: true })
    expect(e).toContainEqual({ from: c.id, to: d.id, reason: "resource", key: "repository:abc", waiting: true })
    expect(e).toContainEqual({ from: f1.id, to: f2.id, reason: "input", future: id("Ff1"), output: "result", waiting: false })
    expect(model.external).toEqual([x.id])
  })
})

describe("dag text", () => {
  it("says which input a blocked task waits for, whose it is and what that producer is doing", () => {
    expect(text).toContain(`<- input ${id("Fa")} (a.result, pending) of a (running on w1 for 12s)`)
  })

  it("follows the blocker chain across graphs, one level deeper per hop", () => {
    const queued = lineWith("<- resource repository:abc queued ahead by c (blocked for 30s)")
    expect(lines[queued]!.indexOf("<-")).toBeLessThan(lines[queued + 1]!.indexOf("<-"))
    expect(lines[queued + 1]).toContain(`<- resource repository:abc held by x@${OTHER} (running on w2 for 30s)`)
    // c's own why names x directly.
    expect(text).toContain(`why blocked:\n      <- resource repository:abc held by x@${OTHER}`)
  })

  it("prints the cause chain of a failure hop by hop down to its root", () => {
    const head = lineWith("error: upstream_failed: input failed upstream: disk full")
    const f3Line = lineWith("✖ f3")
    const chain = lines.slice(f3Line)
    const hop1 = chain.findIndex((l) => l.includes(`<- via ${id("Ff2")} (f2.result, failed) from f2 (failed — upstream_failed`))
    const hop2 = chain.findIndex((l) => l.includes(`<- via ${id("Ff1")} (f1.result, failed) from f1 (failed — task_failed: disk full)`))
    expect(hop1).toBeGreaterThan(0)
    expect(hop2).toBe(hop1 + 1)
    expect(chain[hop2 + 1]).toMatch(/root cause: f1$/)
    expect(head).toBeGreaterThan(0)
  })

  it("shows state, timing, worker, attempts, outputs and the task of another graph", () => {
    const aLine = lines[lineWith("▶ a")]!
    expect(aLine).toMatch(/debug\.sleep\s+running\s+running for 12s\s+worker w1\s+attempts 1\/1/)
    expect(text).toContain(`out:   result ${id("Fa")} pending`)
    expect(text).toContain(`out:   result ${id("Ff1")} failed`)
    expect(text).toContain("in other graphs")
    // b (level 1, after a) is drawn further right than a (level 0), under a "└".
    expect(lines[lineWith("◌ b")]!.indexOf("◌")).toBeGreaterThan(aLine.indexOf("▶"))
    expect(lines[lineWith("◌ b")]).toMatch(/^\s*└ ◌ b/)
  })

  it("says when a ready task waiting for its retry will run again, and draws no edge for that wait", () => {
    const r = task("r", {
      state: "ready",
      attempts: 1,
      max_attempts: 3,
      ready_at: at(45),
      error: { code: "task_failed", message: "flaky", retrying: true },
      waiting_on: [{ task: id("Tr"), reason: "retry", retry_at: at(45) }]
    })
    const m = buildModel(snapshot([r]))
    expect(m.edges).toEqual([])
    const out = renderText(m, { color: false, depth: 10 })
    expect(out).toMatch(/○ r\s+debug\.sleep\s+ready\s+retry at 12:00:45Z \(in 15s\)/)
    expect(out).toContain("ready: waits for its retry at 12:00:45Z (in 15s), keeping its place on its resource keys")
    expect(out).toContain("last error (will retry): task_failed: flaky")
  })

  it("the console says so too: the waiting retry's situation, and a task behind it on a key", () => {
    const r = task("r", {
      state: "ready",
      attempts: 1,
      max_attempts: 3,
      ready_at: at(45),
      resources: { exclusive: ["repository:abc"], shared: [] },
      error: { code: "task_failed", message: "flaky", retrying: true },
      waiting_on: [{ task: id("Tr"), reason: "retry", retry_at: at(45) }]
    })
    const behind = task("behind", {
      state: "blocked",
      attempts: 0,
      resources: { exclusive: ["repository:abc"], shared: [] },
      waiting_on: [{ task: r.id, reason: "resource", key: "repository:abc" }]
    })
    const m = buildModel(snapshot([r, behind]))
    const words = (s: Sentence) => s.map((p) => ("text" in p ? p.text : "code" in p ? p.code : p.label)).join("")
    expect(words(explain.situation(m, r, NOW))).toBe(
      "attempt 1 of 3 failed; waits for its retry at 12:00:45Z (in 15s), keeping its place on its resource keys"
    )
    expect(explain.waitLines(m, behind, NOW).map((l) => words(l.sentence))).toEqual([
      "waits behind r on key repository:abc (waiting for its retry at 12:00:45Z (in 15s))"
    ])
    // A ready task that is not waiting for a retry still reads as before.
    const plain = task("plain", { state: "ready", ready_at: at(20) })
    expect(words(explain.situation(buildModel(snapshot([plain])), plain, NOW))).toBe("ready for 10s: it waits only for a free worker")
  })

  it("stops at the depth limit and on cycles", () => {
    // Two blocked tasks of another graph that name each other (the engine never does; the view must not loop).
    const p = task("p", { graph: OTHER, state: "blocked", waiting_on: [{ task: id("Tq"), reason: "resource", key: "k" }] })
    const q = task("q", { graph: OTHER, state: "blocked", waiting_on: [{ task: id("Tp"), reason: "resource", key: "k" }] })
    const s = task("s", { state: "blocked", waiting_on: [{ task: p.id, reason: "resource", key: "k" }] })
    const cyc = renderText(buildModel(snapshot([s, p, q])), { color: false, depth: 10 })
    expect(cyc).toContain("(see above)")
    const shallow = renderText(buildModel(snapshot([s, p, q])), { color: false, depth: 1 })
    expect(shallow).toContain("stopped at depth 1")
  })

  it("uses ANSI colours only when asked", () => {
    expect(text).not.toContain("\x1b[")
    const coloured = renderText(model, { color: true, depth: 10 })
    expect(coloured).toContain("\x1b[31mfailed\x1b[39m")
    expect(coloured).toContain("\x1b[36mrunning\x1b[39m")
  })
})

describe("dag mermaid, dot, json", () => {
  it("mermaid: a flowchart with every edge, resource edges dotted, other graphs as subgraphs", () => {
    const m = renderMermaid(model)
    expect(m.startsWith("flowchart TD\n")).toBe(true)
    expect(m).toContain(`t_${a.id} ==>|"result (waiting)"| t_${b.id}`)
    expect(m).toContain(`t_${f1.id} -->|"result"| t_${f2.id}`)
    expect(m).toContain(`t_${x.id} -.->|"repository:abc (waiting)"| t_${c.id}`)
    expect(m).toContain(`subgraph g_${OTHER}[`)
    expect(m).toContain(`t_${f1.id}["f1<br/>debug.sleep<br/>failed<br/>task_failed"]:::failed`)
  })

  it("dot: a digraph with one cluster per graph and every edge", () => {
    const g = renderDot(model)
    expect(g).toMatch(/^digraph "cairn [0-9A-Z]+" \{/)
    expect(g).toContain(`subgraph "cluster_${OTHER}"`)
    expect(g).toContain(`"${f2.id}" -> "${f3.id}" [label="result"];`)
    expect(g).toMatch(new RegExp(`"${x.id}" -> "${c.id}" \\[label="repository:abc \\(waiting\\)", style=dashed`))
    expect(g.trimEnd().endsWith("}")).toBe(true)
  })

  it("json: graph, tasks with waiting_on (graph order first, then other graphs), edges", () => {
    const doc = JSON.parse(JSON.stringify(toJson(model))) as ReturnType<typeof toJson>
    expect(doc.graph).toEqual({ id: G, label: "demo", state: "running", created_at: at(0) })
    expect(doc.tasks.map((t) => t.node)).toEqual(["a", "b", "c", "d", "f1", "f2", "f3", "x"])
    expect(doc.tasks.find((t) => t.node === "c")!.waiting_on).toEqual([{ task: x.id, reason: "resource", key: "repository:abc" }])
    expect(doc.tasks.find((t) => t.node === "x")!.in_graph).toBe(false)
    expect(doc.tasks.find((t) => t.node === "f1")!.output_states).toEqual({ result: "failed" })
    expect(doc.edges).toContainEqual({ from: c.id, to: d.id, reason: "resource", key: "repository:abc", waiting: true })
    for (const e of doc.edges) expect(["input", "resource"]).toContain(e.reason)
  })
})

describe("dag loading through a Source", () => {
  const fake = (tasks: ReadonlyArray<TaskView>, futures: ReadonlyArray<FutureView> = []): Source & { calls: Array<string> } => {
    const calls: Array<string> = []
    const graphs = new Set(tasks.map((t) => t.graph))
    return {
      name: "fake",
      calls,
      getGraph: async (i) => (calls.push(`graph ${i}`), graphs.has(i) ? graphOf(tasks, i) : undefined),
      getTask: async (i) => (calls.push(`task ${i}`), tasks.find((t) => t.id === i)),
      getFuture: async (i) => {
        calls.push(`future ${i}`)
        const f = futures.find((x) => x.id === i)
        if (f) return f
        const p = tasks.find((t) => Object.values(t.outputs).includes(i))
        return p ? { id: i, kind: "value", state: "pending", producer: p.id, created_at: at(0) } : undefined
      },
      close: async () => undefined
    }
  }

  it("starts from a future, shows its graph and pulls in the upstream task of another graph", async () => {
    const up = task("up", { graph: OTHER, state: "running", worker: "w9", started_at: at(20) })
    const down = task("down", {
      state: "blocked",
      params: { inputs: [ref("up")] },
      waiting_on: [{ task: up.id, reason: "input", future: id("Fup") }]
    })
    const src = fake([up, down])
    const snap = await loadSnapshot(src, id("Fdown"), { depth: 10, now: () => NOW })
    expect(snap.root).toEqual({ kind: "future", id: id("Fdown") })
    expect(snap.graph.id).toBe(G)
    expect([...snap.tasks.keys()].sort()).toEqual([down.id, up.id].sort())
    const t = renderText(buildModel(snap), { color: false, depth: 10 })
    expect(t).toContain(`<- input ${id("Fup")} (up.result, pending) of up@${OTHER} (running on w9 for 10s)`)
  })

  it("fails with one sentence for an id that is nothing", async () => {
    await expect(loadSnapshot(fake([a]), id("NOPE"), { depth: 10 })).rejects.toThrow(DagError)
    await expect(loadSnapshot(fake([a]), id("NOPE"), { depth: 10 })).rejects.toThrow(/is not a graph, task or future known to fake/)
  })
})
