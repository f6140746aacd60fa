/**
 * Observability of a real `serve` process: /metrics parsed and its counters seen moving as tasks
 * run and files are served; JSON logs whose task lines carry task and graph ids; OpenTelemetry
 * spans exported over OTLP/HTTP to a collector the test runs, when the OTEL variables say so.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let server: Server
let c: ReturnType<typeof api>
let collector: http.Server
const exported: Array<string> = []

beforeAll(async () => {
  collector = http.createServer((req, res) => {
    let body = ""
    req.on("data", (d) => (body += d))
    req.on("end", () => {
      exported.push(`${req.url} ${body}`)
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r))
  const port = (collector.address() as AddressInfo).port
  server = await startServer(await createTestDatabase(), {
    CAIRN_LOG_FORMAT: "json",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_SERVICE_NAME: "cairn-test"
  })
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
  await new Promise((r) => collector?.close(r))
})

/** The samples of a metric: labels (as `k="v",...`) -> value. */
const samples = async (name: string) => {
  const text = (await c.get("/metrics")).body as string
  const out = new Map<string, number>()
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m && m[1] === name) out.set(m[2] ?? "", Number(m[3]))
  }
  return out
}
const sum = (m: Map<string, number>, filter: (labels: string) => boolean = () => true) =>
  [...m].filter(([k]) => filter(k)).reduce((n, [, v]) => n + v, 0)

describe("observability", () => {
  it("/metrics counters move as tasks run: tasks by kind and state, futures, runs, claim latency", async () => {
    const before = {
      succeeded: sum(await samples("cairn_tasks"), (l) => l.includes('kind="debug.sleep"') && l.includes('state="succeeded"')),
      runs: sum(await samples("cairn_tasks_run_total")),
      claims: sum(await samples("cairn_claim_to_start_ms_count")),
      resolved: sum(await samples("cairn_futures"), (l) => l.includes('state="resolved"'))
    }
    const g = await c.post("/api/v1/graphs", {
      nodes: { a: { task: "debug.sleep", params: { ms: 10 } }, b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }] } } }
    })
    await c.settled(g.body.nodes.b.outputs.result)
    await until("the counters to move", async () => {
      const succeeded = sum(await samples("cairn_tasks"), (l) => l.includes('kind="debug.sleep"') && l.includes('state="succeeded"'))
      return succeeded === before.succeeded + 2 || undefined
    })
    expect(sum(await samples("cairn_tasks_run_total"))).toBe(before.runs + 2)
    expect(sum(await samples("cairn_claim_to_start_ms_count"))).toBe(before.claims + 2)
    expect(sum(await samples("cairn_futures"), (l) => l.includes('state="resolved"'))).toBe(before.resolved + 2)
    expect((await samples("cairn_ready_queue_depth")).get("")).toBe(0)
    expect((await samples("cairn_workers_alive")).get("")).toBeGreaterThanOrEqual(1)
    const pool = await samples("cairn_db_pool_connections")
    expect(pool.get('{state="total"}')).toBeGreaterThanOrEqual(1)
  })

  it("cleanup runs and what they deleted are counted", async () => {
    const runs = sum(await samples("cairn_cleanup_runs_total"))
    const g = await c.post("/api/v1/graphs", { nodes: { gc: { task: "orphans.cleanup", params: { protection_seconds: 0 } } } })
    const f = await c.settled(g.body.nodes.gc.outputs.report)
    expect(f.state, JSON.stringify(f.error)).toBe("resolved")
    expect(sum(await samples("cairn_cleanup_runs_total"))).toBe(runs + 1)
    expect([...(await samples("cairn_cleanup_deleted_total")).keys()]).toContain('{what="artifacts"}')
  })

  it("content app requests are counted by status", async () => {
    const before = sum(await samples("cairn_content_requests_total"), (l) => l.includes('status="404"'))
    expect((await fetch(`${server.url}/content/nowhere/file`)).status).toBe(404)
    expect(sum(await samples("cairn_content_requests_total"), (l) => l.includes('status="404"'))).toBe(before + 1)
  })

  it("JSON logs: one object per line; lines about a task carry its task and graph ids", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { f: { task: "debug.sleep", params: { fail: "boom for the logs" } } } })
    await c.settled(g.body.nodes.f.outputs.result)
    const lines = await until("the failure's log line", () => {
      const objects = server.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      return objects.some((o) => JSON.stringify(o).includes("boom for the logs")) ? objects : undefined
    })
    const line = lines.find((o: any) => JSON.stringify(o).includes("boom for the logs"))
    expect(line.annotations.task).toBe(g.body.nodes.f.task)
    expect(line.annotations.graph).toBe(g.body.id)
    expect(typeof line.timestamp).toBe("string")
  })

  it("exports spans for submit, claim, run and settle over OTLP/HTTP", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { t: { task: "debug.sleep", params: {} } } })
    await c.settled(g.body.nodes.t.outputs.result)
    const names = await until("spans to be exported", () => {
      const all = exported.filter((e) => e.startsWith("/v1/traces")).join("\n")
      const want = ["cairn.submit", "cairn.claim", "cairn.run", "cairn.settle"]
      return want.every((n) => all.includes(n)) ? want : undefined
    }, 20_000)
    expect(names).toHaveLength(4)
    expect(exported.join("\n")).toContain("cairn-test")
  })
})
