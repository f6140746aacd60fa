/**
 * A remote's `rate_limit` (requests per second) across the whole cluster.
 *
 * The bucket is one row per remote, `remote_rate_buckets (remote_id, next_at)`: the earliest time
 * at which the next request not yet handed out may start (a token bucket kept as virtual
 * scheduling, GCRA: one row, no refill job). A process that needs requests reserves a batch of k
 * of them in one statement:
 *
 *   next_at := greatest(next_at, now) + k / rate     RETURNING the batch's start
 *
 * and owns the k start times start, start + 1/rate, ..., start + (k-1)/rate, which it hands out
 * locally, one per request, each request waiting for its time. Reservations are serialized by the
 * row lock and never overlap, so across the cluster the start times are 1/rate apart: the database
 * is asked once per batch, not per request (k is a quarter of a second's worth, at least 1, at
 * most 256; a worker asks again when half of its batch is used).
 *
 * How close to the limit it holds (DESIGN.md, "Remote rate limits"): a start time is used only
 * within SLACK_MS after it (a request that could not go then, because the process was busy, takes
 * a later one, and the time is wasted, never saved up), and local times are those of the answer's
 * arrival (later than the database's by the statement's latency L, never earlier). So in any one
 * second at most rate * (1 + SLACK + L) + 1 requests start; with SLACK 25 ms and a local database,
 * a few percent above the rate, plus one. Unused start times are lost: a remote that is used only
 * now and then gets fewer requests than its rate, never more.
 */
import { sql } from "drizzle-orm"
import { Effect, Either } from "effect"
import type { DbError, DbShape } from "../db/client.js"

/** A start time is given out at most this long after it has passed. */
export const SLACK_MS = 25
/** A batch covers this long at the remote's rate. */
const BATCH_SECONDS = 0.25
const MAX_BATCH = 256

interface Bucket {
  /** Local start times (performance.now()), ascending, not yet handed out. */
  readonly times: Array<number>
  /** The reservation in flight, if any. */
  reserving: Promise<void> | undefined
}

/** One bucket per remote and rate in this process, shared by every user (sync lanes, the content app). */
const buckets = new Map<string, Bucket>()

const reserve = (db: Pick<DbShape, "rows">, remoteId: string, perSecond: number, bucket: Bucket, k: number) =>
  Effect.runPromise(Effect.either(
    db.rows<{ start_in_ms: number }>(sql`
      INSERT INTO remote_rate_buckets AS b (remote_id, next_at)
      VALUES (${remoteId}, clock_timestamp() + make_interval(secs => ${k}::float8 / ${perSecond}::float8))
      ON CONFLICT (remote_id) DO UPDATE
        SET next_at = greatest(b.next_at, clock_timestamp()) + make_interval(secs => ${k}::float8 / ${perSecond}::float8)
      RETURNING (extract(epoch FROM b.next_at - clock_timestamp()) * 1000 - ${(k * 1000) / perSecond}::float8)::float8 AS start_in_ms`)
  )).then((answer) => {
    if (Either.isLeft(answer)) throw answer.left
    const rows = answer.right
    const arrived = performance.now()
    const start = arrived + Math.max(0, Number(rows[0]?.start_in_ms ?? 0))
    const step = 1000 / perSecond
    for (let i = 0; i < k; i++) bucket.times.push(start + i * step)
  })

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Wait until one more request to `remoteId` may start under `perSecond` requests per second
 * across the cluster. Succeeds when it may; fails only if the database does (no request goes
 * without a start time).
 */
export const pace = (db: Pick<DbShape, "rows">, remoteId: string, perSecond: number): Effect.Effect<void, DbError> =>
  Effect.tryPromise({ catch: (e) => e as DbError, try: async () => {
    const key = `${remoteId} ${perSecond}`
    let bucket = buckets.get(key)
    if (bucket === undefined) buckets.set(key, bucket = { times: [], reserving: undefined })
    const b = bucket
    const k = Math.max(1, Math.min(MAX_BATCH, Math.round(perSecond * BATCH_SECONDS)))
    const refill = () => {
      b.reserving ??= reserve(db, remoteId, perSecond, b, k).finally(() => (b.reserving = undefined))
      return b.reserving
    }
    for (;;) {
      const now = performance.now()
      // Times that passed more than SLACK_MS ago are not given out any more.
      let stale = 0
      while (stale < b.times.length && b.times[stale]! < now - SLACK_MS) stale++
      if (stale > 0) b.times.splice(0, stale)
      const at = b.times.shift()
      if (at === undefined) {
        await refill()
        continue
      }
      if (b.times.length < k / 2) void refill().catch(() => undefined)
      if (at > now) await sleep(at - now)
      // Late by more than the slack (a busy event loop): this time is lost, take the next.
      if (performance.now() - at <= SLACK_MS) return
    }
  } })
