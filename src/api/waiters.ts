/**
 * Long-poll support: wait for a future to settle without holding a database connection.
 *
 * Waiters are kept in memory by future id. The Session's wakeups (one NOTIFY per settling
 * transaction) name the settled futures, or say "*" when there were too many to list, in which case
 * one query checks every future waited on. A thousand idle long-polls cost nothing but memory.
 */
import { HttpServerRequest } from "@effect/platform"
import { sql } from "drizzle-orm"
import { Context, Deferred, Duration, Effect, Layer, Option, Stream } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db } from "../db/client.js"
import { CLIENTS_CHANNEL } from "../engine/notify.js"
import { Session } from "../engine/session.js"
import { TooManyRequests } from "./errors.js"

export interface FutureWaitersShape {
  /** Completes when `id` may have settled, or after `timeout`. Register before reading the row. */
  readonly register: (id: string) => Effect.Effect<Deferred.Deferred<void>>
  readonly unregister: (id: string, d: Deferred.Deferred<void>) => Effect.Effect<void>
  readonly size: Effect.Effect<number>
  /** Wake every waiter (shutdown: each long-poll answers with the state it has now). */
  readonly wakeAll: Effect.Effect<void>
  /**
   * Count one long-poll of `client` (its address) while `use` runs, or fail with `onFull` when
   * the client already holds `limit` of them.
   */
  readonly perClient: <A, E, R, E2>(
    client: string,
    limit: number,
    onFull: () => E2,
    use: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | E2, R>
}

export class FutureWaiters extends Context.Tag("cairn/FutureWaiters")<FutureWaiters, FutureWaitersShape>() {}

export const FutureWaitersLive = Layer.scoped(
  FutureWaiters,
  Effect.gen(function*() {
    const db = yield* Db
    const session = yield* Session
    const waiting = new Map<string, Set<Deferred.Deferred<void>>>()
    const clients = new Map<string, number>()

    const wake = (id: string) => {
      const set = waiting.get(id)
      if (!set) return Effect.void
      waiting.delete(id)
      return Effect.forEach(set, (d) => Deferred.succeed(d, undefined), { discard: true })
    }

    yield* session.listen(CLIENTS_CHANNEL)
    yield* Stream.fromPubSub(session.wakeups).pipe(
      Stream.runForEach((w) =>
        Effect.gen(function*() {
          if (waiting.size === 0) return
          if (w.futures !== "*") return yield* Effect.forEach(w.futures, wake, { discard: true })
          const ids = [...waiting.keys()]
          const settled = yield* db.rows<{ id: string }>(
            sql`SELECT id FROM futures WHERE id = ANY(${sql.param(ids)}::text[]) AND state <> 'pending'`
          ).pipe(Effect.orElseSucceed(() => []))
          yield* Effect.forEach(settled, (r) => wake(r.id), { discard: true })
        })
      ),
      Effect.forkScoped
    )

    return {
      register: (id) =>
        Effect.gen(function*() {
          const d = yield* Deferred.make<void>()
          const set = waiting.get(id) ?? new Set()
          set.add(d)
          waiting.set(id, set)
          return d
        }),
      unregister: (id, d) =>
        Effect.sync(() => {
          const set = waiting.get(id)
          set?.delete(d)
          if (set && set.size === 0) waiting.delete(id)
        }),
      size: Effect.sync(() => [...waiting.values()].reduce((n, s) => n + s.size, 0)),
      wakeAll: Effect.suspend(() => Effect.forEach([...waiting.keys()], wake, { discard: true })),
      perClient: <A, E, R, E2>(client: string, limit: number, onFull: () => E2, use: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            const n = clients.get(client) ?? 0
            if (n >= limit) return false
            clients.set(client, n + 1)
            return true
          }),
          (counted): Effect.Effect<A, E | E2, R> => counted ? use : Effect.fail(onFull()),
          (counted) =>
            Effect.sync(() => {
              if (!counted) return
              const n = (clients.get(client) ?? 1) - 1
              if (n <= 0) clients.delete(client)
              else clients.set(client, n)
            })
        )
    }
  })
)

export const awaitOrTimeout = (d: Deferred.Deferred<void>, seconds: number) =>
  Deferred.await(d).pipe(Effect.timeout(Duration.seconds(seconds)), Effect.ignore)

/**
 * Run `use` as one long-poll of the requesting client (its address), or fail with 429 when the
 * client already holds CAIRN_LONG_POLLS_PER_CLIENT of them.
 */
export const asLongPoll = <A, E, R>(use: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const waiters = yield* FutureWaiters
    const config = yield* CairnConfig
    return yield* waiters.perClient(
      Option.getOrElse(request.remoteAddress, () => "unknown"),
      config.longPollsPerClient,
      () =>
        new TooManyRequests({
          message: `a client may hold at most ${config.longPollsPerClient} long-polls (?wait=) at once; retry when one has answered`,
          details: { limit: config.longPollsPerClient }
        }),
      use
    )
  })

