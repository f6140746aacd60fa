/**
 * GET /metrics of a real `serve` process is well-formed Prometheus text (exposition format 0.0.4),
 * read by a strict parser: every family has one HELP and one TYPE line ahead of its samples, its
 * samples are contiguous (no family split in two around another), no series appears twice, and each
 * histogram's buckets rise to one `+Inf` bucket equal to its `_count`. Also: every metric cairn
 * documents is there, with its type and labels.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

interface Sample {
  readonly name: string
  /** Sorted `k="v"` pairs, comma-joined. */
  readonly labels: string
  readonly le: string | undefined
  readonly value: number
}

interface Family {
  readonly name: string
  help: string | undefined
  type: string | undefined
  readonly samples: Array<Sample>
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`)
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`)
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/y

const parseValue = (v: string, line: string) => {
  if (v === "+Inf") return Infinity
  if (v === "-Inf") return -Infinity
  if (v === "NaN") return NaN
  if (!/^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(v)) throw new Error(`not a sample value: ${line}`)
  return Number(v)
}

const parseLabels = (text: string, line: string) => {
  const pairs: Array<[string, string]> = []
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const m = LABEL.exec(text)
    if (m === null) throw new Error(`malformed labels: ${line}`)
    pairs.push([m[1]!, m[2]!])
  }
  if (new Set(pairs.map(([k]) => k)).size !== pairs.length) throw new Error(`a label twice: ${line}`)
  return pairs
}

/** Families by name, in order; throws at the first line that breaks the format's rules. */
const parseStrict = (text: string): Map<string, Family> => {
  const families = new Map<string, Family>()
  const series = new Set<string>()
  let current: Family | undefined
  const open = (name: string, line: string) => {
    if (current?.name === name) return current
    if (families.has(name)) throw new Error(`family ${name} starts a second time: ${line}`)
    current = { name, help: undefined, type: undefined, samples: [] }
    families.set(name, current)
    return current
  }
  if (!text.endsWith("\n")) throw new Error("the text does not end with a newline")
  for (const line of text.slice(0, -1).split("\n")) {
    // The format ignores empty lines (prom-client puts one between families).
    if (line === "") continue
    let m = HELP.exec(line)
    if (m !== null) {
      const f = open(m[1]!, line)
      if (f.help !== undefined || f.type !== undefined || f.samples.length > 0) throw new Error(`HELP out of place: ${line}`)
      f.help = m[2]!
      continue
    }
    m = TYPE.exec(line)
    if (m !== null) {
      const f = open(m[1]!, line)
      if (f.type !== undefined || f.samples.length > 0) throw new Error(`TYPE out of place: ${line}`)
      f.type = m[2]!
      continue
    }
    m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a HELP, TYPE or sample line: ${JSON.stringify(line)}`)
    const [, name, labelText = "", value] = m
    const f = current
    const suffixes = f?.type === "histogram" ? ["_bucket", "_sum", "_count"] : f?.type === "summary" ? ["_sum", "_count"] : []
    if (f === undefined || (name !== f.name && !suffixes.some((s) => name === f.name + s))) {
      throw new Error(`sample outside its family (current family ${f?.name}): ${line}`)
    }
    if (f.type === undefined) throw new Error(`sample before its family's TYPE: ${line}`)
    const pairs = parseLabels(labelText, line)
    const le = pairs.find(([k]) => k === "le")?.[1]
    const labels = pairs.filter(([k]) => k !== "le").sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}="${v}"`).join(",")
    const key = `${name}{${labels}${le === undefined ? "" : `,le=${le}`}}`
    if (series.has(key)) throw new Error(`series twice: ${line}`)
    series.add(key)
    f.samples.push({ name: name!, labels, le, value: parseValue(value!, line) })
  }
  for (const f of families.values()) {
    if (f.help === undefined || f.type === undefined) throw new Error(`family ${f.name} without HELP or TYPE`)
    if (f.type !== "histogram") continue
    const byLabels = new Map<string, Array<Sample>>()
    for (const s of f.samples) byLabels.set(s.labels, [...(byLabels.get(s.labels) ?? []), s])
    for (const [labels, samples] of byLabels) {
      const buckets = samples.filter((s) => s.name.endsWith("_bucket"))
      const count = samples.find((s) => s.name.endsWith("_count"))
      const bounds = buckets.map((b) => (b.le === "+Inf" ? Infinity : parseValue(b.le ?? "", `${f.name}{${labels}}`)))
      for (let i = 1; i < buckets.length; i++) {
        if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`${f.name}{${labels}}: bucket bounds not increasing at le=${buckets[i]!.le}`)
        if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${f.name}{${labels}}: bucket counts not cumulative`)
      }
      if (buckets.at(-1)?.le !== "+Inf") throw new Error(`${f.name}{${labels}}: no +Inf bucket last`)
      if (count === undefined || count.value !== buckets.at(-1)!.value) throw new Error(`${f.name}{${labels}}: _count is not the +Inf bucket`)
    }
  }
  return families
}

