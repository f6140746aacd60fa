/**
 * Shutdown (DESIGN.md §7): stop claiming (and registering again), let running tasks finish within
 * CAIRN_SHUTDOWN_GRACE_MS, then interrupt the rest, which the completer hands back (cairn_release:
 * ready again, attempt not spent), and delete the worker's row. It runs while the generation is
 * still alive (heartbeat, session), so that the running tasks can still be settled.
 */
import { Duration, Effect } from "effect"
import { CairnConfig } from "../../config/config.js"
import { Db } from "../../db/client.js"
import * as Q from "../queries/worker.js"
import type { RunningTasks } from "./running.js"

/** How long the drain waits for interrupted tasks to be handed back before it unregisters anyway. */
const HAND_BACK_WAIT_MS = 10_000

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const makeDrain = (running: RunningTasks, currentId: () => string | undefined) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const db = yield* Db
    return Effect.gen(function*() {
      running.draining = true
      const deadline = Date.now() + Duration.toMillis(config.shutdownGrace)
      if (running.size > 0) {
        yield* Effect.logInfo(`shutting down: waiting up to ${Duration.format(config.shutdownGrace)} for ${running.size} running task(s)`)
      }
      while (running.size > 0 && Date.now() < deadline) {
        yield* Effect.promise(() => Promise.race([running.anyDone(), delay(100)]))
      }
      const left = running.values()
      for (const r of left) yield* running.stop(r, "shutdown")
      yield* Effect.promise(() => Promise.race([Promise.all(left.map((r) => r.done)), delay(HAND_BACK_WAIT_MS)]))
      const id = currentId()
      if (id) yield* Q.unregister(db.db, id).pipe(Effect.ignore)
    })
  })
