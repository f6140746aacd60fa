/**
 * The concurrency driver, briefly, as `npm test` runs it; and proof that its checker catches
 * violations (a checker that always passes would prove nothing).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { checkInvariants } from "../scripts/lib/invariants.js"
import { type Proc, spawnTs } from "../scripts/lib/processes.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/** Is any process of this process group still there? */
const groupAlive = (pgid: number) => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

// The driver runs in a process group of its own with its workers: whatever happens to this test
// (an assertion, a timeout), stopping the group leaves nothing running.
let stress: Proc | undefined
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-stress-test-"))
afterAll(async () => {
  await stress?.stop(5000)
  fs.rmSync(tmp, { recursive: true, force: true })
})

describe("scripts/stress.ts", () => {
  it("runs random work on several worker processes, killing some, and every invariant holds", async () => {
    const summaryFile = path.join(tmp, "summary.json")
    const args = ["--duration", "8", "--processes", "3", "--kill-every", "2", "--seed", "7", "--json", summaryFile]
    const p = (stress = spawnTs("stress", "scripts/stress.ts", args, { env: { DATABASE_URL: url }, group: true }))
    // Bounded well inside the test's own timeout, so that a stuck run is stopped here, with its output.
    const boundMs = 240_000
    const bound = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), boundMs).unref())
    const code = await Promise.race([p.exited, bound])
    if (code === "timeout") {
      await p.stop(5000)
      expect.fail(`the stress run did not finish within ${boundMs / 1000} s:\n${p.output().slice(-4000)}`)
    }
    await p.stop(5000)
    expect(groupAlive(p.pid), "a process of the stress run outlived it").toBe(false)
    expect(p.output()).toContain("invariants: all hold")
    expect(code, p.output().slice(-4000)).toBe(0)
    const summary = JSON.parse(fs.readFileSync(summaryFile, "utf8"))
    expect(summary.tasks).toBeGreaterThan(50)
    // The faults happened: workers were killed mid-task, and the engine retried what they held.
    expect(summary.kills, JSON.stringify(summary)).toBeGreaterThan(0)
    expect(summary.retriesAfterLostWorker, JSON.stringify(summary)).toBeGreaterThan(0)
  }, 300_000)
})

describe("the invariant checker", () => {
  it("flags an FCFS violation, an overlap and an unsettled task that a broken engine could leave", async () => {
    const report = await Effect.runPromise(Effect.gen(function*() {
      const db = yield* Db
      // Rows written by hand, as a broken scheduler might have left them.
      yield* db.rows(sql`INSERT INTO graphs (id, label) VALUES ('G_FAKE', 'fabricated')`)
      yield* db.rows(sql`
        INSERT INTO tasks (id, graph_id, node, kind, seq, params, state, pending_inputs, blocked_keys, exclusive, attempts, started_at, finished_at)
        VALUES ('T_FIRST', 'G_FAKE', 'a', 'debug.sleep', 1000001, '{}', 'succeeded', 0, 0, '{k}', 1, '2026-01-01 00:00:00+00', '2026-01-01 00:00:10+00'),
               ('T_SECOND', 'G_FAKE', 'b', 'debug.sleep', 1000002, '{}', 'succeeded', 0, 0, '{k}', 1, '2026-01-01 00:00:05+00', '2026-01-01 00:00:06+00'),
               ('T_STUCK', 'G_FAKE', 'c', 'debug.sleep', 1000003, '{}', 'blocked', 1, 0, '{}', 0, NULL, NULL)`)
      return yield* checkInvariants(sql`g.label = 'fabricated'`)
    }).pipe(Effect.scoped, Effect.provide(engineLayer(url))))
    expect(report.violations.some((v) => v.includes("FCFS on k") && v.includes("T_SECOND"))).toBe(true)
    expect(report.violations.some((v) => v.includes("T_STUCK is still blocked"))).toBe(true)
  })
})
