/**
 * Targeted wake-ups (src/engine/sql/cairn_notify.sql, cairn_claim.sql), at the SQL level: which
 * workers a wake-up for ready work names, when it names nobody (every idle worker is woken), when it
 * says nothing about ready work, which channel carries what, and the claim's baton. Worker rows are written by
 * hand (no worker runs here), and the NOTIFY payloads are read by a plain LISTEN connection.
 */
import { Effect, Scope, Exit } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ulid } from "ulid"
import { workerChannel } from "../src/engine/notify.js"
import { Session } from "../src/engine/session.js"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { until } from "./support/processes.js"

let url: string
let listener: pg.Client
let sql: pg.Client
interface Heard {
  readonly channel: string
  readonly body: { r?: number; f?: unknown; c?: unknown; d?: number; w?: Array<string>; marker?: boolean }
}
const heard: Array<Heard> = []

beforeAll(async () => {
  url = await createTestDatabase()
  listener = new pg.Client({ connectionString: url })
  await listener.connect()
  listener.on("notification", (m) => heard.push({ channel: m.channel, body: JSON.parse(m.payload ?? "{}") }))
  await listener.query("LISTEN cairn; LISTEN cairn_work")
  sql = new pg.Client({ connectionString: url })
  await sql.connect()
})
afterAll(async () => {
  await listener?.end()
  await sql?.end()
})

/**
 * Waits until every notification committed so far has arrived: a listener gets them in commit
 * order, so once a marker sent now is in, so is everything before it.
 */
const drain = async () => {
  const before = heard.length
  await sql.query(`SELECT pg_notify('cairn', '{"marker": true}')`)
  await until("the marker notification", async () => heard.slice(before).some((h) => h.body.marker))
}

/** What the statement sent (delivered at its commit), channel by channel. */
const notified = async (statement: string, params: Array<unknown> = []) => {
  await drain()
  const before = heard.length
  await sql.query(statement, params)
  await drain()
  return heard.slice(before).filter((h) => !h.body.marker)
}

/** Worker rows (one slot each), and a LISTEN on each one's own channel. */
const addWorkers = async (n: number) => {
  const ids = Array.from({ length: n }, () => ulid())
  for (const id of ids) {
    await sql.query(`INSERT INTO workers (id, name, host, pid, slots, backend_pid) VALUES ($1, $1, 'test', 1, 1, 0)`, [id])
    await listener.query(`LISTEN ${listener.escapeIdentifier(workerChannel(id))}`)
  }
  return ids
}

/** The workers named by per-worker wake-ups, checking each payload names its own channel's worker. */
const named = (sent: ReadonlyArray<Heard>) =>
  sent.filter((h) => h.channel.startsWith("cairn_w_")).map((h) => {
    expect(h.body.w).toHaveLength(1)
    expect(h.channel).toBe(workerChannel(h.body.w![0]!))
    return h.body.w![0]!
  })

