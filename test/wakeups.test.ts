/**
 * Targeted wake-ups (drizzle/0009_targeted_wakeups.sql), at the SQL level: which workers a wake-up
 * for ready work names, when it names nobody (every idle worker is woken), when it says nothing
 * about ready work, and the claim's baton. Worker rows are written by hand (no worker runs here),
 * and the NOTIFY payloads are read by a plain LISTEN connection.
 */
import { Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { until } from "./support/processes.js"

let url: string
let listener: pg.Client
let sql: pg.Client
const payloads: Array<{ r: number; f: unknown; c: unknown; w?: Array<string> }> = []

beforeAll(async () => {
  url = await createTestDatabase()
  listener = new pg.Client({ connectionString: url })
  await listener.connect()
  listener.on("notification", (m) => payloads.push(JSON.parse(m.payload ?? "{}")))
  await listener.query("LISTEN cairn")
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
  const before = payloads.length
  await sql.query(`SELECT pg_notify('cairn', '{"marker": true}')`)
  await until("the marker notification", async () => payloads.slice(before).some((p) => "marker" in p))
}

/** The payload the statement sends (delivered at its commit), or undefined if it sends none. */
const notified = async (statement: string, params: Array<unknown> = []) => {
  await drain()
  const before = payloads.length
  await sql.query(statement, params)
  await drain()
  const sent = payloads.slice(before).filter((p) => !("marker" in p))
  expect(sent.length).toBeLessThanOrEqual(1)
  return sent[0]
}

const addWorkers = async (n: number) => {
  const ids = Array.from({ length: n }, (_, i) => `w${String(payloads.length).padStart(4, "0")}-${i}-${Math.random().toString(36).slice(2, 8)}`)
  for (const id of ids) {
    await sql.query(`INSERT INTO workers (id, name, host, pid, slots, backend_pid) VALUES ($1, $1, 'test', 1, 1, 0)`, [id])
  }
  return ids
}

/** Submit `n` independent tasks; no worker runs, so they stay ready. */
const readyTasks = (n: number) =>
  Effect.runPromise(
    Effect.scoped(submitGraph({ nodes: Object.fromEntries(Array.from({ length: n }, (_, i) => [`n${i}`, { task: "debug.sleep", params: {} }])) })).pipe(
      Effect.provide(engineLayer(url))
    )
  )

describe("targeted wake-ups", () => {
  it("name ready + 2 idle workers when more are idle, and never a busy one", async () => {
    const workers = await addWorkers(10)
    const g = await readyTasks(2)
    // Two of the ten are busy: each runs one of the ready tasks.
    const busy = workers.slice(0, 2)
    await sql.query(`UPDATE tasks SET state = 'running', worker_id = $1 WHERE id = $2`, [busy[0], g.nodes.n0!.task])
    await sql.query(`UPDATE tasks SET state = 'running', worker_id = $1 WHERE id = $2`, [busy[1], g.nodes.n1!.task])

    const one = await notified(`SELECT cairn_notify('{"ready": 1}'::jsonb)`)
    expect(one?.r).toBe(1)
    expect(one?.w).toHaveLength(3)
    expect(new Set(one!.w).size).toBe(3)
    for (const w of one!.w!) expect(workers.slice(2)).toContain(w)

    const three = await notified(`SELECT cairn_notify('{"ready": 3}'::jsonb)`)
    expect(three?.w).toHaveLength(5)
    for (const w of three!.w!) expect(busy).not.toContain(w)

    // Eight idle, six wanted + 2 = 8: nobody is left out, so nobody is named.
    const six = await notified(`SELECT cairn_notify('{"ready": 6}'::jsonb)`)
    expect(six?.r).toBe(6)
    expect(six?.w).toBeUndefined()

    await sql.query(`DELETE FROM workers WHERE id = ANY($1)`, [workers.slice(2)])
  })

  it("say nothing about ready work when no worker is idle, but still report settled futures", async () => {
    const idle = await sql.query<{ n: number }>(`
      SELECT count(*)::int AS n FROM workers w
      WHERE w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')`)
    expect(idle.rows[0]!.n).toBe(0)
    expect(await notified(`SELECT cairn_notify('{"ready": 4}'::jsonb)`)).toBeUndefined()
    const withFutures = await notified(`SELECT cairn_notify('{"ready": 4, "futures": ["f1"]}'::jsonb)`)
    expect(withFutures).toMatchObject({ r: 0, f: ["f1"] })
  })

  it("a claim that filled its slots and saw ready work left passes the baton, never to itself", async () => {
    await sql.query(`DELETE FROM workers`)
    await sql.query(`UPDATE tasks SET state = 'failed', finished_at = now(), error = '{"code": "test"}' WHERE state IN ('ready', 'running')`)
    const [claimer, ...others] = await addWorkers(6)
    await readyTasks(3)
    const baton = await notified(`SELECT * FROM cairn_claim($1, 1)`, [claimer])
    expect(baton?.r).toBe(2)
    expect(baton?.w).toHaveLength(4)
    for (const w of baton!.w!) expect(others).toContain(w)
    // Claiming the last two leaves nothing: no baton.
    expect(await notified(`SELECT * FROM cairn_claim($1, 2)`, [others[0]])).toBeUndefined()
    // A claim that got fewer than it asked for passes nothing either.
    await readyTasks(1)
    expect(await notified(`SELECT * FROM cairn_claim($1, 3)`, [others[1]])).toBeUndefined()
  })
})
