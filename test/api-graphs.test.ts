/**
 * The graph/task/future API through real HTTP against a real `serve` process.
 */
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let server: Server
let dbUrl: string
let c: ReturnType<typeof api>

const rowCounts = async () => {
  const client = new pg.Client({ connectionString: dbUrl })
  await client.connect()
  const r = await client.query(
    `SELECT (SELECT count(*) FROM graphs)::int AS graphs, (SELECT count(*) FROM tasks)::int AS tasks,
            (SELECT count(*) FROM futures)::int AS futures, (SELECT count(*) FROM task_keys)::int AS keys`
  )
  await client.end()
  return r.rows[0]
}

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  server = await startServer(dbUrl)
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
})

const sleep = (params: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({ task: "debug.sleep", params, ...extra })

describe("graph submission", () => {
  it("answers 201 with every task and future id, all futures pending", async () => {
    // `a` runs until it is canceled, so `b` is certainly still waiting when the test looks.
    const r = await c.post("/api/v1/graphs", {
      label: "first",
      nodes: { a: sleep({ ms: 600_000 }), b: sleep({ inputs: [{ $ref: "a.result" }] }) }
    })
    expect(r.status).toBe(201)
    expect(Object.keys(r.body.nodes)).toEqual(["a", "b"])
    const fb = await c.get(`/api/v1/futures/${r.body.nodes.b.outputs.result}`)
    expect(fb.body).toMatchObject({ state: "pending", kind: "value", producer: r.body.nodes.b.task })
    const g = await c.get(`/api/v1/graphs/${r.body.id}`)
    expect(g.body.label).toBe("first")
    expect(g.body.nodes.b.waiting_on).toEqual([{ task: r.body.nodes.a.task, reason: "input", future: r.body.nodes.a.outputs.result }])
    expect((await c.post(`/api/v1/tasks/${r.body.nodes.a.task}/cancel`)).status).toBe(202)
    await c.settled(r.body.nodes.b.outputs.result)

    const ok = await c.post("/api/v1/graphs", { nodes: { a: sleep(), b: sleep({ inputs: [{ $ref: "a.result" }] }) } })
    await c.settled(ok.body.nodes.b.outputs.result)
    const done = await c.get(`/api/v1/graphs/${ok.body.id}`)
    expect(done.body.state).toBe("succeeded")
    expect(done.body.finished_at).toBeDefined()
  })

  it("rejects every kind of invalid graph with 400, naming every offending node, and writes nothing", async () => {
    const before = await rowCounts()
    const earlier = await c.post("/api/v1/graphs", { nodes: { x: sleep() } })
    const afterEarlier = await rowCounts()
    const cases: Array<[string, unknown, Array<string>]> = [
      ["unknown kind", { nodes: { a: { task: "no.such" } } }, ["a"]],
      ["params do not fit", { nodes: { a: sleep({ ms: "slow" }), b: sleep({ bogus: 1 }) } }, ["a", "b"]],
      ["ref to a missing node", { nodes: { a: sleep({ inputs: [{ $ref: "zz.result" }] }) } }, ["a"]],
      ["ref to a missing output", { nodes: { a: sleep(), b: sleep({ inputs: [{ $ref: "a.nope" }] }) } }, ["b"]],
      ["ref to a missing future", { nodes: { a: sleep({ inputs: [{ $ref: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }] }) } }, ["a"]],
      ["malformed ref", { nodes: { a: sleep({ inputs: [{ $ref: 5 }] }), b: sleep({ inputs: [{ $ref: "x", y: 1 }] }) } }, ["a", "b"]],
      ["a cycle", { nodes: { a: sleep({ inputs: [{ $ref: "b.result" }] }), b: sleep({ inputs: [{ $ref: "a.result" }] }), c: sleep() } }, ["a", "b"]],
      ["bad node name", { nodes: { "Bad Name": sleep() } }, ["Bad Name"]],
      ["unknown node field", { nodes: { a: { task: "debug.sleep", whatever: 1 }, b: { task: "no.such" } } }, ["a", "b"]],
      ["bad max_attempts", { nodes: { a: sleep({}, { max_attempts: 0 }) } }, ["a"]],
      ["non-integer priority", { nodes: { a: sleep({}, { priority: 0.5 }), b: sleep({}, { priority: 3 }) } }, ["a"]],
      ["bad retry_backoff_ms", { nodes: { a: sleep({}, { retry_backoff_ms: -5 }), b: sleep({}, { retry_backoff_ms: 1.5 }), c: sleep() } }, ["a", "b"]]
    ]
    for (const [what, body, offending] of cases) {
      const r = await c.post("/api/v1/graphs", body)
      expect(r.status, what).toBe(400)
      expect(r.body.error.code, what).toBe("bad_request")
      expect(typeof r.body.error.message, what).toBe("string")
      expect(Object.keys(r.body.error.details.nodes).sort(), what).toEqual([...offending].sort())
    }
    for (const [what, body] of [
      ["no nodes", { nodes: {} }],
      ["unknown top-level field", { nodes: { a: sleep() }, extra: true }],
      ["not JSON", "{nope"],
      ["too many nodes", { nodes: Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`n${i}`, sleep()])) }]
    ] as Array<[string, unknown]>) {
      const r = await c.post("/api/v1/graphs", body)
      expect(r.status, what).toBe(400)
      expect(r.body.error.code, what).toBe("bad_request")
    }
    expect(earlier.status).toBe(201)
    const after = await rowCounts()
    // Only the one valid graph wrote anything.
    expect(after).toEqual(afterEarlier)
    expect(afterEarlier.graphs).toBe(before.graphs + 1)
  })

  it("settles a graph that references an already failed future at once, with the root cause", async () => {
    const first = await c.post("/api/v1/graphs", { nodes: { boom: sleep({ fail: "it broke" }) } })
    const failed = await c.settled(first.body.nodes.boom.outputs.result)
    expect(failed.error).toMatchObject({ code: "task_failed", message: "it broke", cause_task: first.body.nodes.boom.task })
    const second = await c.post("/api/v1/graphs", {
      nodes: { a: sleep({ inputs: [{ $ref: first.body.nodes.boom.outputs.result }] }), b: sleep({ value: { $ref: "a.result" } }) }
    })
    expect(second.status).toBe(201)
    const fb = await c.get(`/api/v1/futures/${second.body.nodes.b.outputs.result}`)
    expect(fb.body.state).toBe("failed")
    expect(fb.body.error).toMatchObject({
      code: "upstream_failed",
      cause_task: first.body.nodes.boom.task,
      cause_future: second.body.nodes.a.outputs.result
    })
    const task = await c.get(`/api/v1/tasks/${second.body.nodes.a.task}`)
    expect(task.body.state).toBe("failed")
    expect(task.body.error).toMatchObject({ code: "upstream_failed", cause_future: first.body.nodes.boom.outputs.result })
  })
})

