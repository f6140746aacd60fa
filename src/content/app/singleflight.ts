/**
 * Singleflight: concurrent callers asking for the same key share one run of the work.
 *
 * The run is forked into the scope the group was made in, not into the first caller's fiber. The
 * callers are HTTP requests: when the client that started a download goes away, the download must
 * go on for everyone else waiting on it (and for the next request, which finds the file stored).
 * Closing the scope (shutdown) interrupts runs still going, and their waiters with them.
 *
 * Only runs in flight are shared; a finished run is forgotten, so a failure is not remembered and
 * the next call tries again. Callers cache results themselves.
 */
import { Deferred, Effect, FiberId, type Scope } from "effect"

export type Singleflight<K> = <A, E>(key: K, work: Effect.Effect<A, E>) => Effect.Effect<A, E>

export const makeSingleflight = <K>(): Effect.Effect<Singleflight<K>, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope) => {
    const flights = new Map<K, Deferred.Deferred<any, any>>()
    return <A, E>(key: K, work: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        const running = flights.get(key) as Deferred.Deferred<A, E> | undefined
        if (running !== undefined) return Deferred.await(running)
        // Made and registered synchronously, so that no other caller can slip in between.
        const flight = Deferred.unsafeMake<A, E>(FiberId.none)
        flights.set(key, flight)
        return work.pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(flight, exit)),
          Effect.onInterrupt(() => Deferred.interrupt(flight)),
          Effect.ensuring(Effect.sync(() => flights.delete(key))),
          Effect.forkIn(scope),
          Effect.zipRight(Deferred.await(flight))
        )
      })
  })
