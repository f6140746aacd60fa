/**
 * GET /graphs and GET /graphs/{id} with `?wait=N` and `if-none-match`: long-polls for a page that
 * shows a graph (or the list of graphs) as it changes, with one open request per page.
 *
 * The answer's etag is a digest of its body. With `if-none-match` equal to the current etag and
 * `wait` > 0, the request is held until the body differs (200, new etag) or `wait` seconds pass
 * (304). Nothing in the engine announces every move of a task: settlements are announced (the
 * `cairn` channel that future long-polls hear), claims and progress are not. So a held request
 * re-checks when a wake-up names a future it cares about, and otherwise once a `tick`; each check
 * is cheap (`stamp`, e.g. one indexed scan of the graph's task rows) and the whole view is read
 * only when the stamp moved. Held requests count towards CAIRN_LONG_POLLS_PER_CLIENT, like future
 * long-polls, and answer at once at shutdown.
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Deferred, Duration, Effect, PubSub, Queue } from "effect"
import { createHash } from "node:crypto"
import type { Wakeup } from "../../engine/notify.js"
import { Session } from "../../engine/session.js"
import { asLongPoll, FutureWaiters } from "../waiters.js"

export interface Watched<A, E, R> {
  /** The answer's body, read in full. */
  readonly read: Effect.Effect<A, E, R>
  /** A cheap value that moves whenever the body may have; without it every check reads the body. */
  readonly stamp?: Effect.Effect<unknown, E, R>
  /** Whether a wake-up may concern the body last read (then check at once instead of at the tick). */
  readonly relevant: (w: Wakeup, last: A) => boolean
  /** How often to check when no relevant wake-up comes. */
  readonly tick: Duration.Duration
  /** The least time between two checks, however many wake-ups come (a busy engine sends many). */
  readonly gap?: Duration.Duration
}

/** A strong etag: a digest of the JSON body. */
const etagOf = (json: string) => `"${createHash("sha256").update(json).digest("base64url").slice(0, 27)}"`

/** The body as JSON with its etag, 304 when it still matches `if-none-match`. */
export const answerWatched = <A, E, R>(watched: Watched<A, E, R>, wait: number | undefined, ifNoneMatch: string | undefined) =>
  Effect.gen(function*() {
    const held = ifNoneMatch !== undefined && (wait ?? 0) > 0
    const { json, etag } = held ? yield* holdWhileUnchanged(watched, wait!, ifNoneMatch) : yield* readJson(watched.read)
    if (etag === ifNoneMatch) return HttpServerResponse.empty({ status: 304, headers: { etag } })
    return HttpServerResponse.text(json, { contentType: "application/json", headers: { etag } })
  })

const readJson = <A, E, R>(read: Effect.Effect<A, E, R>) =>
  Effect.map(read, (value) => {
    const json = JSON.stringify(value)
    return { value, json, etag: etagOf(json) }
  })

const holdWhileUnchanged = <A, E, R>(watched: Watched<A, E, R>, wait: number, ifNoneMatch: string) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const waiters = yield* FutureWaiters
    const session = yield* Session
    return yield* asLongPoll(
      Effect.scoped(Effect.gen(function*() {
        // Subscribed and registered before the first read: a change committed after it is seen.
        const wakeups = yield* PubSub.subscribe(session.wakeups)
        // Registered with the future waiters only so that shutdown (wakeAll) answers this request.
        const key = `graph-poll:${request.url}`
        const shutdown = yield* Effect.acquireRelease(waiters.register(key), (d) => waiters.unregister(key, d))
        const deadline = Date.now() + wait * 1000
        let stamp = watched.stamp === undefined ? undefined : yield* watched.stamp
        let last = yield* readJson(watched.read)
        const gap = Duration.toMillis(watched.gap ?? Duration.zero)
        while (last.etag === ifNoneMatch) {
          const left = deadline - Date.now()
          if (left <= 0) break
          if (gap > 0) yield* Effect.sleep(Duration.millis(Math.min(gap, left)))
          const relevant = Effect.repeat(Queue.take(wakeups), { until: (w) => watched.relevant(w, last.value) })
          const woke = yield* Effect.raceAll([
            Effect.as(relevant, "check" as const),
            Effect.as(Effect.sleep(Duration.min(watched.tick, Duration.millis(left))), "check" as const),
            Effect.as(Deferred.await(shutdown), "stop" as const)
          ])
          if (woke === "stop") break
          if (watched.stamp !== undefined) {
            const now = yield* watched.stamp
            if (now === stamp) continue
            stamp = now
          }
          last = yield* readJson(watched.read)
        }
        // At the end of the wait, a last full read: it sees what the stamp cannot (rows of other graphs).
        return last.etag === ifNoneMatch ? yield* readJson(watched.read) : last
      }))
    )
  })
