/**
 * Cancellation of a task or of every unsettled task of a graph. Blocked and ready tasks settle
 * `canceled` at once (with their outputs and everything downstream); running tasks are flagged and
 * their workers are told through the same transaction's NOTIFY to interrupt the handler fiber,
 * after which the worker settles them `canceled` (cairn_cancel, cairn_fail).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db, txRows } from "../db/client.js"
import { Conflict, NotFound } from "./errors.js"
import { notifyChanges, toChanges } from "./notify.js"

const cancelIds = (ids: ReadonlyArray<string>) =>
  Effect.flatMap(Db, (db) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        const [r] = yield* txRows<{ c: unknown }>(tx, sql`SELECT cairn_cancel(${sql.param(ids)}::text[]) AS c`)
        yield* notifyChanges(tx, toChanges(r!.c))
      })
    )
  )

export const cancelTask = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [t] = yield* db.rows<{ state: string }>(sql`SELECT state FROM tasks WHERE id = ${id}`)
    if (!t) return yield* new NotFound({ message: `task ${id} does not exist` })
    if (t.state === "succeeded" || t.state === "failed" || t.state === "canceled") {
      return yield* new Conflict({ message: `task ${id} is already ${t.state}` })
    }
    yield* cancelIds([id])
  })

export const cancelGraph = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [g] = yield* db.rows<{ id: string }>(sql`SELECT id FROM graphs WHERE id = ${id}`)
    if (!g) return yield* new NotFound({ message: `graph ${id} does not exist` })
    const open = yield* db.rows<{ id: string }>(
      sql`SELECT id FROM tasks WHERE graph_id = ${id} AND state IN ('blocked', 'ready', 'running')`
    )
    if (open.length > 0) yield* cancelIds(open.map((t) => t.id))
  })