/** Submit `n` independent tasks; no worker runs, so they stay ready. */
const readyTasks = (n: number) =>
  Effect.runPromise(
    Effect.scoped(submitGraph({ nodes: Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i}`, { task: "debug.sleep", params: {} }])) })).pipe(
      Effect.provide(engineLayer(url))
    )
  )

describe("targeted wake-ups", () => {
  it("name ready + 2 idle workers, each on its own channel, when more are idle, and never a busy one", async () => {
    const workers = await addWorkers(10)
    const g = await readyTasks(2)
    // Two of the ten are busy: each runs one of the ready tasks.
    const busy = workers.slice(0, 2)
    await sql.query(`UPDATE tasks SET state = 'running', worker_id = $1 WHERE id = $2`, [busy[0], g.nodes.n0!.task])
    await sql.query(`UPDATE tasks SET state = 'running', worker_id = $1 WHERE id = $2`, [busy[1], g.nodes.n1!.task])

    const one = await notified(`SELECT cairn_notify('{"ready": 1}'::jsonb)`)
    const oneNamed = named(one)
    expect(oneNamed).toHaveLength(3)
    expect(new Set(oneNamed).size).toBe(3)
    for (const w of oneNamed) expect(workers.slice(2)).toContain(w)
    expect(one.every((h) => h.body.r === 1)).toBe(true)
    expect(one.filter((h) => !h.channel.startsWith("cairn_w_"))).toEqual([])

    const three = named(await notified(`SELECT cairn_notify('{"ready": 3}'::jsonb)`))
    expect(three).toHaveLength(5)
    for (const w of three) expect(busy).not.toContain(w)

    // Eight idle, six wanted + 2 = 8: nobody is left out, so one wake-up for all workers.
    expect(await notified(`SELECT cairn_notify('{"ready": 6}'::jsonb)`)).toEqual([{ channel: "cairn_work", body: { r: 6, c: [] } }])

    await sql.query(`DELETE FROM workers WHERE id = ANY($1)`, [workers.slice(2)])
  })

  it("say nothing about ready work when no worker is idle; futures go to clients, cancels to workers", async () => {
    const idle = await sql.query<{ n: number }>(`
      SELECT count(*)::int AS n FROM workers w
      WHERE w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')`)
    expect(idle.rows[0]!.n).toBe(0)
    expect(await notified(`SELECT cairn_notify('{"ready": 4}'::jsonb)`)).toEqual([])
    expect(await notified(`SELECT cairn_notify('{"ready": 4, "futures": ["f1"]}'::jsonb)`)).toEqual([{ channel: "cairn", body: { f: ["f1"] } }])
    expect(await notified(`SELECT cairn_notify('{"cancel": ["t1"]}'::jsonb)`)).toEqual([{ channel: "cairn_work", body: { r: 0, c: ["t1"] } }])
  })

  it("a claim that filled its slots and saw ready work left passes the baton, never to itself", async () => {
    await sql.query(`DELETE FROM workers`)
    await sql.query(`UPDATE tasks SET state = 'failed', finished_at = now(), error = '{"code": "test"}' WHERE state IN ('ready', 'running')`)
    const [claimer, ...others] = await addWorkers(6)
    await readyTasks(3)
    const baton = await notified(`SELECT * FROM cairn_claim($1, 1)`, [claimer])
    const passed = named(baton)
    expect(passed).toHaveLength(4)
    for (const w of passed) expect(others).toContain(w)
    expect(baton.every((h) => h.body.r === 2)).toBe(true)
    // Claiming the last two leaves nothing: no baton.
    expect(await notified(`SELECT * FROM cairn_claim($1, 2)`, [others[0]])).toEqual([])
    // A claim that got fewer than it asked for passes nothing either.
    await readyTasks(1)
    expect(await notified(`SELECT * FROM cairn_claim($1, 3)`, [others[1]])).toEqual([])
  })
})

describe("the session's channels", () => {
  it("hears a channel while someone listens on it, again after the connection is killed, and not after", async () => {
    const heardBySession: Array<string> = []
    // The "everything" wake-ups, each announced once a (re)connected session listens again.
    let connections = 0
    let reheard: string | undefined
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const session = yield* Session
      yield* session.onWakeup((w) => {
        if (w.channel === undefined) connections++
        else if (w.futures !== "*") heardBySession.push(...w.futures)
      })
      const send = (id: string) => Effect.promise(() => sql.query(`SELECT pg_notify('cairn_test', $1)`, [JSON.stringify({ f: [id] })]))
      const heardAfterSync = (id: string) =>
        Effect.gen(function*() {
          yield* send(id)
          yield* session.sync
          return heardBySession.includes(id)
        })

      // (Listening before the first connection is covered by the "everything" wake-up that follows it.)
      yield* session.connected
      const listening = yield* Scope.make()
      yield* session.listen("cairn_test").pipe(Scope.extend(listening))
      expect(yield* heardAfterSync("before-kill")).toBe(true)

      // Kill the session's connection; it reconnects and listens again, and announces "everything"
      // once it has. Until then a notification is not heard (nobody listens): send new ones until
      // one is. (Counting "everything" wake-ups from zero would not do: the first connection's can
      // come before this test registered its callback, while the layers are still being built.)
      const first = (yield* session.connected)
      const pid = yield* session.queries.withPermits(1)(Effect.promise(() => first.client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")))
      const before = connections
      yield* Effect.promise(() => sql.query("SELECT pg_terminate_backend($1)", [pid.rows[0]!.pid]))
      const deadline = Date.now() + 60_000
      for (let k = 0; reheard === undefined; k++) {
        if (Date.now() > deadline) expect.fail("the session did not reconnect and hear its channel again within 60 s")
        const id = `after-reconnect-${k}`
        if (yield* heardAfterSync(id).pipe(Effect.orElseSucceed(() => false))) reheard = id
        else yield* Effect.sleep("50 millis")
      }
      expect(connections).toBeGreaterThan(before)

      // Nobody listens any more: the channel is not heard.
      yield* Scope.close(listening, Exit.void)
      expect(yield* heardAfterSync("after-close")).toBe(false)
    })).pipe(Effect.provide(engineLayer(url))))
    expect(heardBySession).toEqual(["before-kill", reheard])
  })
})