describe("futures long-poll", () => {
  it("answers as soon as the future settles, with an etag; if-none-match answers 304", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { a: sleep({ ms: 400, value: "v" }) } })
    const id = g.body.nodes.a.outputs.result
    const started = Date.now()
    const r = await c.get(`/api/v1/futures/${id}?wait=60`)
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ state: "resolved", value: "v" })
    // It came back because the future settled, not because the wait ran out (the bound is the
    // wait itself, not a guess at the machine's speed).
    expect(Date.now() - started).toBeLessThan(60_000)
    const etag = r.headers.get("etag")!
    expect(etag).toBe("\"resolved\"")
    const again = await c.get(`/api/v1/futures/${id}`, { "if-none-match": etag })
    expect(again.status).toBe(304)
  })

  it("returns the pending future after `wait` when nothing settles, and 404s unknown ids", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { a: sleep({ ms: 60_000 }) } })
    const r = await c.get(`/api/v1/futures/${g.body.nodes.a.outputs.result}?wait=1`)
    expect(r.status).toBe(200)
    expect(r.body.state).toBe("pending")
    await c.post(`/api/v1/graphs/${g.body.id}/cancel`)
    expect((await c.get(`/api/v1/futures/01ARZ3NDEKTSV4RRFFQ69G5FAV`)).status).toBe(404)
    expect((await c.get(`/api/v1/futures/not-an-id`)).status).toBe(400)
    expect((await c.get(`/api/v1/futures/${g.body.nodes.a.outputs.result}?wait=61`)).status).toBe(400)
  })
})

