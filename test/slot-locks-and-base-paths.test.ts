/**
 * Seed 004's race test, automated: two concurrent allocations of the same binding with the window
 * between "look" and "allocate" held open until both have looked. Without a slot lock both allocate; with it,
 * exactly one wins and the other learns who holds it. And the base-path overlap rule under racing
 * creates and updates from several connections.
 */
import { sql } from "drizzle-orm"
import { Deferred, Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { createNamed, deleteNamed, updateNamed } from "../src/content/named.js"
import { acquireSlot, needSlotLocks, SlotLockConflict, takeSlots } from "../src/content/slot-locks.js"
import { Db, txRows } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { createTestDatabase, engineLayer } from "./support/db.js"

let url: string
beforeAll(async () => {
  url = await createTestDatabase()
})
const run = <A, E>(eff: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(eff).pipe(Effect.provide(engineLayer(url))) as Effect.Effect<A, E, never>)

/**
 * Waits until `n` fibers have called it. The race window, opened for certain: a delay instead
 * could end before a slow machine had started the other allocation, which would then see the
 * first one's row and never race it.
 */
const barrier = (n: number) =>
  Effect.map(Deferred.make<void>(), (all) => {
    let arrived = 0
    return Effect.suspend(() => (++arrived === n ? Deferred.succeed(all, undefined) : Effect.void)).pipe(Effect.zipRight(Deferred.await(all)))
  })

/** Drydock's allocateResource(): load the free bindings, (wait for the other one to look too), allocate. */
const allocate = (binding: string, owner: string, withLock: boolean, bothLooked: Effect.Effect<void>) =>
  Effect.flatMap(Db, (db) =>
    db.transaction((tx) =>
      Effect.gen(function*() {
        const taken = yield* txRows<{ n: number }>(tx, sql`SELECT count(*)::int AS n FROM test_bindings WHERE binding = ${binding}`)
        if (taken[0]!.n > 0) return "already taken" as const
        yield* bothLooked
        if (withLock) yield* needSlotLocks(tx, [`binding(${binding})`], { task: owner })
        yield* txRows(tx, sql`INSERT INTO test_bindings (binding, owner) VALUES (${binding}, ${owner})`)
        return "allocated" as const
      })
    )
  )

describe("slot locks", () => {
  it("without the lock two racing allocations double-allocate; with it exactly one wins", async () => {
    const result = await run(Effect.gen(function*() {
      const db = yield* Db
      yield* db.rows(sql`CREATE TABLE test_bindings (binding text NOT NULL, owner text NOT NULL)`)
      const g = yield* submitGraph({ nodes: { a: { task: "debug.sleep" }, b: { task: "debug.sleep" } } })
      const [a, b] = [g.nodes.a!.task, g.nodes.b!.task]
      const race = (binding: string, withLock: boolean) =>
        Effect.flatMap(barrier(2), (bothLooked) =>
          Effect.all([Effect.either(allocate(binding, a, withLock, bothLooked)), Effect.either(allocate(binding, b, withLock, bothLooked))], { concurrency: 2 }))
      const unlocked = yield* race("host-1", false)
      const locked = yield* race("host-2", true)
      const rows = yield* db.rows<{ binding: string; n: number }>(sql`SELECT binding, count(*)::int AS n FROM test_bindings GROUP BY binding`)
      return { unlocked, locked, rows: Object.fromEntries(rows.map((r) => [r.binding, r.n])), a, b }
    }))
    // The race is real: without the lock both saw the binding free and both allocated it.
    expect(result.rows["host-1"]).toBe(2)
    // With the lock: one allocation, one conflict that names the holder.
    expect(result.rows["host-2"]).toBe(1)
    const failures = result.locked.filter((r) => r._tag === "Left").map((r) => r.left)
    expect(failures).toHaveLength(1)
    const conflict = failures[0] as SlotLockConflict
    expect(conflict).toBeInstanceOf(SlotLockConflict)
    expect(conflict.name).toBe("binding(host-2)")
    expect([result.a, result.b]).toContain(conflict.holder?.task)
  })

  it("N-way limits: N slots can be held at once, the N+1th cannot; settling the owner releases them", async () => {
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      const g = yield* submitGraph({ nodes: { o: { task: "debug.sleep", params: { ms: 10 } } } })
      const owner = { task: g.nodes.o!.task }
      const got = []
      for (let i = 0; i < 4; i++) got.push(yield* db.transaction((tx) => acquireSlot(tx, "host(example.org)", 3, owner)))
      const held = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM slot_locks WHERE owner_task = ${owner.task}`)
      yield* db.rows(sql`SELECT cairn_settle_failed(ARRAY[${owner.task}], 'canceled', 'canceled', 'test')`)
      const after = yield* db.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM slot_locks WHERE owner_task = ${owner.task}`)
      return { got, held: held[0]!.n, after: after[0]!.n }
    }))
    expect(out.got.slice(0, 3).every((n) => typeof n === "string")).toBe(true)
    expect(new Set(out.got.slice(0, 3)).size).toBe(3)
    expect(out.got[3]).toBeUndefined()
    expect(out.held).toBe(3)
    expect(out.after).toBe(0)
  })
})

