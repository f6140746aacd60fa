/**
 * The concurrency driver, briefly, as `npm test` runs it; and proof that its checker catches
 * violations (a checker that always passes would prove nothing).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import { checkInvariants } from "../scripts/lib/invariants.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

const root = fileURLToPath(new URL("..", import.meta.url))
let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

describe("scripts/stress.ts", () => {
  it("runs random work on several worker processes, killing some, and every invariant holds", async () => {
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "scripts/stress.ts", "--duration", "8", "--processes", "3", "--kill-every", "3", "--seed", "7"], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: url }
      })
      let text = ""
      child.stdout.on("data", (d) => (text += d))
      child.stderr.on("data", (d) => (text += d))
      child.once("exit", (code) => resolve({ code, text }))
    })
    expect(out.text).toContain("invariants: all hold")
    expect(out.code).toBe(0)
    const tasks = Number(/tasks (\d+)/.exec(out.text)?.[1])
    expect(tasks).toBeGreaterThan(50)
  })
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
