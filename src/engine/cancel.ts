/**
 * Cancellation of a task or of every unsettled task of a graph. Blocked and ready tasks settle
 * `canceled` at once (with their outputs and everything downstream); running tasks are flagged and
 * their workers are told through the same transaction's NOTIFY to interrupt the handler fiber,
 * after which the worker settles them `canceled` (cairn_cancel, cairn_fail).
 */
import { Effect } from "effect"
import { Db } from "../db/client.js"
import { Conflict, NotFound } from "./errors.js"
import { notifyChanges } from "./notify.js"
import * as Q from "./queries/cancel.js"

/** Cancels the listed tasks (those settled already are left as they are). */
export const cancelIds = (ids: ReadonlyArray<string>) =>
  Effect.flatMap(Db, (db) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        const changes = yield* Q.cancel(tx, ids)
        yield* notifyChanges(tx, changes)
      })
    )
  )

export const cancelTask = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const state = yield* Q.taskState(db.db, id)
    if (!state) return yield* new NotFound({ message: `task ${id} does not exist` })
    if (state === "succeeded" || state === "failed" || state === "canceled") {
      return yield* new Conflict({ message: `task ${id} is already ${state}` })
    }
    yield* cancelIds([id])
  })

export const cancelGraph = (id: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    if (!(yield* Q.graphExists(db.db, id))) return yield* new NotFound({ message: `graph ${id} does not exist` })
    const open = yield* Q.unsettledTasks(db.db, id)
    if (open.length > 0) yield* cancelIds(open)
  })
