/**
 * The API the console reads, against a real `serve` process: the graph list (newest first, cursor
 * pages, state filter, task counts), the graph long-poll (etag, 304, held until the view changes,
 * whether a settlement announces the change or only the once-a-second check sees it), the typed
 * client's methods for both, and the SQL form of the graph state against `graphState`.
 */
import { sql } from "drizzle-orm"
import { Effect, Redacted } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createClient } from "../src/client/index.js"
import { Db, DbLive } from "../src/db/client.js"
import { graphStateSql } from "../src/engine/graph-list.js"
import { graphState, type TaskState } from "../src/engine/views.js"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

let server: Server
let dbUrl: string
let c: ReturnType<typeof api>

beforeAll(async () => {
  dbUrl = await createTestDatabase()
  // One worker slot: tasks queue behind a running one when a test wants them to.
  server = await startServer(dbUrl, { CAIRN_WORKERS: "1" })
  c = api(server.url)
})
afterAll(async () => {
  await server?.stop()
})

const sleep = (params: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({ task: "debug.sleep", params, ...extra })
const submit = async (body: unknown) => {
  const r = await c.post("/api/v1/graphs", body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body as { id: string; nodes: Record<string, { task: string; outputs: Record<string, string> }> }
}
const settledGraph = (id: string) =>
  until(`graph ${id} to settle`, async () => {
    const g = (await c.get(`/api/v1/graphs/${id}`)).body
    return ["succeeded", "failed", "canceled"].includes(g.state) ? g : undefined
  }, 30_000, 50)

describe("GET /api/v1/graphs", () => {
  it("lists graphs newest first with their state and task counts, in cursor pages, filtered by state", async () => {
    const ok = await submit({ label: "list-ok", nodes: { a: sleep(), b: sleep({ inputs: [{ $ref: "a.result" }] }) } })
    const bad = await submit({ label: "list-bad", nodes: { a: sleep({ fail: "boom" }), b: sleep({ inputs: [{ $ref: "a.result" }] }), c: sleep() } })
    await settledGraph(ok.id)
    await settledGraph(bad.id)
    const gate = await submit({ label: "list-gate", nodes: { g: sleep({ ms: 60_000 }, { resources: { exclusive: ["list-key"] } }) } })
    const queued = await submit({ label: "list-queued", nodes: { q: sleep({}, { resources: { exclusive: ["list-key"] } }) } })
    await until("the gate to run", async () => (await c.get(`/api/v1/graphs/${gate.id}`)).body.state === "running")

    const all = (await c.get("/api/v1/graphs?limit=1000")).body
    const mine = all.items.filter((g: { id: string }) => [ok.id, bad.id, gate.id, queued.id].includes(g.id))
    expect(mine.map((g: { label: string }) => g.label)).toEqual(["list-queued", "list-gate", "list-bad", "list-ok"])
    const [q, g, b, o] = mine
    expect(o).toMatchObject({ state: "succeeded", tasks: 2, counts: { succeeded: 2, blocked: 0, failed: 0 } })
    expect(o.finished_at).toBeDefined()
    expect(b).toMatchObject({ state: "failed", tasks: 3, counts: { failed: 2, succeeded: 1 } })
    expect(g).toMatchObject({ state: "running", tasks: 1, counts: { running: 1 } })
    expect(g.finished_at).toBeUndefined()
    expect(q).toMatchObject({ state: "pending", tasks: 1, counts: { blocked: 1 } })

    // Pages of 1 walk the same list, each graph once, in the same order.
    const walked: Array<string> = []
    let cursor: string | undefined
    do {
      const page = (await c.get(`/api/v1/graphs?limit=1${cursor ? `&cursor=${cursor}` : ""}`)).body
      expect(page.items.length).toBeLessThanOrEqual(1)
      walked.push(...page.items.map((x: { id: string }) => x.id))
      cursor = page.next_cursor
    } while (cursor)
    expect(walked).toEqual(all.items.map((x: { id: string }) => x.id))

    for (const [state, id] of [["failed", bad.id], ["succeeded", ok.id], ["running", gate.id], ["pending", queued.id]] as const) {
      const page = (await c.get(`/api/v1/graphs?state=${state}`)).body
      expect(page.items.map((x: { id: string }) => x.id), state).toContain(id)
      expect(page.items.every((x: { state: string }) => x.state === state), state).toBe(true)
    }
    expect((await c.get("/api/v1/graphs?state=sideways")).status).toBe(400)
    expect((await c.get("/api/v1/graphs?limit=0")).status).toBe(400)
    await c.post(`/api/v1/graphs/${gate.id}/cancel`)
    await c.post(`/api/v1/graphs/${queued.id}/cancel`)
  })

  it("the typed client lists graphs", async () => {
    const g = await submit({ label: "client-list", nodes: { a: sleep() } })
    const cairn = createClient({ url: server.url })
    const page = await cairn.graphs({ limit: 5 })
    expect(page.items.map((x) => x.id)).toContain(g.id)
    expect(page.items[0]!.counts).toHaveProperty("blocked")
  })
})

describe("GET /api/v1/graphs/{id} long-poll", () => {
  it("answers 304 for the current etag, at once without wait and after `wait` seconds with it", async () => {
    const g = await submit({ nodes: { a: sleep({ fail: "x" }) } })
    await settledGraph(g.id)
    const first = await c.get(`/api/v1/graphs/${g.id}`)
    const etag = first.headers.get("etag")!
    expect(etag).toMatch(/^"[\w-]+"$/)
    expect((await c.get(`/api/v1/graphs/${g.id}`)).headers.get("etag")).toBe(etag)
    expect((await c.get(`/api/v1/graphs/${g.id}`, { "if-none-match": etag })).status).toBe(304)
    const held = await c.get(`/api/v1/graphs/${g.id}?wait=1`, { "if-none-match": etag })
    expect(held.status).toBe(304)
    expect(held.headers.get("etag")).toBe(etag)
    // Another etag: the graph at once.
    const other = await c.get(`/api/v1/graphs/${g.id}?wait=30`, { "if-none-match": "\"something-else\"" })
    expect(other.status).toBe(200)
    expect(other.body.id).toBe(g.id)
  })

  it("a held request answers when a settlement changes the graph (announced)", async () => {
    const g = await submit({ nodes: { a: sleep({ ms: 60_000 }), b: sleep({ inputs: [{ $ref: "a.result" }] }) } })
    await until("a to run", async () => (await c.get(`/api/v1/graphs/${g.id}`)).body.nodes.a.state === "running")
    const now = await c.get(`/api/v1/graphs/${g.id}`)
    const poll = c.get(`/api/v1/graphs/${g.id}?wait=60`, { "if-none-match": now.headers.get("etag")! })
    // The request is held: nothing about the graph changes until we cancel a.
    await until("the long-poll to be held", async () => {
      const m = await fetch(`${server.url}/metrics`).then((r) => r.text())
      return /cairn_long_polls (\d+)/.exec(m)?.[1] !== "0"
    })
    expect((await c.post(`/api/v1/tasks/${g.nodes.a!.task}/cancel`)).status).toBe(202)
    let changed = await poll
    expect(changed.status).toBe(200)
    expect(changed.headers.get("etag")).not.toBe(now.headers.get("etag"))
    // The cancel request is a change of its own (the graph's etag covers each task's cancel_requested),
    // and a poll can answer with it while the task is still running, before its handler is
    // interrupted and it settles: each next held request answers with the next change, up to that.
    while (changed.body.nodes.a.state === "running") {
      const etag = changed.headers.get("etag")!
      changed = await c.get(`/api/v1/graphs/${g.id}?wait=60`, { "if-none-match": etag })
      expect(changed.status).toBe(200)
      expect(changed.headers.get("etag")).not.toBe(etag)
    }
    expect(changed.body.nodes.a.state).toBe("canceled")
  })

  it("a held request also sees moves nothing announces: a blocked task made ready and claimed", async () => {
    // The gate holds the only worker slot and the key; `later` queues behind it on the key.
    const gate = await submit({ nodes: { g: sleep({ ms: 60_000 }, { resources: { exclusive: ["poll-key"] } }) } })
    await until("the gate to run", async () => (await c.get(`/api/v1/graphs/${gate.id}`)).body.state === "running")
    const g = await submit({ nodes: { later: sleep({ ms: 60_000 }, { resources: { exclusive: ["poll-key"] } }) } })
    const before = await c.get(`/api/v1/graphs/${g.id}`)
    expect(before.body.nodes.later.state).toBe("blocked")
    const cairn = createClient({ url: server.url })
    // The gate's settlement names no future of this graph: the held request finds the change by its check.
    // A held request answered well before its 60 s deadline (when the last full read would find the
    // change anyway).
    const heldChange = (etag: string) =>
      Promise.race([
        cairn.graphChange(g.id, etag, { wait: 60 }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the held request did not see the change before its deadline")), 40_000))
      ])
    const watching = heldChange(before.headers.get("etag")!)
    await c.post(`/api/v1/graphs/${gate.id}/cancel`)
    let change = await watching
    expect(change).toBeDefined()
    expect(change!.etag).not.toBe(before.headers.get("etag"))
    // The first change may come while `later` is still blocked: what it waits on (the gate on the
    // key) changes as the gate settles, a moment before `later` is made ready. Its move out of
    // `blocked`, which nothing announces, must be seen by a held request the same way.
    while (change!.graph.nodes.later!.state === "blocked") {
      change = await heldChange(change!.etag)
      expect(change).toBeDefined()
    }
    expect(["ready", "running"]).toContain(change!.graph.nodes.later!.state)
    // Followed to the end with the client, one open request at a time.
    let etag: string | undefined = change!.etag
    let seen: string = change!.graph.nodes.later!.state
    while (seen !== "running") {
      const next = await cairn.graphChange(g.id, etag, { wait: 30 })
      if (next) {
        etag = next.etag
        seen = next.graph.nodes.later!.state
      }
    }
    expect(await cairn.graphChange(g.id, etag, { wait: 1 })).toBeUndefined()
    await c.post(`/api/v1/graphs/${g.id}/cancel`)
  })

  it("a graph that does not exist: 404, also when held", async () => {
    const r = await c.get("/api/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=1", { "if-none-match": "\"x\"" })
    expect(r.status).toBe(404)
    expect(r.body.error.code).toBe("not_found")
  })
})

describe("graph state in SQL", () => {
  it("graphStateSql agrees with graphState for any counts of task states", async () => {
    const states: ReadonlyArray<TaskState> = ["blocked", "ready", "running", "succeeded", "failed", "canceled"]
    const counts = fc.tuple(...states.map(() => fc.integer({ min: 0, max: 3 }))).filter((n) => n.some((x) => x > 0))
    const run = <A>(e: Effect.Effect<A, unknown, Db>) => Effect.runPromise(Effect.scoped(Effect.provide(e, DbLive(Redacted.make(dbUrl), 2))))
    await run(Effect.gen(function*() {
      const db = yield* Db
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(counts, async (n) => {
            const [row] = await Effect.runPromise(db.rows<{ s: string }>(sql`SELECT ${graphStateSql} AS s FROM (SELECT
              ${n[0]}::int AS blocked, ${n[1]}::int AS ready, ${n[2]}::int AS running,
              ${n[3]}::int AS succeeded, ${n[4]}::int AS failed, ${n[5]}::int AS canceled) c`))
            const expected = graphState(states.flatMap((s, i) => Array<TaskState>(n[i]!).fill(s)))
            expect(row!.s, JSON.stringify(n)).toBe(expected)
          }),
          { numRuns: 300 }
        )
      )
    }))
  })
})
