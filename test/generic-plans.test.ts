/**
 * The engine functions on every task's path run generic plans (DESIGN.md §15 "Generic plans"):
 * PostgreSQL's plan cache kept choosing a custom plan for their statements (a one-element array
 * or `LIMIT 1` looks cheaper than the generic estimate) and so planned them afresh at every call,
 * which cost more than running them. auto_explain (its plans sent to this client as notices)
 * shows the plans of the statements inside the functions at their eighth call, after the five
 * custom plans with which the plan cache starts: a generic plan names its parameters ($1...), a
 * custom one has their values folded in. The plans must also be driven from the arrays through
 * indexes: a generic plan for the claim's ids taken from a CTE hash-joined a scan of `tasks`, and
 * the shared-key release scanned `task_keys`. The failure propagation alone keeps custom plans.
 */
import { Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let client: pg.Client
let notices: Array<string> = []

beforeAll(async () => {
  const url = await createTestDatabase()
  // Queued tasks with keys, some of them ready, so that every statement has rows to find.
  await Effect.runPromise(Effect.scoped(submitGraph({
    nodes: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [
      `t${i}`,
      { task: "debug.sleep", params: {}, resources: i % 3 === 0 ? { exclusive: [`k${i % 7}`] } : { shared: [`k${i % 7}`] } }
    ]))
  })).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<unknown, unknown, never>)
  client = new pg.Client({ connectionString: url })
  await client.connect()
  client.on("notice", (n) => notices.push(n.message ?? ""))
  await client.query(`INSERT INTO workers (id, name, host, pid, slots, backend_pid) VALUES ('w', 'w', 'h', 1, 2, pg_backend_pid())`)
  await client.query("LOAD 'auto_explain'")
})
afterAll(async () => {
  await client?.end()
})

/**
 * The plan of the statement containing `statement`, as auto_explain reported it during the eighth
 * call of `call` (rolled back, like each of the seven before it).
 */
const eighthPlan = async (call: string, params: ReadonlyArray<unknown>, statement: string) => {
  await client.query("BEGIN")
  try {
    // Each call undone before the next (a settle's cascade deletes the keys it releases).
    for (let i = 0; i < 7; i++) {
      await client.query("SAVEPOINT call")
      await client.query(call, [...params])
      await client.query("ROLLBACK TO SAVEPOINT call")
    }
    await client.query("SET LOCAL auto_explain.log_min_duration = 0")
    await client.query("SET LOCAL auto_explain.log_nested_statements = on")
    await client.query("SET LOCAL auto_explain.log_level = notice")
    await client.query("SET LOCAL auto_explain.log_verbose = on")
    notices = []
    await client.query(call, [...params])
  } finally {
    await client.query("ROLLBACK")
  }
  const plan = notices.find((n) => n.includes("Query Text:") && n.includes(statement))
  expect(plan, `no plan for ${statement} among:\n${notices.map((n) => n.slice(0, 200)).join("\n--\n")}`).toBeDefined()
  return plan!.slice(plan!.indexOf("\n", plan!.indexOf("Query Text:")))
}

/** One task in `state` (a settle's or a submission's usual array: one element). */
const someTasks = async (state: string) =>
  (await client.query<{ a: Array<string> }>("SELECT (array_agg(id ORDER BY seq))[1:1] AS a FROM tasks WHERE state = $1", [state])).rows[0]!.a

describe("the engine's functions on every task's path", () => {
  it("claim with a generic plan that probes tasks by primary key", async () => {
    const plan = await eighthPlan("SELECT * FROM cairn_claim('w', 1)", [], "SET state = 'running', worker_id = p_worker")
    // The worker's id is a parameter in the plan, not the literal 'w'.
    expect(plan).toMatch(/Output: 'running'::text, \(t\.attempts \+ 1\), \$\d+,/)
    expect(plan).toContain("Index Scan using tasks_pkey on public.tasks t")
    expect(plan).toMatch(/Index Cond: \(t\.id = ANY \(\(InitPlan \d+\)\.col1\)\)/)
    expect(plan).not.toContain("Seq Scan on public.tasks")
  })

  it("make tasks ready, lock a settle's keys and release what a task held with generic plans", async () => {
    const blocked = await someTasks("blocked")
    expect(blocked.length).toBeGreaterThan(0)
    expect(await eighthPlan("SELECT cairn_make_ready($1)", [blocked], "UPDATE tasks SET state = 'ready'"))
      .toMatch(/Index Cond: \(tasks\.id = ANY \(\$\d+\)\)/)
    expect(await eighthPlan("SELECT cairn_lock_task_keys($1, false)", [blocked], "SELECT array_agg(key)"))
      .toMatch(/Index Cond: \(task_keys\.task_id = ANY \(\$\d+\)\)/)
    expect(await eighthPlan("SELECT cairn_content_on_settled($1)", [blocked], "DELETE FROM task_holds"))
      .toMatch(/task_holds\.task_id = ANY \(\$\d+\)/)
  })

  it("release a settled task's keys with generic plans driven from the keys", async () => {
    // The cascade as a settle of the first queued task would run it (rolled back).
    const [first] = await someTasks("ready")
    const plan = await eighthPlan("SELECT cairn_settle_cascade($1)", [[first]], "NOT tk.free AND NOT tk.exclusive")
    expect(plan).toMatch(/Index Cond: \(tk\.key = ANY \(\$\d+\)\)/)
    expect(plan).toMatch(/Index Cond: \(t\.id = ANY \(\(InitPlan \d+\)\.col1\)\)/)
    expect(plan).not.toContain("Seq Scan on public.task_keys")
  })

  it("propagate a failure with custom plans, made for the frontier at hand", async () => {
    // A generic plan of the cone, made before the statistics knew a chain, took a 998-task chain
    // cone 1.07 s instead of 70-80 ms; the propagation runs only when something failed.
    const frontier = (await client.query<{ a: Array<string> }>("SELECT (array_agg(id ORDER BY id))[1:1] AS a FROM futures")).rows[0]!.a
    const plan = await eighthPlan("SELECT * FROM cairn_settle_cone($1)", [frontier], "WITH RECURSIVE cone")
    // The frontier's value is folded into the plan, not a parameter.
    expect(plan).toContain(`'{${frontier[0]}}'::text[]`)
  })
})
