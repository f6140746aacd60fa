/**
 * The `Db` service: one `pg` pool, drizzle on top, and Effect-shaped queries and transactions.
 *
 * Every engine transaction is written as an Effect that receives a `Tx` (a drizzle handle bound to
 * one connection). Deadlocks and serialization failures are retried from the start: the engine
 * takes per-key locks in hash order, but a cancel racing a failure cascade can still meet one, and
 * PostgreSQL resolves it by aborting one side, which we simply run again.
 */
import { Context, Data, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres"
import type { SQL } from "drizzle-orm"
import pg from "pg"
import * as schema from "./schema.js"

export type Tx = NodePgDatabase<typeof schema>

export class DbError extends Data.TaggedError("DbError")<{
  readonly message: string
  readonly code?: string | undefined
  readonly cause?: unknown
}> {}

/** drizzle wraps the driver's error ("Failed query: ..."); the SQLSTATE and message are on its cause. */
export const toDbError = (cause: unknown): DbError => {
  let e = cause as { message?: string; code?: string; cause?: unknown } | undefined
  while (e && e.code === undefined && e.cause) e = e.cause as typeof e
  return new DbError({ message: e?.message ?? String(cause), code: e?.code, cause })
}

/** SQLSTATEs that mean "run the whole transaction again". */
const retryable = (e: DbError) => e.code === "40P01" || e.code === "40001"

/**
 * Runs `once` (a transaction, or one autocommit statement) again on deadlock or serialization
 * failure: PostgreSQL resolved the conflict by aborting it, and nothing it did was committed.
 */
export const retryConflicts = <A, E, R>(once: Effect.Effect<A, E, R>) =>
  once.pipe(
    Effect.retry({
      while: (e) => e instanceof DbError && retryable(e),
      schedule: Schedule.exponential(Duration.millis(5)).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(20)))
    })
  )

export interface DbShape {
  readonly pool: pg.Pool
  readonly db: Tx
  /** The connection string, for the sessions that must not be pooled (LISTEN, worker liveness lock). */
  readonly url: Redacted.Redacted<string>
  /** Run one statement (or a drizzle builder) outside a transaction. */
  readonly run: <A>(f: (db: Tx) => PromiseLike<A>) => Effect.Effect<A, DbError>
  /** Rows of a raw SQL statement. */
  readonly rows: <R = Record<string, unknown>>(q: SQL) => Effect.Effect<ReadonlyArray<R>, DbError>
  /** Run `body` in one transaction; retried on deadlock/serialization failure. */
  readonly transaction: <A, E, R>(body: (tx: Tx) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | DbError, R>
}

export class Db extends Context.Tag("cairn/Db")<Db, DbShape>() {}

/** Rows of a raw statement inside a transaction. */
export const txRows = <R = Record<string, unknown>>(tx: Tx, q: SQL): Effect.Effect<ReadonlyArray<R>, DbError> =>
  Effect.tryPromise({ try: () => tx.execute(q), catch: toDbError }).pipe(
    Effect.map((r) => r.rows as unknown as ReadonlyArray<R>)
  )

/** A promise-returning drizzle call inside a transaction. */
export const txRun = <A>(f: () => PromiseLike<A>): Effect.Effect<A, DbError> =>
  Effect.tryPromise({ try: () => f(), catch: toDbError })

export interface PoolOptions {
  /**
   * How long a statement may wait for its answer (client side; 0: forever). Across a dead link a
   * statement sent on an established connection gets no error until TCP gives up retransmitting
   * (~15 minutes with Linux defaults), so without this bound an API request would hang instead of
   * answering 503. A statement cut short is a DbError without SQLSTATE ("unavailable"), and its
   * connection is dropped.
   */
  readonly queryTimeoutMs?: number
}

/** CAIRN_DB_QUERY_TIMEOUT_MS's default: far above any statement cairn sends (seconds at most). */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000

/**
 * A checkout must succeed within this long: pg-pool applies it both to a new connection (a SYN
 * lost to a dead link gets no answer at all) and to waiting for a free connection of a full pool.
 */
const CONNECT_TIMEOUT_MS = 10_000

export const makeDb = (url: Redacted.Redacted<string>, poolSize: number, options: PoolOptions = {}) =>
  Effect.gen(function*() {
    const queryTimeout = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const p = new pg.Pool({
          connectionString: Redacted.value(url),
          max: poolSize,
          idleTimeoutMillis: 30_000,
          connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
          ...(queryTimeout > 0 ? { query_timeout: queryTimeout } : {})
        })
        // A connection that dies while idle (database restart, pg_terminate_backend) must not crash
        // the process: the pool drops it and the next checkout makes a new one.
        p.on("error", () => undefined)
        // The same for a checked-out connection: its query fails with a DbError instead.
        p.on("connect", (c) => c.on("error", () => undefined))
        return p
      }),
      (p) => Effect.promise(() => p.end().catch(() => undefined))
    )
    const db = drizzle(pool, { schema })
    // drizzle(...) with a schema walks every table's relations: measurable per transaction on the
    // engine's hot path. One handle per pooled connection, made once.
    const handles = new WeakMap<pg.PoolClient, Tx>()
    const handleOf = (client: pg.PoolClient) => {
      let tx = handles.get(client)
      if (tx === undefined) handles.set(client, (tx = drizzle(client, { schema })))
      return tx
    }

    const transaction = <A, E, R>(body: (tx: Tx) => Effect.Effect<A, E, R>) => {
      const once = Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => pool.connect(), catch: toDbError }),
        (client) => {
          const tx = handleOf(client)
          return Effect.tryPromise({ try: () => client.query("BEGIN"), catch: toDbError }).pipe(
            Effect.zipRight(body(tx)),
            Effect.tap(() => Effect.tryPromise({ try: () => client.query("COMMIT"), catch: toDbError })),
            Effect.onError(() => Effect.promise(() => client.query("ROLLBACK").catch(() => undefined)))
          )
        },
        (client, exit) =>
          // After a failure the connection may be broken (that is often why it failed): drop it.
          Effect.sync(() => client.release(exit._tag === "Failure" ? true : undefined))
      )
      return retryConflicts(once)
    }

    return Db.of({
      pool,
      db,
      url,
      run: (f) => Effect.tryPromise({ try: () => f(db), catch: toDbError }),
      rows: <R>(q: SQL) =>
        Effect.tryPromise({ try: () => db.execute(q), catch: toDbError }).pipe(
          Effect.map((r) => r.rows as unknown as ReadonlyArray<R>)
        ),
      transaction
    })
  })

export const DbLive = (url: Redacted.Redacted<string>, poolSize: number, options?: PoolOptions) =>
  Layer.scoped(Db, makeDb(url, poolSize, options))