describe("taking several slots at once", () => {
  it("takes only free slots, never more than asked nor more than N across owners", async () => {
    const out = await run(Effect.gen(function*() {
      const db = yield* Db
      const g = yield* submitGraph({ nodes: { a: { task: "debug.sleep", params: { ms: 10 } }, b: { task: "debug.sleep", params: { ms: 10 } } } })
      const a = { task: g.nodes.a!.task }
      const b = { task: g.nodes.b!.task }
      const first = yield* takeSlots(db, "host(several.example)", 4, 3, a)
      const second = yield* takeSlots(db, "host(several.example)", 4, 3, b)
      const third = yield* takeSlots(db, "host(several.example)", 4, 3, b)
      yield* db.rows(sql`SELECT cairn_settle_failed(ARRAY[${a.task}], 'canceled', 'canceled', 'test')`)
      const afterSettle = yield* takeSlots(db, "host(several.example)", 4, 3, b)
      return { first, second, third, afterSettle }
    }))
    expect(out.first).toHaveLength(3)
    expect(out.second).toHaveLength(1)
    expect(out.first).not.toContain(out.second[0])
    expect(out.third).toEqual([])
    // The settled owner's slots are free again; b holds all four now.
    expect(out.afterSettle).toHaveLength(3)
    expect(new Set([...out.second, ...out.afterSettle]).size).toBe(4)
  })
})

describe("base paths", () => {
  it("racing creates and updates of overlapping base paths never leave an overlap", async () => {
    const overlaps = await run(Effect.gen(function*() {
      const db = yield* Db
      let found = 0
      for (let round = 0; round < 25; round++) {
        const names = [`x${round}`, `y${round}`, `z${round}`, `w${round}`]
        const attempts = [
          createNamed("distribution", names[0]!, { base_path: `r${round}/a` }),
          createNamed("distribution", names[1]!, { base_path: `r${round}/a/b` }),
          createNamed("distribution", names[2]!, { base_path: `r${round}/c` }),
          createNamed("distribution", names[3]!, { base_path: `r${round}/a/b/c` }),
          // Updates into each other's space (they may find the name missing yet: that is fine).
          updateNamed("distribution", names[2]!, { base_path: `r${round}/a` }, undefined),
          updateNamed("distribution", names[0]!, { base_path: `r${round}/c/d` }, undefined)
        ]
        const results = yield* Effect.all(attempts.map((a) => Effect.either(a)), { concurrency: "unbounded" })
        for (const r of results) {
          if (r._tag === "Left") expect(["Conflict", "NotFound"]).toContain((r.left as { _tag: string })._tag)
        }
        const [row] = yield* db.rows<{ n: number }>(sql`
          SELECT count(*)::int AS n FROM distribution_paths p JOIN distribution_paths q ON p.distribution_id < q.distribution_id
          WHERE p.base_path = q.base_path OR q.base_path LIKE p.base_path || '/%' OR p.base_path LIKE q.base_path || '/%'`)
        found += row!.n
        for (const n of names) yield* Effect.either(deleteNamed("distribution", n))
      }
      return found
    }))
    expect(overlaps).toBe(0)
  })
})
