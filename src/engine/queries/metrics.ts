/**
 * The statements GET /metrics runs at scrape time (`src/api/metrics.ts`): whole-table counts,
 * one sequential scan each per scrape, fine up to millions of rows at a 15 s scrape interval (see
 * DESIGN.md §13).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../../db/client.js"

export interface TaskCount {
  readonly kind: string
  readonly state: string
  readonly n: number
}

export interface FutureCount {
  readonly state: string
  readonly n: number
}

/** Tasks by kind and state. */
export const taskCounts = () =>
  Effect.flatMap(Db, (db) => db.rows<TaskCount>(sql`SELECT kind, state, count(*)::int AS n FROM tasks GROUP BY kind, state`))

/** Futures by state. */
export const futureCounts = () =>
  Effect.flatMap(Db, (db) => db.rows<FutureCount>(sql`SELECT state, count(*)::int AS n FROM futures GROUP BY state`))

/** Registered workers (a worker's row goes when it stops or is reaped). */
export const workersAlive = () =>
  Effect.flatMap(Db, (db) => db.rows<{ readonly n: number }>(sql`SELECT count(*)::int AS n FROM workers`)).pipe(
    Effect.map(([row]) => row?.n ?? 0)
  )
