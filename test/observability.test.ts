/**
 * Observability of a real `serve` process: /metrics parsed and its counters seen moving as tasks
 * run and files are served; JSON logs whose task lines carry task and graph ids; OpenTelemetry
 * spans exported over OTLP/HTTP to a collector the test runs, when the OTEL variables say so.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let server: Server
let c: ReturnType<typeof api>
let db: pg.Client
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
  const url = await createTestDatabase()
  db = new pg.Client({ connectionString: url })
  await db.connect()
  server = await startServer(url, {
    CAIRN_LOG_FORMAT: "json",
    // Uploads expire at once: the cleanup test makes its orphans with them.
    CAIRN_UPLOAD_TTL_MS: "1",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_SERVICE_NAME: "cairn-test"
  })
  c = api(server.url)
})
afterAll(async () => {
  await db?.end()
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
interface ExportedSpan {
  readonly name: string
  readonly service: string | undefined
  readonly attributes: Record<string, unknown>
}

interface OtlpAttribute {
  readonly key: string
  readonly value: Record<string, unknown>
}
const attributesOf = (attrs: ReadonlyArray<OtlpAttribute> | undefined) =>
  Object.fromEntries((attrs ?? []).map((a) => [a.key, Object.values(a.value)[0]]))

/** Every span the collector received (OTLP/HTTP JSON), with its resource's service name. */
const exportedSpans = (): Array<ExportedSpan> =>
  exported.filter((e) => e.startsWith("/v1/traces ")).flatMap((e) => {
    const body = JSON.parse(e.slice("/v1/traces ".length)) as {
      resourceSpans?: Array<{
        resource?: { attributes?: Array<OtlpAttribute> }
        scopeSpans?: Array<{ spans?: Array<{ name: string; attributes?: Array<OtlpAttribute> }> }>
      }>
    }
    return (body.resourceSpans ?? []).flatMap((rs) => {
      const service = attributesOf(rs.resource?.attributes)["service.name"] as string | undefined
      return (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((sp) => ({ name: sp.name, service, attributes: attributesOf(sp.attributes) })))
    })
  })

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
    // Orphans to delete: two uploads that expire at once and that nothing uses.
    const sizes = [1000, 2345]
    for (const [i, size] of sizes.entries()) {
      const r = await fetch(`${server.url}/api/v1/uploads`, { method: "POST", body: Buffer.alloc(size, i + 1) })
      expect(r.status).toBe(201)
    }
    await until("the uploads to expire", async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM uploads WHERE expires_at > now()")).rows[0]!.n === 0 || undefined)
    const deleted = async (what: string) => (await samples("cairn_cleanup_deleted_total")).get(`{what="${what}"}`) ?? 0
    const before = {
      runs: sum(await samples("cairn_cleanup_runs_total")),
      artifacts: await deleted("artifacts"),
      uploads: await deleted("uploads"),
      bytes: sum(await samples("cairn_cleanup_bytes_freed_total"))
    }
    const g = await c.post("/api/v1/graphs", { nodes: { gc: { task: "orphans.cleanup", params: { protection_seconds: 0 } } } })
    const f = await c.settled(g.body.nodes.gc.outputs.report)
    expect(f.state, JSON.stringify(f.error)).toBe("resolved")
    expect(f.value).toMatchObject({ artifacts: 2, uploads_expired: 2, bytes_freed: sizes[0]! + sizes[1]! })
    // The counters moved by what the report says was deleted.
    expect(sum(await samples("cairn_cleanup_runs_total"))).toBe(before.runs + 1)
    expect(await deleted("artifacts")).toBe(before.artifacts + 2)
    expect(await deleted("uploads")).toBe(before.uploads + 2)
    expect(sum(await samples("cairn_cleanup_bytes_freed_total"))).toBe(before.bytes + sizes[0]! + sizes[1]!)
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
    const task = g.body.nodes.t.task as string
    // The run and settle spans of this very task (its id as an attribute), a submit and a claim,
    // all from a process that calls itself cairn-test.
    const spans = await until("this task's spans to be exported", () => {
      const all = exportedSpans()
      const ofTask = (name: string) => all.some((sp) => sp.name === name && sp.attributes.task === task)
      const named = (name: string) => all.some((sp) => sp.name === name)
      return ofTask("cairn.run") && ofTask("cairn.settle") && named("cairn.submit") && named("cairn.claim") ? all : undefined
    }, 20_000)
    const run = spans.find((sp) => sp.name === "cairn.run" && sp.attributes.task === task)!
    expect(run.attributes).toMatchObject({ graph: g.body.id, kind: "debug.sleep" })
    expect(run.service).toBe("cairn-test")
  })
})
