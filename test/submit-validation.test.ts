/**
 * Graph validation without the database (src/engine/submit/validate.ts): the sentences each node
 * gets, which nodes later steps leave out, and the stored form of refs and resource keys.
 * test/api-graphs.test.ts covers the same rules through HTTP (which nodes a 400 names); these
 * check the sentences themselves and the cases that are awkward to reach from there.
 */
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { defineKind, FutureRef, type TaskKind } from "../src/engine/kind.js"
import { debugSleep } from "../src/engine/kinds/debug-sleep.js"
import {
  checkNodes,
  checkParams,
  MAX_NODE_KEYS,
  MAX_PARAMS_DEPTH,
  missingFutures,
  Problems,
  resolveRefs,
  storedParams
} from "../src/engine/submit/validate.js"

/** Two outputs, and resource keys derived from its params. */
const pair = defineKind({
  name: "test.pair",
  params: Schema.Struct({ repo: Schema.String, source: Schema.optional(FutureRef("value")) }),
  outputs: { left: "value", right: "publication" },
  resources: (p) => ({ exclusive: [`repo:${p.repo}`], shared: ["registry", `repo:${p.repo}`] }),
  handler: () => Effect.succeed({ left: null, right: null })
})

const kinds = new Map<string, TaskKind>([[debugSleep.name, debugSleep], [pair.name, pair]])

/** Ids in call order: t1, t2, ... */
const counter = () => {
  let n = 0
  return () => `id${++n}`
}

const validate = (nodes: Record<string, unknown>) => {
  const problems = new Problems()
  const checked = checkNodes(nodes, kinds, counter(), problems)
  const refs = resolveRefs(checked, nodes, problems)
  return { problems, checked, ...refs }
}

const EXTERNAL = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

describe("checkNodes", () => {
  it("names every problem of every node, and keeps only nodes that passed", () => {
    const { problems, checked } = validate({
      "Bad Name": { task: "debug.sleep" },
      unknown: { task: "no.such" },
      extra: { task: "debug.sleep", whatever: 1 },
      keys: {
        task: "debug.sleep",
        resources: { exclusive: Array.from({ length: MAX_NODE_KEYS }, (_, i) => `k${i}`), shared: [""] }
      },
      fine: { task: "debug.sleep" }
    })
    expect(problems.byNode).toEqual({
      "Bad Name": ["node name must match ^[a-z][a-z0-9_-]{0,62}$"],
      unknown: ["unknown task kind \"no.such\"; known kinds: debug.sleep, test.pair"],
      extra: ["whatever: is unexpected, expected: \"task\" | \"params\" | \"resources\" | \"max_attempts\" | \"priority\" | \"retry_backoff_ms\""],
      keys: [
        `a node declares at most ${MAX_NODE_KEYS} resource keys; this one declares ${MAX_NODE_KEYS + 1}`,
        "resource keys must have 1 to 512 characters"
      ]
    })
    // A bad name or bad keys do not stop the node from being checked further (so its refs are).
    expect(checked.map((n) => n.name)).toEqual(["Bad Name", "keys", "fine"])
  })

  it("takes an integer priority and a backoff of 0 to 10 minutes, naming the node for anything else", () => {
    const { problems, checked } = validate({
      half: { task: "debug.sleep", priority: 1.5 },
      text: { task: "debug.sleep", priority: "high" },
      huge: { task: "debug.sleep", priority: 2 ** 31 },
      negative: { task: "debug.sleep", retry_backoff_ms: -1 },
      fraction: { task: "debug.sleep", retry_backoff_ms: 0.5 },
      long: { task: "debug.sleep", retry_backoff_ms: 600_001 },
      fine: { task: "debug.sleep", priority: -7, retry_backoff_ms: 600_000 },
      plain: { task: "debug.sleep" }
    })
    expect(Object.keys(problems.byNode).sort()).toEqual(["fraction", "half", "huge", "long", "negative", "text"])
    for (const [node, field] of [["half", "priority"], ["text", "priority"], ["huge", "priority"], ["negative", "retry_backoff_ms"], ["fraction", "retry_backoff_ms"], ["long", "retry_backoff_ms"]]) {
      expect(problems.byNode[node!]!.join(" "), node).toContain(field)
    }
    expect(problems.byNode.half!.join(" ")).toContain("integer")
    expect(checked.filter((n) => n.name === "fine" || n.name === "plain").map((n) => [n.name, n.priority, n.retryBackoffMs])).toEqual([
      ["fine", -7, 600_000],
      ["plain", 0, 0]
    ])
  })

  it("gives each node that passed a task id, then its output ids, in body order", () => {
    const { checked } = validate({ a: { task: "test.pair", params: { repo: "r" } }, bad: { task: "no.such" }, b: { task: "debug.sleep" } })
    expect(checked.map((n) => [n.name, n.taskId, n.outputs])).toEqual([
      ["a", "id1", { left: "id2", right: "id3" }],
      ["b", "id4", { result: "id5" }]
    ])
  })

  it("refuses a node nested too deep before anything walks it recursively", () => {
    let deep: unknown = 0
    for (let i = 0; i < 200_000; i++) deep = [deep]
    const { problems, checked } = validate({ a: { task: "debug.sleep", params: { value: deep } } })
    expect(problems.byNode).toEqual({ a: [`the node nests too deep: params may nest at most ${MAX_PARAMS_DEPTH} levels`] })
    expect(checked).toEqual([])
  })

  it("treats client-chosen names like __proto__ and constructor as plain names", () => {
    const nodes = JSON.parse('{"__proto__": {"task": "no.such"}, "constructor": {"task": "no.such"}}') as Record<string, unknown>
    const { problems } = validate(nodes)
    expect(Object.keys(problems.byNode).sort()).toEqual(["__proto__", "constructor"])
    expect(problems.count).toBe(2)
    expect(problems.has("toString")).toBe(false)
  })
})