describe("long-polls at scale", () => {
  it("holds 1,000 concurrent long-polls with a pool of 3 connections and wakes them all on settlement", { timeout: 300_000 }, async () => {
    const small = await startServer(dbUrl, { CAIRN_DB_POOL_SIZE: "3", CAIRN_WORKERS: "0" })
    let stopped = false
    try {
      const s = api(small.url)
      const nodes: Record<string, unknown> = { gate: sleep({ ms: 600_000 }) }
      for (let i = 0; i < 200; i++) nodes[`n${i}`] = sleep({ inputs: [{ $ref: "gate.result" }] })
      const g = await s.post("/api/v1/graphs", { nodes })
      const ids = Array.from({ length: 200 }, (_, i) => g.body.nodes[`n${i}`].outputs.result as string)

      // 1,000 clients, each long-polling its future as a client does: when a poll's wait (60 s,
      // the most the contract allows) runs out, the client asks again. So a slow machine may take
      // as long as it needs to get all of them waiting. A poll that was waiting, with 10 s of its
      // wait to spare, when the settlement committed must be answered by the wake-up, before its
      // wait runs out: coming back only when the wait ran out means the wake-up was missed (it
      // then answers "canceled" all the same, read again after the wait, so the state alone
      // cannot tell).
      const WAIT_MS = 60_000
      const SPARE_MS = 10_000
      let committedAt: number | undefined
      const sentAt: Array<number> = []
      const missed: Array<string> = []
      const poller = async (i: number) => {
        const id = ids[i % 200]!
        for (;;) {
          const sent = (sentAt[i] = Date.now())
          const r = await s.get(`/api/v1/futures/${id}?wait=${WAIT_MS / 1000}`).catch((e) => {
            // The server stops when the test ends; a test that failed leaves pollers behind.
            if (stopped) return { status: 0, headers: new Headers(), body: undefined }
            throw e
          })
          if (stopped) return r
          const waitedOut = Date.now() - sent >= WAIT_MS
          if (waitedOut && committedAt !== undefined && sent < committedAt && sent + WAIT_MS > committedAt + SPARE_MS) {
            missed.push(`poll ${i}: waiting since ${new Date(sent).toISOString()}, not woken by the settlement at ${new Date(committedAt).toISOString()}`)
          }
          // A 503 (the pool could not hand out a connection in time: a thousand woken polls read
          // their futures again through three connections) asks the client to retry; it does.
          if (r.status === 503) continue
          if (r.status !== 200 || r.body.state !== "pending") return r
        }
      }
      const polls = Array.from({ length: 1000 }, (_, i) => poller(i))

      /** One scrape: the value of each named sample (name with its labels, as /metrics writes it). */
      const scrape = async (...names: Array<string>) => {
        const lines = ((await s.call("GET", "/metrics")).body as string).split("\n")
        return names.map((name) => {
          const line = lines.find((l) => l.startsWith(`${name} `))
          return line === undefined ? undefined : Number(line.split(" ").pop())
        })
      }
      // All 1,000 waiting at once, and in the same scrape no connection checked out and nobody
      // queued for one. (The pool can never exceed its maximum of 3; what could go wrong is a
      // long-poll holding a connection for its wait, which leaves none idle while they wait.)
      const pool = (state: string) => `cairn_db_pool_connections{state="${state}"}`
      await until("1,000 long-polls waiting while the pool is idle", async () => {
        const [longPolls, total, idle, waiting] = await scrape("cairn_long_polls", pool("total"), pool("idle"), pool("waiting"))
        return longPolls === 1000 && total !== undefined && total >= 1 && idle === total && waiting === 0 || undefined
      }, 240_000)
      // One cascade settles all 200 futures; the NOTIFY says "*" (too many to list) and one query wakes them.
      // (A 503 asks again, as a client does: re-polling clients whose wait ran out compete for the
      // three connections, for as long as a loaded machine makes them.)
      const cancel = await until("the cancel to be accepted", async () => {
        const r = await s.post(`/api/v1/graphs/${g.body.id}/cancel`)
        return r.status === 503 ? undefined : r
      }, 120_000)
      committedAt = Date.now()
      expect(cancel.status, JSON.stringify(cancel.body)).toBe(202)
      // The polls the check below is about: waiting at the commit with time to spare (on a quiet
      // machine, all of them).
      const spare = sentAt.filter((t) => t < committedAt! && t + WAIT_MS > committedAt! + SPARE_MS).length
      const answers = await Promise.all(polls)
      expect(spare).toBeGreaterThan(0)
      expect(missed, `${missed.length} of ${spare} polls waiting with time to spare were not woken`).toEqual([])
      const odd = answers.filter((a) => a.status !== 200 || a.body.state !== "canceled")
      expect(odd.slice(0, 5).map((a) => `${a.status} ${JSON.stringify(a.body)}`), `${odd.length} of 1000 answers were not "canceled"`).toEqual([])
    } finally {
      stopped = true
      await small.stop()
    }
  })
})

