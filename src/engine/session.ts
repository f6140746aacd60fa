/**
 * The process's one dedicated (unpooled) PostgreSQL session. It LISTENs on the channels its users
 * ask for (`listen`: API long-polls on `cairn`, worker runtimes on `cairn_work` and their own
 * `cairn_w_<id>` (see notify.ts), the content app on the content store's `cairn_content`), announces
 * each notification as a `Wakeup` naming its channel, and is the session a worker's liveness
 * lock lives on, so "the session is gone" means both "we may have missed notifications" and "our
 * workers are presumed dead by everyone else".
 *
 * It reconnects forever with capped exponential backoff. Each connection is published on `current`
 * (with a generation number) so that the worker runtime can register on it, and a synthetic
 * "re-check everything" wakeup follows every (re)connect because notifications sent while we were
 * away are lost.
 *
 * `sync` is a barrier on the notification stream: PostgreSQL sends a listening session the
 * notifications committed before a statement ahead of that statement's ReadyForQuery, and node-pg
 * emits them in arrival order, so once a `SELECT 1` on this session returns, every wake-up committed
 * before it was sent has been announced. The content app uses it to see a distribution change a
 * client has just been told about (`src/content/app/routing-table.ts`).
 */
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberId,
  Layer,
  Option,
  PubSub,
  Redacted,
  type Scope,
  Schedule,
  Stream,
  SubscriptionRef
} from "effect"
import pg from "pg"
import { Db, DbError } from "../db/client.js"
import { decodeWakeup, type Wakeup } from "./notify.js"

export interface Connected {
  readonly client: pg.Client
  readonly generation: number
}

export interface SessionShape {
  readonly wakeups: PubSub.PubSub<Wakeup>
  readonly current: SubscriptionRef.SubscriptionRef<Option.Option<Connected>>
  /** Resolves with the live connection, waiting for one if we are between connections. */
  readonly connected: Effect.Effect<Connected>
  /** Held around every query on the session's client: worker runtimes of one process share it. */
  readonly queries: Effect.Semaphore
  /**
   * LISTENs on `channel` until the scope closes (again after every reconnect); its notifications
   * are announced on `wakeups`. Notifications sent before it returns may be missed: callers read
   * the state they care about afterwards.
   */
  readonly listen: (channel: string) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Calls `f` synchronously with every wake-up as it is announced, until the scope closes: for
   * state that must be current the moment `sync` returns (a fiber taking from `wakeups` may not
   * have run yet). `f` must be quick and must not throw.
   */
  readonly onWakeup: (f: (w: Wakeup) => void) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Returns once every notification committed before the call has been announced. Callers that
   * arrive while a round is waiting to start share it, so a burst costs one round trip.
   */
  readonly sync: Effect.Effect<void, DbError>
}

export class Session extends Context.Tag("cairn/Session")<Session, SessionShape>() {}

/** How often the session is probed, and how long a probe may take. */
const PROBE_MS = 5_000

/** After a (re)connect: no channel in particular, anything may have changed. */
export const everything: Wakeup = { channel: undefined, ready: 1, futures: "*", cancel: "*", workers: undefined }

const connectOnce = (url: string) =>
  Effect.tryPromise({
    try: async () => {
      const client = new pg.Client({ connectionString: url, keepAlive: true, connectionTimeoutMillis: 5000 })
      client.on("error", () => undefined)
      await client.connect()
      // Let the server notice a vanished peer (machine gone, cable cut) within seconds too:
      // keepalives for an idle session, and a bound on unacknowledged data for one that was being
      // sent notifications when the link died (keepalives do not run while data is in flight).
      // The session is used at least every PROBE_MS, so the server drops it 11-16 s after the
      // cut: after a worker on the far side has fenced itself (60% of the default 15 s heartbeat
      // timeout), so its tasks are not retried while it may still run them (DESIGN.md §6).
      await client.query(
        "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 16000"
      )
      return client
    },
    catch: (cause) => new DbError({ message: `session connect failed: ${(cause as Error).message}`, cause })
  })

