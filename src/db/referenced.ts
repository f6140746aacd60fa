/**
 * The safety net of every deleter (orphan cleanup, reclaiming released things, history purge): the
 * database refuses to delete a row that something still holds, with SQLSTATE 23503 — a foreign key,
 * or a guard trigger that raises the same code (DESIGN.md §19) — or 23001, a foreign key declared
 * ON DELETE RESTRICT (those to content units and artifacts, src/db/content-schema.ts). A deleter's candidate query leaves
 * out what it can see is held; what it cannot see yet (a hold committed after the query's snapshot)
 * makes the DELETE fail, and the batch is redone by halves, down to the single rows held now, which
 * are kept. A few rows held meanwhile in a batch of a thousand cost a few dozen statements.
 */
import { sql } from "drizzle-orm"
import { Effect, Option } from "effect"
import { type DbError, type Tx, txRows } from "./client.js"

/** SQLSTATE foreign_key_violation: something references (holds) the row now. */
export const FK_VIOLATION = "23503"
/** SQLSTATE restrict_violation: the same, from a foreign key declared ON DELETE RESTRICT. */
export const RESTRICT_VIOLATION = "23001"

const held = (code: string | undefined) => code === FK_VIOLATION || code === RESTRICT_VIOLATION

/** `body` inside a savepoint; None (and rolled back) if it was refused as still referenced. */
export const unlessReferenced = <A>(tx: Tx, body: Effect.Effect<A, DbError>): Effect.Effect<Option.Option<A>, DbError> =>
  Effect.gen(function*() {
    yield* txRows(tx, sql`SAVEPOINT unless_referenced`)
    const out = yield* Effect.either(body)
    if (out._tag === "Right") {
      yield* txRows(tx, sql`RELEASE SAVEPOINT unless_referenced`)
      return Option.some(out.right)
    }
    if (!held(out.left.code)) return yield* Effect.fail(out.left)
    yield* txRows(tx, sql`ROLLBACK TO SAVEPOINT unless_referenced`)
    return Option.none()
  })

/**
 * Delete `candidates` with `del` (which returns what it deleted): all at once, or, if that is
 * refused, each half the same way, down to single rows, which are kept.
 */
export const deleteUnlessReferenced = <A, C = string>(
  tx: Tx,
  candidates: ReadonlyArray<C>,
  del: (batch: ReadonlyArray<C>) => Effect.Effect<ReadonlyArray<A>, DbError>
): Effect.Effect<ReadonlyArray<A>, DbError> =>
  Effect.gen(function*() {
    if (candidates.length === 0) return []
    const all = yield* unlessReferenced(tx, del(candidates))
    if (Option.isSome(all)) return all.value
    if (candidates.length === 1) return []
    const half = Math.ceil(candidates.length / 2)
    const first = yield* deleteUnlessReferenced(tx, candidates.slice(0, half), del)
    const second = yield* deleteUnlessReferenced(tx, candidates.slice(half), del)
    return [...first, ...second]
  })

/** What a deleter's batch looked at: fewer than the batch size means it was the last page. */
export interface Page {
  readonly seen: number
  /** The last candidate's key: where the next page starts. */
  readonly last: string
}

/**
 * Run `batch` page after page (keyset: each page starts after the last key of the one before, from
 * `start`) until a page comes back short. Each page is its own short transaction, so a run of any
 * length never holds its locks for long.
 */
export const pages = <P extends Page, E, R>(
  limit: number,
  batch: (after: string) => Effect.Effect<P, E, R>,
  onPage: (p: P) => Effect.Effect<void>,
  start = ""
) =>
  Effect.gen(function*() {
    let after = start
    for (;;) {
      const page = yield* batch(after)
      yield* onPage(page)
      if (page.seen < limit) return
      after = page.last
    }
  })
