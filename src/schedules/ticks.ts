/**
 * Claiming a tick: submitting a schedule's graph for tick T exactly once across every process, with
 * no leader. Every scheduler that finds T owed runs the same transaction; what decides is a
 * compare-and-swap on the schedule's one `schedule_state` row, committed with the graph:
 *
 *   1. `names` row of the schedule FOR SHARE: the schedule still exists, its current revision is
 *      enabled, and the revision current at T is the one the tick was computed from. The lock makes
 *      an edit, a disable or a delete wait for the claim (and a claim wait for them): once a PATCH
 *      or DELETE has answered, no tick of the old state can commit any more; and an edit that
 *      commits first is dated after T or seen here (its `created_at` is read after it locked the
 *      row: src/schedules/revisions.ts).
 *   2. `INSERT ... ON CONFLICT (schedule_id) DO UPDATE ... WHERE schedule_state.tick < T`: the
 *      latest claimed tick moves forward to T, or nothing happens. Two claims of T: the second
 *      waits on the first's row lock, then finds tick = T and changes nothing. A claim of an older
 *      tick than one already claimed changes nothing either, so a slow process never submits a
 *      tick after a later one.
 *   3. the graph, written by the engine's own submission call (cairn_submit) in this transaction
 *      (writeGraphIn), labelled "<name> <tick>";
 *   4. the tick's row in `schedule_ticks`, keyed by (schedule, tick), pointing at the graph: the
 *      history that GET /api/v1/schedules/{name}/graphs lists, and a second guard (a second row
 *      for one tick would fail the transaction).
 *
 * So the graph exists if and only if the claim committed; a process killed anywhere in between
 * leaves the tick unclaimed, and whoever looks next submits it.
 *
 * A graph that is refused at the tick (a named resource it uses was deleted since the schedule was
 * written, say) claims the tick all the same, with the refusal recorded as the tick's `error`:
 * trying again at the same tick would be refused again, so the schedule moves on to its next tick.
 *
 * Lock order: a claim locks the schedule's `names` row and state row before the submission takes
 * its resource keys. Nothing that holds resource keys ever waits for a schedule's rows (only schedule
 * edits and claims lock them, and edits take no keys), so this order cannot deadlock (DESIGN.md §4,
 * "Lock order").
 */
import { sql } from "drizzle-orm"
import { Effect, Either } from "effect"
import { Db, type DbError, type Tx, txRows } from "../db/client.js"
import type { InvalidRequest } from "../engine/errors.js"
import { prepareGraph, type PreparedGraph } from "../engine/submit.js"
import { writeGraphIn } from "../engine/submit/write.js"
import { formatTick } from "./cron.js"
import type { ScheduleFields } from "./revisions.js"

export type Claim =
  | { readonly _tag: "Submitted"; readonly graph: string }
  | { readonly _tag: "Refused"; readonly error: InvalidRequest }
  /** Someone claimed this tick, or a later one, first. */
  | { readonly _tag: "Taken" }
  /** The schedule changed since the tick was computed (edited, disabled, deleted): compute again. */
  | { readonly _tag: "Stale" }

export interface TickToClaim {
  readonly schedule: string
  readonly name: string
  readonly tick: number
  /** The revision current at the tick. */
  readonly revision: string
}

/** The graph label of a tick: `<schedule name> <tick, RFC 3339 UTC>`. */
export const tickLabel = (name: string, tick: number) => `${name} ${formatTick(tick)}`

/** Step 1: true if the tick may still be claimed with this revision (row locked until commit). */
const stillOwed = (tx: Tx, t: TickToClaim) =>
  Effect.map(
    txRows<{ enabled: boolean; owner: string | null }>(tx, sql`
      SELECT r.enabled,
             (SELECT o.id FROM schedule_revisions o
              WHERE o.schedule_id = n.resource_id AND o.created_at < ${new Date(t.tick).toISOString()}::timestamptz
              ORDER BY o.created_at DESC LIMIT 1) AS owner
      FROM names n JOIN schedule_revisions r ON r.id = n.revision_id
      WHERE n.kind = 'schedule' AND n.resource_id = ${t.schedule}
      FOR SHARE OF n`),
    ([row]) => row !== undefined && row.enabled && row.owner === t.revision
  )

/** Step 2: true if this transaction moved the schedule's latest tick forward to `tick`. */
const advance = (tx: Tx, t: TickToClaim) =>
  Effect.map(
    txRows(tx, sql`
      INSERT INTO schedule_state (schedule_id, tick) VALUES (${t.schedule}, ${new Date(t.tick).toISOString()}::timestamptz)
      ON CONFLICT (schedule_id) DO UPDATE SET tick = EXCLUDED.tick WHERE schedule_state.tick < EXCLUDED.tick
      RETURNING 1`),
    (rows) => rows.length === 1
  )

/** Step 4: the tick's outcome, under its own key (schedule, tick): a second tick row would fail the claim. */
const record = (tx: Tx, t: TickToClaim, outcome: { readonly graph: string } | { readonly error: InvalidRequest }) =>
  txRows(tx, sql`
    INSERT INTO schedule_ticks (schedule_id, tick, graph_id, error)
    VALUES (${t.schedule}, ${new Date(t.tick).toISOString()}::timestamptz,
            ${"graph" in outcome ? outcome.graph : null},
            ${"error" in outcome ? JSON.stringify({ code: "bad_request", message: outcome.error.message, details: outcome.error.details }) : null}::jsonb)`)

/**
 * Steps 1-3 in one transaction; `graph` is the prepared graph, or why it was refused. (The engine's
 * writing steps may refuse a graph too, with InvalidRequest, when the database's own checks do.)
 */
const claimWith = (t: TickToClaim, graph: Either.Either<PreparedGraph, InvalidRequest>): Effect.Effect<Claim, InvalidRequest | DbError, Db> =>
  Effect.flatMap(Db, (db) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        if (!(yield* stillOwed(tx, t))) return { _tag: "Stale" } as Claim
        if (!(yield* advance(tx, t))) return { _tag: "Taken" } as Claim
        if (Either.isLeft(graph)) {
          yield* record(tx, t, { error: graph.left })
          return { _tag: "Refused", error: graph.left } as Claim
        }
        const p = graph.right
        yield* writeGraphIn(tx, p.graph, p.plan)
        yield* record(tx, t, { graph: p.graph.id })
        return { _tag: "Submitted", graph: p.graph.id } as Claim
      })
    ))

/**
 * Claims tick `t` of a schedule whose revision `t.revision` has `fields`: submits its graph, or
 * records why it was refused, or finds the tick taken or the schedule changed.
 */
export const claimTick = (t: TickToClaim, fields: Pick<ScheduleFields, "graph">) =>
  Effect.gen(function*() {
    // Validated and planned before the transaction, as POST /graphs does: named resources resolve
    // to their revisions current now, at the tick.
    const prepared = yield* Effect.either(prepareGraph({ ...fields.graph, label: tickLabel(t.name, t.tick) }))
    if (Either.isLeft(prepared) && prepared.left._tag !== "InvalidRequest") return yield* prepared.left
    const graph = prepared as Either.Either<PreparedGraph, InvalidRequest>
    return yield* claimWith(t, graph).pipe(
      Effect.catchTag("InvalidRequest", (error) => claimWith(t, Either.left(error)))
    )
  })
