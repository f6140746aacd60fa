/**
 * The engine's settle hooks (src/engine/sql/cairn_on_settled.sql): every function registered in
 * `settle_hooks` runs with the ids of every task a cascade settled, in the settle transaction. The
 * content store's hook (task_artifacts, slot locks) is one of them; a second module's hook added
 * beside it runs too and does not replace it.
 */
import { Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
let sql: pg.Client
beforeAll(async () => {
  url = await createTestDatabase()
  sql = new pg.Client({ connectionString: url })
  await sql.connect()
})
afterAll(async () => {
  await sql?.end()
})

describe("settle hooks", () => {
  it("all run, in the settle transaction, with every task the cascade settled", async () => {
    // A second module's hook: it records what it was given, and when.
    await sql.query(`
      CREATE TABLE test_hook_log (task_id text NOT NULL, xact xid8 NOT NULL);
      CREATE FUNCTION test_hook(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO test_hook_log SELECT t, pg_current_xact_id() FROM unnest(p_tasks) AS t;
      END $$;
      INSERT INTO settle_hooks (name, fn) VALUES ('test', 'test_hook(text[])');`)

    // a -> b: no worker runs, so a is ready and b waits for a's output.
    const g = await Effect.runPromise(
      Effect.scoped(submitGraph({
        nodes: { a: { task: "debug.sleep" }, b: { task: "debug.sleep", params: { inputs: [{ $ref: "a.result" }] } } }
      })).pipe(Effect.provide(engineLayer(url)))
    )
    const [a, b] = [g.nodes.a!.task, g.nodes.b!.task]
    // What the content store keeps on behalf of a: an artifact it uses and a slot lock.
    await sql.query(`INSERT INTO artifacts (id, sha256, size) VALUES ('art', repeat('0', 64), 0)`)
    await sql.query(`INSERT INTO task_artifacts (task_id, artifact_id) VALUES ($1, 'art')`, [a])
    await sql.query(`INSERT INTO slot_locks (name, owner_task) VALUES ('host.slot(0)', $1)`, [a])

    // Canceling a settles a, and b upstream of it, in one transaction.
    const { rows: [settled] } = await sql.query<{ x: string }>(`SELECT cairn_cancel(ARRAY[$1]), pg_current_xact_id()::text AS x`, [a])
    const log = await sql.query<{ task_id: string; xact: string }>(`SELECT task_id, xact::text FROM test_hook_log ORDER BY task_id`)
    expect(log.rows).toEqual([a, b].sort().map((task_id) => ({ task_id, xact: settled!.x })))
    expect((await sql.query(`SELECT 1 FROM task_artifacts WHERE task_id = $1`, [a])).rowCount).toBe(0)
    expect((await sql.query(`SELECT 1 FROM slot_locks WHERE owner_task = $1`, [a])).rowCount).toBe(0)
  })

  it("are checked when registered: the function must exist with that signature", async () => {
    await expect(sql.query(`INSERT INTO settle_hooks (name, fn) VALUES ('typo', 'test_hook(text)')`)).rejects.toThrow(
      /function "test_hook\(text\)" does not exist/
    )
  })
})