export const SessionLive = Layer.scoped(
  Session,
  Effect.gen(function*() {
    const db = yield* Db
    const url = Redacted.value(db.url)
    const wakeups = yield* PubSub.sliding<Wakeup>(4096)
    const listeners = new Set<(w: Wakeup) => void>()
    const announce = (w: Wakeup) => {
      wakeups.unsafeOffer(w)
      for (const f of listeners) f(w)
    }
    const current = yield* SubscriptionRef.make<Option.Option<Connected>>(Option.none())
    const queries = yield* Effect.makeSemaphore(1)
    let generation = 0

    // Channel -> how many users listen on it; and the live client, read synchronously by `listen`
    // so that a channel added while a connection is being set up is never missed by both.
    const channels = new Map<string, number>()
    let live: pg.Client | undefined
    const listenOn = (client: pg.Client, channel: string, listen: boolean) =>
      queries.withPermits(1)(
        Effect.tryPromise(() => client.query(`${listen ? "LISTEN" : "UNLISTEN"} ${client.escapeIdentifier(channel)}`))
      ).pipe(Effect.ignore) // a lost connection is noticed (and everything re-listened) by `oneConnection`

    const oneConnection = Effect.gen(function*() {
      const client = yield* connectOnce(url)
      generation += 1
      yield* Effect.logDebug("session connected").pipe(Effect.annotateLogs({ generation }))
      const lost = yield* Deferred.make<void>()
      client.on("notification", (msg) => {
        if (channels.has(msg.channel)) announce(decodeWakeup(msg.payload, msg.channel))
      })
      client.once("end", () => Deferred.unsafeDone(lost, Exit.void))
      client.once("error", () => Deferred.unsafeDone(lost, Exit.void))
      // Published before listening, so that a `listen` from now on listens on this connection
      // itself; listening twice on a channel is harmless.
      live = client
      yield* SubscriptionRef.set(current, Option.some({ client, generation }))
      yield* Effect.forEach([...channels.keys()], (channel) => listenOn(client, channel, true), { discard: true })
      announce(everything)
      // A session the server dropped while the link was down looks alive from here (nothing is
      // sent on an idle LISTEN session, and our keepalives are the system's two hours), so it is
      // probed: one that does not answer within PROBE_MS is given up.
      const prober = yield* Effect.fork(Effect.gen(function*() {
        for (;;) {
          yield* Effect.sleep(PROBE_MS)
          const ok = yield* queries.withPermits(1)(Effect.tryPromise(() => client.query("SELECT 1"))).pipe(
            Effect.timeout(PROBE_MS),
            Effect.isSuccess
          )
          if (!ok) {
            yield* Effect.logWarning(`database session did not answer within ${PROBE_MS} ms`)
            return Deferred.unsafeDone(lost, Exit.void)
          }
        }
      }))
      yield* Deferred.await(lost).pipe(
        Effect.ensuring(
          Effect.sync(() => (live = undefined)).pipe(
            Effect.zipRight(Fiber.interrupt(prober)),
            Effect.zipRight(SubscriptionRef.set(current, Option.none())),
            // Not awaited: across a dead link the goodbye would wait for TCP to give up.
            Effect.zipRight(Effect.sync(() => void client.end().catch(() => undefined)))
          )
        )
      )
      yield* Effect.logWarning("database session lost; reconnecting")
    })

    yield* oneConnection.pipe(
      Effect.tapError((e) => Effect.logWarning(`database session: ${e.message}`)),
      Effect.either,
      Effect.repeat(
        Schedule.exponential(Duration.millis(100), 2).pipe(
          Schedule.union(Schedule.spaced(Duration.seconds(5))),
          Schedule.jittered
        )
      ),
      Effect.forkScoped
    )

    const connected = current.changes.pipe(
      Stream.filterMap((x) => x),
      Stream.runHead,
      Effect.map(Option.getOrThrow)
    )
    const listen = (channel: string) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const n = channels.get(channel) ?? 0
          channels.set(channel, n + 1)
          return n === 0 && live ? listenOn(live, channel, true) : Effect.void
        }),
        () =>
          Effect.suspend(() => {
            const n = channels.get(channel) ?? 1
            if (n > 1) return Effect.sync(() => channels.set(channel, n - 1))
            channels.delete(channel)
            return live ? listenOn(live, channel, false) : Effect.void
          })
      )

    const onWakeup = (f: (w: Wakeup) => void) =>
      Effect.acquireRelease(Effect.sync(() => listeners.add(f)), () => Effect.sync(() => listeners.delete(f)))

    // The round that callers join: it has not sent its statement yet, so it is a barrier for all of
    // them. It is forgotten the moment it sends, and later callers make the next one.
    const scope = yield* Effect.scope
    let waitingRound: Deferred.Deferred<void, DbError> | undefined
    const round = (done: Deferred.Deferred<void, DbError>) =>
      Effect.flatMap(connected, ({ client }) =>
        queries.withPermits(1)(
          Effect.suspend(() => {
            if (waitingRound === done) waitingRound = undefined
            return Effect.tryPromise({
              try: () => client.query("SELECT 1"),
              catch: (cause) => new DbError({ message: `session sync failed: ${(cause as Error).message}`, cause })
            })
          })
        )).pipe(
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(done, Exit.asVoid(exit)))
        )
    const sync = Effect.suspend(() => {
      if (waitingRound === undefined) {
        const done = Deferred.unsafeMake<void, DbError>(FiberId.none)
        waitingRound = done
        return Effect.zipRight(Effect.forkIn(round(done), scope), Deferred.await(done))
      }
      return Deferred.await(waitingRound)
    })

    return { wakeups, current, connected, queries, listen, onWakeup, sync }
  })
)