let server: Server
let c: ReturnType<typeof api>

beforeAll(async () => {
  server = await startServer(await createTestDatabase())
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
})

describe("GET /metrics", () => {
  it("parses strictly once several label sets of several families have been updated in turn", async () => {
    // Label sets created one after the other, across families: content responses by method and
    // status, handler runs and durations by outcome.
    expect((await fetch(`${server.url}/content/nowhere/file`)).status).toBe(404)
    expect((await fetch(`${server.url}/content/nowhere/file`, { method: "HEAD" })).status).toBe(404)
    expect((await fetch(`${server.url}/content/%ZZ`)).status).toBe(404)
    const g = await c.post("/api/v1/graphs", {
      nodes: {
        ok: { task: "debug.sleep", params: { ms: 1 } },
        bad: { task: "debug.sleep", params: { fail: "on purpose" } },
        gc: { task: "orphans.cleanup", params: { protection_seconds: 0 } }
      }
    })
    expect(g.status).toBe(201)
    await c.settled(g.body.nodes.ok.outputs.result)
    await c.settled(g.body.nodes.bad.outputs.result)
    await c.settled(g.body.nodes.gc.outputs.report)
    const families = await until("both handler outcomes to be counted", async () => {
      const res = await fetch(`${server.url}/metrics`)
      expect(res.status).toBe(200)
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
      const parsed = parseStrict(await res.text())
      const runs = parsed.get("cairn_tasks_run_total")?.samples ?? []
      return runs.length >= 3 ? parsed : undefined
    })

    const expected: Record<string, readonly [string, ReadonlyArray<string>]> = {
      cairn_tasks: ["gauge", ["kind", "state"]],
      cairn_ready_queue_depth: ["gauge", []],
      cairn_futures: ["gauge", ["state"]],
      cairn_workers_alive: ["gauge", []],
      cairn_long_polls: ["gauge", []],
      cairn_db_pool_connections: ["gauge", ["state"]],
      cairn_claim_to_start_ms: ["histogram", []],
      cairn_task_duration_ms: ["histogram", ["kind", "outcome"]],
      cairn_tasks_run_total: ["counter", ["kind", "outcome"]],
      cairn_content_requests_total: ["counter", ["method", "status"]],
      cairn_content_bytes_served_total: ["counter", []],
      cairn_content_publication_cache_total: ["counter", ["result"]],
      cairn_content_body_cache_total: ["counter", ["result"]],
      cairn_content_body_cache_bytes: ["gauge", []],
      cairn_cleanup_runs_total: ["counter", []],
      cairn_cleanup_deleted_total: ["counter", ["what"]],
      cairn_cleanup_bytes_freed_total: ["counter", []]
    }
    for (const [name, [type, labels]] of Object.entries(expected)) {
      const f = families.get(name)
      expect(f?.type, name).toBe(type)
      expect(f!.samples.length, name).toBeGreaterThan(0)
      for (const s of f!.samples) {
        const keys = s.labels === "" ? [] : s.labels.split(",").map((p) => p.slice(0, p.indexOf("=")))
        expect(keys, `${name}{${s.labels}}`).toEqual(labels)
      }
    }
    const requests = new Map(families.get("cairn_content_requests_total")!.samples.map((s) => [s.labels, s.value]))
    expect(requests.get('method="GET",status="404"')).toBe(2)
    expect(requests.get('method="HEAD",status="404"')).toBe(1)
    expect(families.get("cairn_content_bytes_served_total")!.samples[0]!.value).toBeGreaterThan(0)
    const runs = families.get("cairn_tasks_run_total")!.samples.map((s) => s.labels)
    expect(runs).toEqual(expect.arrayContaining(['kind="debug.sleep",outcome="succeeded"', 'kind="debug.sleep",outcome="failed"']))
  })
})