describe("resolveRefs", () => {
  it("classifies refs, names the bad ones with their path, and does not blame a node for its target's problems", () => {
    const { problems, nodes, external, unresolved } = validate({
      broken: { task: "no.such" },
      a: {
        task: "debug.sleep",
        params: {
          inputs: [
            { $ref: 5 },
            { $ref: "x", y: 1 },
            { $ref: "not a ref" },
            { $ref: "zz.result" },
            { $ref: "b.nope" },
            { $ref: "broken.result" },
            { $ref: "b.result" },
            { $ref: EXTERNAL }
          ]
        }
      },
      b: { task: "debug.sleep" }
    })
    expect(problems.byNode["a"]).toEqual([
      "params.inputs[0]: a reference is {\"$ref\": \"<node>.<output>\"} or {\"$ref\": \"<future id>\"} and nothing else",
      "params.inputs[1]: a reference is {\"$ref\": \"<node>.<output>\"} or {\"$ref\": \"<future id>\"} and nothing else",
      "params.inputs[2]: \"not a ref\" is neither \"<node>.<output>\" nor a future id",
      "params.inputs[3]: \"zz.result\" refers to a node that is not in this graph",
      "params.inputs[4]: node b (debug.sleep) has no output \"nope\"; it has result"
    ])
    expect(unresolved).toEqual(new Set(["a"]))
    expect(external).toEqual(new Set([EXTERNAL]))
    expect(nodes.find((n) => n.name === "a")!.refs).toEqual([
      { local: true, node: "b", output: "result" },
      { local: false, future: EXTERNAL }
    ])
  })
})

describe("missingFutures, storedParams, checkParams", () => {
  it("reports futures of earlier graphs that do not exist", () => {
    const { problems, nodes } = validate({ a: { task: "debug.sleep", params: { inputs: [{ $ref: EXTERNAL }] } } })
    missingFutures(nodes, new Map(), problems)
    expect(problems.byNode).toEqual({ a: [`future ${EXTERNAL} does not exist`] })
    const fine = new Problems()
    missingFutures(nodes, new Map([[EXTERNAL, "value"]]), fine)
    expect(fine.count).toBe(0)
  })

  it("rewrites refs as { $ref: <future id>, kind }, local and external, however deep", () => {
    const { checked, nodes } = validate({
      p: { task: "test.pair", params: { repo: "r" } },
      a: { task: "debug.sleep", params: { value: { deep: [{ $ref: "p.right" }] }, inputs: [{ $ref: "p.left" }, { $ref: EXTERNAL }] } }
    })
    const byName = new Map(checked.map((n) => [n.name, n]))
    const p = byName.get("p")!
    expect(storedParams(nodes[1]!, byName, new Map([[EXTERNAL, "repository_version"]]))).toEqual({
      value: { deep: [{ $ref: p.outputs["right"], kind: "publication" }] },
      inputs: [{ $ref: p.outputs["left"], kind: "value" }, { $ref: EXTERNAL, kind: "repository_version" }]
    })
  })

  it("checks params against the kind's Schema with their path, and merges the kind's keys with the declared ones", () => {
    const { nodes, checked } = validate({
      p: { task: "test.pair", params: { repo: "r" }, resources: { exclusive: ["mine"], shared: ["registry", "other", "mine"] } },
      q: { task: "test.pair", params: { repo: 5 } }
    })
    const byName = new Map(checked.map((n) => [n.name, n]))
    const problems = new Problems()
    const p = checkParams(nodes[0]!, storedParams(nodes[0]!, byName, new Map()), problems)
    // A key held both ways is held exclusively; each key once.
    expect(p?.exclusive).toEqual(["repo:r", "mine"])
    expect(p?.shared).toEqual(["registry", "other"])
    expect(checkParams(nodes[1]!, storedParams(nodes[1]!, byName, new Map()), problems)).toBeUndefined()
    expect(problems.byNode).toEqual({ q: ["params.repo: Expected string, actual 5"] })
  })

  it("refuses a ref to a future of the wrong kind at the param's path", () => {
    const { nodes, checked } = validate({
      s: { task: "debug.sleep" },
      p: { task: "test.pair", params: { repo: "r", source: { $ref: "s.result" } } },
      q: { task: "test.pair", params: { repo: "r", source: { $ref: "p.right" } } }
    })
    const byName = new Map(checked.map((n) => [n.name, n]))
    const problems = new Problems()
    for (const n of nodes.slice(1)) checkParams(n, storedParams(n, byName, new Map()), problems)
    expect(Object.keys(problems.byNode)).toEqual(["q"])
    expect(problems.byNode["q"]![0]).toMatch(/^params\.source\.kind: /)
  })
})
