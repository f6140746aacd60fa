/**
 * Reads for following graphs (the console and anyone who watches work): the list of graphs with
 * their task counts, and a cheap change stamp of one graph for long-polls. Beside views.ts, whose
 * read models they complement.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../db/client.js"
import type { GraphState, TaskState } from "./views.js"

export type StateCounts = Record<TaskState, number>

export interface GraphSummary {
  readonly id: string
  readonly label?: string
  readonly state: GraphState
  readonly created_at: string
  readonly finished_at?: string
  /** How many tasks, and how many in each state. */
  readonly tasks: number
  readonly counts: StateCounts
}

export interface GraphFilter {
  readonly state?: GraphState | undefined
  readonly cursor?: string | undefined
  readonly limit: number
}

/**
 * `graphState` (views.ts) in SQL, over per-state counts (columns blocked .. canceled of `c`), so
 * that a list can filter on it. test/console-api.test.ts checks it against `graphState` for random
 * counts.
 */
export const graphStateSql = sql`CASE
  WHEN c.blocked + c.ready + c.running > 0 THEN
    CASE WHEN c.running + c.succeeded + c.failed + c.canceled = 0 THEN 'pending' ELSE 'running' END
  WHEN c.failed > 0 THEN 'failed'
  WHEN c.canceled > 0 THEN 'canceled'
  ELSE 'succeeded' END`

/**
 * Graphs newest first (ids are ULIDs), each with its task counts; the cursor is the last id of the
 * previous page. The counts come from the graph's tasks through the (graph_id, node) index; a state
 * filter skips the graphs in other states, so asking for a rare state walks back through history
 * until it has a page (history.purge keeps that bounded).
 */
export const listGraphs = (f: GraphFilter) =>
  Effect.gen(function*() {
    const db = yield* Db
    const rows = yield* db.rows<{ id: string; label: string | null; created_at: Date; finished: Date | null; state: GraphState } & StateCounts>(sql`
      SELECT g.id, g.label, g.created_at, c.*, ${graphStateSql} AS state
      FROM graphs g CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE t.state = 'blocked')::int AS blocked,
               count(*) FILTER (WHERE t.state = 'ready')::int AS ready,
               count(*) FILTER (WHERE t.state = 'running')::int AS running,
               count(*) FILTER (WHERE t.state = 'succeeded')::int AS succeeded,
               count(*) FILTER (WHERE t.state = 'failed')::int AS failed,
               count(*) FILTER (WHERE t.state = 'canceled')::int AS canceled,
               max(t.finished_at) AS finished
        FROM tasks t WHERE t.graph_id = g.id) c
      WHERE ${f.cursor === undefined ? sql`true` : sql`g.id < ${f.cursor}`}
        AND ${f.state === undefined ? sql`true` : sql`${graphStateSql} = ${f.state}`}
      ORDER BY g.id DESC LIMIT ${f.limit + 1}`)
    const page = rows.slice(0, f.limit).map((r): GraphSummary => {
      const counts: StateCounts = {
        blocked: r.blocked,
        ready: r.ready,
        running: r.running,
        succeeded: r.succeeded,
        failed: r.failed,
        canceled: r.canceled
      }
      const settled = r.state === "succeeded" || r.state === "failed" || r.state === "canceled"
      return {
        id: r.id,
        ...(r.label === null ? {} : { label: r.label }),
        state: r.state,
        created_at: new Date(r.created_at).toISOString(),
        ...(settled && r.finished !== null ? { finished_at: new Date(r.finished).toISOString() } : {}),
        tasks: Object.values(counts).reduce((a, b) => a + b, 0),
        counts
      }
    })
    return { items: page, next_cursor: rows.length > f.limit ? page[page.length - 1]!.id : undefined }
  })

/**
 * A cheap fingerprint of what a graph's view is made of: every column of its own task rows that
 * the view shows or that moves when the task does (state, attempts, worker, progress, and the
 * counts of inputs and keys it still waits for). One indexed scan of the graph's tasks, no joins:
 * long-polls (src/api/handlers/graph-polls.ts) compare it every second and read the whole view
 * only when it moved. It does not see rows of other graphs, so which earlier task a blocked task
 * waits behind on a key can change without it; the view read at the end of the wait shows that.
 * Undefined for a graph that does not exist.
 */
export const graphStamp = (id: string) =>
  Effect.map(
    Effect.flatMap(Db, (db) =>
      db.rows<{ stamp: string | null; n: number }>(sql`
        SELECT count(*)::int AS n, md5(string_agg(concat_ws('|', t.state, t.attempts, t.pending_inputs, t.blocked_keys,
                 t.worker_id, t.cancel_requested, t.progress::text), ',' ORDER BY t.seq)) AS stamp
        FROM tasks t WHERE t.graph_id = ${id}`)),
    (rows) => (rows[0] && rows[0].n > 0 ? rows[0].stamp ?? "" : undefined)
  )