describe("cancellation (Pulp's scenarios)", () => {
  it("cancels a blocked task, a running task; a finished task is 409; a missing one is 404", async () => {
    const g = await c.post("/api/v1/graphs", {
      nodes: {
        running: sleep({ ms: 60_000 }, { resources: { exclusive: ["cancel-key"] } }),
        blocked: sleep({}, { resources: { exclusive: ["cancel-key"] } }),
        after: sleep({ inputs: [{ $ref: "blocked.result" }] })
      }
    })
    const ids = g.body.nodes
    await until("the first task to run", async () => (await c.get(`/api/v1/tasks/${ids.running.task}`)).body.state === "running")
    const blockedView = await c.get(`/api/v1/tasks/${ids.blocked.task}`)
    expect(blockedView.body.state).toBe("blocked")
    expect(blockedView.body.waiting_on).toEqual([{ task: ids.running.task, reason: "resource", key: "cancel-key" }])

    const cb = await c.post(`/api/v1/tasks/${ids.blocked.task}/cancel`)
    expect(cb.status).toBe(202)
    expect(cb.body.state).toBe("canceled")
    const after = await c.settled(ids.after.outputs.result)
    expect(after).toMatchObject({ state: "canceled", error: { code: "upstream_canceled", cause_task: ids.blocked.task } })

    const cr = await c.post(`/api/v1/tasks/${ids.running.task}/cancel`)
    expect(cr.status).toBe(202)
    const fr = await c.settled(ids.running.outputs.result)
    expect(fr.state).toBe("canceled")
    const tr = await c.get(`/api/v1/tasks/${ids.running.task}`)
    expect(tr.body.state).toBe("canceled")
    expect(tr.body.error.code).toBe("canceled")

    const again = await c.post(`/api/v1/tasks/${ids.running.task}/cancel`)
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe("conflict")
    expect((await c.post(`/api/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel`)).status).toBe(404)

    const graph = await c.get(`/api/v1/graphs/${g.body.id}`)
    expect(graph.body.state).toBe("canceled")
  })

  it("cancels a whole graph", async () => {
    const g = await c.post("/api/v1/graphs", {
      nodes: { a: sleep({ ms: 60_000 }), b: sleep({ inputs: [{ $ref: "a.result" }] }), c: sleep({ ms: 60_000 }) }
    })
    await until("a to run", async () => (await c.get(`/api/v1/tasks/${g.body.nodes.a.task}`)).body.state === "running")
    const r = await c.post(`/api/v1/graphs/${g.body.id}/cancel`)
    expect(r.status).toBe(202)
    const done = await until("the graph to settle", async () => {
      const v = await c.get(`/api/v1/graphs/${g.body.id}`)
      return v.body.state === "canceled" ? v.body : undefined
    })
    for (const n of ["a", "b", "c"]) expect(done.nodes[n].state).toBe("canceled")
  })

  it("keeps a failing task's error message", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { a: sleep({ fail: "disk on fire" }) } })
    await c.settled(g.body.nodes.a.outputs.result)
    const t = await c.get(`/api/v1/tasks/${g.body.nodes.a.task}`)
    expect(t.body).toMatchObject({ state: "failed", error: { code: "task_failed", message: "disk on fire" }, attempts: 1 })
  })
})

describe("task listing", () => {
  it("lists newest first with filters and a cursor", async () => {
    const g = await c.post("/api/v1/graphs", { nodes: { a: sleep(), b: sleep(), c: sleep() } })
    const page1 = await c.get(`/api/v1/tasks?graph=${g.body.id}&limit=2`)
    expect(page1.status).toBe(200)
    expect(page1.body.items.map((t: { node: string }) => t.node)).toEqual(["c", "b"])
    const page2 = await c.get(`/api/v1/tasks?graph=${g.body.id}&limit=2&cursor=${page1.body.next_cursor}`)
    expect(page2.body.items.map((t: { node: string }) => t.node)).toEqual(["a"])
    expect(page2.body.next_cursor).toBeUndefined()
    expect((await c.get(`/api/v1/tasks?state=bogus`)).status).toBe(400)
    expect((await c.get(`/api/v1/tasks?limit=0`)).status).toBe(400)
  })
})

describe("auth", () => {
  it("with tokens configured, every /api/v1 route but the OpenAPI document needs one", async () => {
    const secured = await startServer(dbUrl, { CAIRN_API_TOKENS: "s3cret,other", CAIRN_WORKERS: "0" })
    try {
      const anon = api(secured.url)
      const wrong = api(secured.url, "nope")
      const good = api(secured.url, "other")
      expect((await anon.get("/api/v1/workers")).status).toBe(401)
      expect((await anon.get("/api/v1/workers")).body.error.code).toBe("unauthorized")
      expect((await wrong.post("/api/v1/graphs", { nodes: { a: sleep() } })).status).toBe(401)
      expect((await good.get("/api/v1/workers")).status).toBe(200)
      expect((await anon.get("/api/v1/openapi.json")).status).toBe(200)
      expect((await anon.get("/healthz")).status).toBe(200)
      expect((await anon.get("/metrics")).status).toBe(200)
      expect(secured.output()).not.toContain("s3cret")
    } finally {
      await secured.stop()
    }
  })
})
