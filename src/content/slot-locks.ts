/**
 * Optimistic named locks, after Drydock's slot locks: work names the locks it needs and
 * acquires them together with the work, or not at all. There is no waiting on a lock: a conflict
 * is an error that names the holder, and the caller decides (fail, or try another slot later).
 *
 * - `needSlotLocks(tx, names, owner)`: all of `names` or none, in the owner's transaction: one
 *   multi-row INSERT under the primary key. If any name is held, the transaction must roll back
 *   (the error says who holds it).
 * - `slotName(name, i)` = "name.slot(i)": N-way limits are N names; `acquireSlot` takes a free one,
 *   `takeSlots` as many free ones as wanted (up to a count) in one statement.
 * - A lock is released explicitly, when its owner task settles (the content store's settle hook,
 *   src/content/sql/cairn_content_on_settled.sql), or when the worker holding it dies (foreign
 *   key, ON DELETE CASCADE from `workers`).
 */
import { sql } from "drizzle-orm"
import { Data, Effect } from "effect"
import { type DbShape, type Tx, txRows } from "../db/client.js"

export interface SlotOwner {
  readonly task: string
  readonly worker?: string | undefined
}

export class SlotLockConflict extends Data.TaggedError("SlotLockConflict")<{
  readonly name: string
  readonly holder: { readonly task: string; readonly worker: string | null; readonly since: string } | undefined
}> {
  override get message() {
    return this.holder
      ? `slot lock ${this.name} is held by task ${this.holder.task}${this.holder.worker ? ` on worker ${this.holder.worker}` : ""} since ${this.holder.since}`
      : `slot lock ${this.name} is held`
  }
}

export const slotName = (name: string, slot: number) => `${name}.slot(${slot})`

const holderOf = (tx: Tx, name: string) =>
  Effect.map(
    txRows<{ task: string; worker: string | null; since: string }>(
      tx,
      sql`SELECT owner_task AS task, owner_worker AS worker, acquired_at::text AS since FROM slot_locks WHERE name = ${name}`
    ),
    (rows) => rows[0]
  )

/** All of `names`, or a SlotLockConflict (then roll the transaction back: nothing stays held). */
export const needSlotLocks = (tx: Tx, names: ReadonlyArray<string>, owner: SlotOwner) =>
  Effect.gen(function*() {
    const unique = [...new Set(names)]
    if (unique.length === 0) return
    const got = yield* txRows<{ name: string }>(
      tx,
      sql`INSERT INTO slot_locks (name, owner_task, owner_worker)
          SELECT n, ${owner.task}, ${owner.worker ?? null} FROM unnest(${sql.param(unique)}::text[]) AS n
          ON CONFLICT (name) DO NOTHING RETURNING name`
    )
    if (got.length === unique.length) return
    const mine = new Set(got.map((g) => g.name))
    const taken = unique.find((n) => !mine.has(n))!
    return yield* new SlotLockConflict({ name: taken, holder: yield* holderOf(tx, taken) })
  })

/** One free slot of an N-way limit, or undefined when all N are held. Slots are tried in random order. */
export const acquireSlot = (tx: Tx, name: string, n: number, owner: SlotOwner) =>
  Effect.gen(function*() {
    const order = Array.from({ length: n }, (_, i) => i).sort(() => Math.random() - 0.5)
    for (const i of order) {
      const got = yield* txRows<{ name: string }>(
        tx,
        sql`INSERT INTO slot_locks (name, owner_task, owner_worker) VALUES (${slotName(name, i)}, ${owner.task}, ${owner.worker ?? null})
            ON CONFLICT (name) DO NOTHING RETURNING name`
      )
      if (got.length > 0) return got[0]!.name
    }
    return undefined
  })

/**
 * Up to `want` free slots of an N-way limit in one statement (no transaction needed); answers the
 * names taken, maybe none. Slots are tried in random order so that concurrent takers seldom meet
 * on the same name; one held by a transaction still in flight is waited for, then skipped.
 */
export const takeSlots = (db: Pick<DbShape, "rows">, name: string, n: number, want: number, owner: SlotOwner) =>
  Effect.gen(function*() {
    if (want <= 0) return []
    const names = Array.from({ length: n }, (_, i) => slotName(name, i))
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[names[i], names[j]] = [names[j]!, names[i]!]
    }
    const got = yield* db.rows<{ name: string }>(sql`
      INSERT INTO slot_locks (name, owner_task, owner_worker)
      SELECT s, ${owner.task}, ${owner.worker ?? null}
      FROM unnest(${sql.param(names)}::text[]) WITH ORDINALITY AS u(s, o)
      WHERE NOT EXISTS (SELECT 1 FROM slot_locks l WHERE l.name = u.s)
      ORDER BY o
      LIMIT ${want}
      ON CONFLICT (name) DO NOTHING RETURNING name`)
    return got.map((g) => g.name)
  })

export const releaseSlotLocks = (tx: Tx, names: ReadonlyArray<string>, owner: SlotOwner) =>
  Effect.asVoid(txRows(tx, sql`DELETE FROM slot_locks WHERE name = ANY(${sql.param([...names])}::text[]) AND owner_task = ${owner.task}`))
