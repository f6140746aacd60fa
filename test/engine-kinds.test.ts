/**
 * Task kinds as the engine sees them: typed refs in params, progress reported by a running handler.
 */
import { type SQL, sql } from "drizzle-orm"
import { PgDialect } from "drizzle-orm/pg-core"
import { Deferred, Duration, Effect, Layer, Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import type { InvalidRequest } from "../src/engine/errors.js"
import { defineKind, FutureRef, noResources } from "../src/engine/kind.js"
import { builtinKinds } from "../src/engine/kinds/index.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})

/** A kind that only accepts a reference to a `repository_version` future. */
const typed = defineKind({
  name: "test.typed",
  params: Schema.Struct({ version: FutureRef("repository_version") }),
  outputs: { out: "value" },
  resources: noResources,
  handler: () => Effect.succeed({ out: null })
})

/** A kind that reports progress, then waits until the test lets it finish. */
const release = Effect.runSync(Deferred.make<void>())
const progressing = defineKind({
  name: "test.progress",
  params: Schema.Struct({}),
  outputs: { out: "value" },
  resources: noResources,
  handler: (_, ctx) =>
    Effect.gen(function*() {
      for (let done = 1; done <= 5; done++) yield* ctx.progress({ done, total: 5, unit: "files" })
      yield* Deferred.await(release)
      return { out: "done" }
    })
})

/** Reports 1 (written by the throttle 250 ms later), then 2 at 300 ms, and finishes. */
const twoReports = defineKind({
  name: "test.two-reports",
  params: Schema.Struct({}),
  outputs: { out: "value" },
  resources: noResources,
  handler: (_, ctx) =>
    Effect.gen(function*() {
      yield* ctx.progress({ done: 1, total: 2, unit: "files" })
      yield* Effect.sleep(Duration.millis(300))
      yield* ctx.progress({ done: 2, total: 2, unit: "files" })
      return { out: "done" }
    })
})

/**
 * A Db whose statements are held up by text: the throttled write of progress 1 takes 500 ms (so
 * it is still in flight when the handler's last report is flushed), and the settle 1 s (so that a
 * late write would still find the task running).
 */
const dialect = new PgDialect()
const SlowDb = Layer.effect(
  Db,
  Effect.map(Db, (db) =>
    Db.of({
      ...db,
      rows: <R>(q: SQL) => {
        const text = dialect.sqlToQuery(q)
        const slow = text.sql.includes("SET progress") && text.params.some((p) => String(p).includes(`"done":1`))
          ? 500
          : text.sql.includes("cairn_settle_batch") ? 1000 : 0
        return slow === 0 ? db.rows<R>(q) : Effect.zipRight(Effect.sleep(Duration.millis(slow)), db.rows<R>(q))
      }
    })
  )
)

const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(
    Effect.scoped(eff).pipe(Effect.provide(engineLayer(url, {}, [...builtinKinds, typed, progressing, twoReports]))) as Effect.Effect<A, E, never>
  )

describe("task kinds", () => {
  it("rejects a ref whose future kind does not fit the param, naming the node and the param", async () => {
    const err = await run(
      submitGraph({
        nodes: {
          v: { task: "debug.sleep" },
          bad: { task: "test.typed", params: { version: { $ref: "v.result" } } }
        }
      }).pipe(Effect.flip)
    ) as InvalidRequest
    expect(err._tag).toBe("InvalidRequest")
    const nodes = (err.details as { nodes: Record<string, Array<string>> }).nodes
    expect(Object.keys(nodes)).toEqual(["bad"])
    expect(nodes.bad!.join(" ")).toMatch(/params\.version\.kind: expected a reference to a repository_version future/)
  })

  it("shows a running handler's progress on its task", async () => {
    const progress = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 })
      const g = yield* submitGraph({ nodes: { p: { task: "test.progress" } } })
      const db = yield* Db
      const deadline = Date.now() + 20_000
      for (;;) {
        const [t] = yield* db.rows<{ state: string; progress: unknown }>(sql`SELECT state, progress FROM tasks WHERE id = ${g.nodes.p!.task}`)
        if (t?.state === "running" && (t.progress as { done?: number } | null)?.done === 5) {
          yield* Deferred.succeed(release, undefined)
          return t.progress
        }
        if (Date.now() > deadline) throw new Error(`progress never reached 5/5: ${JSON.stringify(t)}`)
        yield* Effect.sleep(Duration.millis(25))
      }
    }))
    expect(progress).toEqual({ done: 5, total: 5, unit: "files" })
  })

  it("keeps the last progress report when an earlier write is still in flight as the task ends", async () => {
    const final = await run(Effect.gen(function*() {
      yield* runWorker({ slots: 1 }).pipe(Effect.provide(SlowDb))
      const g = yield* submitGraph({ nodes: { p: { task: "test.two-reports" } } })
      const db = yield* Db
      const deadline = Date.now() + 20_000
      for (;;) {
        const [t] = yield* db.rows<{ state: string; progress: unknown }>(sql`SELECT state, progress FROM tasks WHERE id = ${g.nodes.p!.task}`)
        if (t?.state === "succeeded") return t.progress
        if (Date.now() > deadline) throw new Error(`the task did not finish: ${JSON.stringify(t)}`)
        yield* Effect.sleep(Duration.millis(25))
      }
    }))
    expect(final).toEqual({ done: 2, total: 2, unit: "files" })
  })
})
