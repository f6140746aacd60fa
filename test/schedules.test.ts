/**
 * Schedules against a real PostgreSQL, in this process: scheduler instances each on their own
 * runtime (their own pool and session connection, as separate processes have), all reading one
 * clock that the test moves (test/support/clock.ts), so no test waits for a real minute.
 *
 * Barriers, never sleeps: after the clock moves to t, every running scheduler has either completed a
 * pass at t or is asleep past t having seen every change; after a change, every running scheduler
 * has completed a pass that started after the change was announced to it (Session.sync first).
 *
 * The property test drives random scenarios (clock moves of various sizes, edits of the cron
 * expression, the graph and `enabled`, deletes and re-creates, schedulers started and stopped, some
 * stopped while they may be claiming a tick, all of them stopped across an edit) and checks the graphs in the database against the
 * model of test/support/schedule-model.ts: every tick the model says is owed is submitted exactly
 * once, with the graph of the revision current at that tick, and nothing else is.
 */
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Scope, Stream } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Db } from "../src/db/client.js"
import type { TaskKinds } from "../src/engine/kind.js"
import { Session } from "../src/engine/session.js"
import { SchedulerClock } from "../src/schedules/clock.js"
import { makeScheduler, type SchedulerStatus } from "../src/schedules/scheduler.js"
import {
  createSchedule,
  deleteSchedule,
  getSchedule,
  scheduleTicks,
  type ScheduleCreate,
  type SchedulePatch,
  type ScheduleView,
  updateSchedule
} from "../src/schedules/store.js"
import { createNamed, deleteNamed } from "../src/content/named.js"
import { type ManualClock, manualClock } from "./support/clock.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { MINUTE, minuteFields, type ModelRevision, modelDue, modelLabel, modelTick } from "./support/schedule-model.js"

let url: string
let admin: pg.Client
let dataDir: string
/** Stand-ins for processes: each has its own pool and session. The first also serves the "API" calls. */
const processes: Array<ManagedRuntime.ManagedRuntime<Db | Session | TaskKinds, unknown>> = []

beforeAll(async () => {
  url = await createTestDatabase()
  admin = new pg.Client({ connectionString: url })
  await admin.connect()
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-schedules-"))
  // Warnings and errors only: every submission logs a line at info.
  const quiet = Logger.minimumLogLevel(LogLevel.Warning)
  for (let i = 0; i < 4; i++) {
    processes.push(ManagedRuntime.make(Layer.merge(engineLayer(url, { dataDir }) as Layer.Layer<Db | Session | TaskKinds>, quiet)))
  }
})

afterAll(async () => {
  for (const p of processes) await p.dispose()
  await admin?.end()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

/** The clock every test uses, always moving forward (runs of the property test follow each other). */
const clock: ManualClock = manualClock(Date.parse("2031-01-01T00:00:00Z"))

/** Runs a schedules operation as the API would, at the test clock's time. */
const api = <A, E>(eff: Effect.Effect<A, E, Db | TaskKinds>) =>
  processes[0]!.runPromise(eff.pipe(Effect.provideService(SchedulerClock, clock.clock)))

const graphMarked = (marker: string) => ({ nodes: { mark: { task: "debug.sleep", params: { value: marker } } } })

interface Instance {
  readonly process: number
  readonly status: { readonly get: Effect.Effect<SchedulerStatus>; readonly changes: Stream.Stream<SchedulerStatus> }
  readonly changesAnnounced: () => number
  readonly stop: () => Promise<void>
}

const startScheduler = async (process: number): Promise<Instance> => {
  const scope = Effect.runSync(Scope.make())
  const handle = await processes[process]!.runPromise(
    Scope.extend(makeScheduler.pipe(Effect.provideService(SchedulerClock, clock.clock)), scope)
  )
  return { process, ...handle, stop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const statusWhere = (i: Instance, ok: (s: SchedulerStatus) => boolean, what: string) =>
  Effect.runPromise(
    i.status.changes.pipe(
      Stream.filter(ok),
      Stream.runHead,
      Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error(`scheduler on process ${i.process}: timed out waiting until ${what}`) })
    )
  )

/** Every instance has acted on the clock's current time. */
const settledAt = (instances: Iterable<Instance>) =>
  Promise.all([...instances].map((i) => {
    const t = clock.now()
    return statusWhere(
      i,
      (s) =>
        s.settled &&
        ((s.checkedAt !== undefined && s.checkedAt >= t) ||
          (s.wakeAt !== undefined && s.wakeAt > t && s.changesSeen >= i.changesAnnounced())),
      `it checked ${new Date(t).toISOString()}`
    )
  }))

/** Every instance has completed a pass that started after every change committed so far. */
const sawChanges = (instances: Iterable<Instance>) =>
  Promise.all([...instances].map(async (i) => {
    await processes[i.process]!.runPromise(Effect.flatMap(Session, (s) => s.sync))
    const announced = i.changesAnnounced()
    await statusWhere(i, (s) => s.changesSeen >= announced, `it saw change ${announced}`)
  }))

/** The graphs submitted for schedule `name`: label and the marker of the revision whose graph it was. */
const submitted = async (name: string) =>
  (await admin.query<{ label: string; marker: string }>(
    `SELECT g.label, t.params->>'value' AS marker FROM graphs g JOIN tasks t ON t.graph_id = g.id
     WHERE g.label LIKE $1 ORDER BY g.label, t.params->>'value'`,
    [`${name} %`]
  )).rows.map((r) => `${r.label} <- ${r.marker}`)

const view = (v: ScheduleView) => ({ createdAt: Date.parse(v.created_at), revision: v.revision })

describe("schedules (in-process schedulers on separate connections, one test clock)", () => {
  it("submits only the latest of the ticks missed while no scheduler ran, once, when several start together", async () => {
    clock.advance(3600_000)
    await api(createSchedule({ name: "missed", cron: "* * * * *", graph: graphMarked("missed#0") }))
    const created = clock.now()
    clock.advance(5 * MINUTE + 15_000)
    const instances = await Promise.all([0, 1, 2, 3].map(startScheduler))
    await settledAt(instances)
    const latest = Math.floor(clock.now() / MINUTE) * MINUTE
    expect(await submitted("missed")).toEqual([`${modelLabel("missed", latest)} <- missed#0`])
    expect(latest - created).toBeGreaterThan(4 * MINUTE)
    const v = await api(getSchedule("missed"))
    expect(v.last_tick).toBe(modelTick(latest))
    expect(v.last_graph).toMatch(/^[0-9A-Z]{26}$/)
    expect(v.next_run).toBe(modelTick(latest + MINUTE))
    expect(await api(scheduleTicks("missed"))).toEqual([{ tick: modelTick(latest), graph: v.last_graph, error: null }])
    const states = (await Promise.all(instances.map((i) => Effect.runPromise(i.status.get)))).map((s) => s.submitted)
    expect(states.reduce((a, b) => a + b)).toBe(1)
    await Promise.all(instances.map((i) => i.stop()))
    await api(deleteSchedule("missed"))
  })

  it("an edit takes effect at the next tick; disabling and deleting stop submissions at once", async () => {
    clock.set(Math.ceil(clock.now() / 3600_000) * 3600_000 + 3600_000 + 10_000) // hh:00:10
    const instances = await Promise.all([0, 1, 2].map(startScheduler))
    const hour = clock.now() - 10_000
    await api(createSchedule({ name: "edited", cron: "*/2 * * * *", graph: graphMarked("edited#0") }))
    await sawChanges(instances)
    clock.set(hour + 2 * MINUTE)
    await settledAt(instances)
    clock.set(hour + 3 * MINUTE + 30_000)
    await api(updateSchedule("edited", { cron: "* * * * *", graph: graphMarked("edited#1") }, undefined))
    await sawChanges(instances)
    clock.set(hour + 4 * MINUTE)
    await settledAt(instances)
    await api(updateSchedule("edited", { enabled: false }, undefined))
    await sawChanges(instances)
    clock.set(hour + 6 * MINUTE)
    await settledAt(instances)
    expect((await api(getSchedule("edited"))).next_run).toBeNull()
    await api(updateSchedule("edited", { enabled: true, graph: graphMarked("edited#3") }, undefined))
    await sawChanges(instances)
    clock.set(hour + 7 * MINUTE)
    await settledAt(instances)
    await api(deleteSchedule("edited"))
    await sawChanges(instances)
    clock.set(hour + 9 * MINUTE)
    await settledAt(instances)
    expect(await submitted("edited")).toEqual([
      `${modelLabel("edited", hour + 2 * MINUTE)} <- edited#0`,
      `${modelLabel("edited", hour + 4 * MINUTE)} <- edited#1`,
      `${modelLabel("edited", hour + 7 * MINUTE)} <- edited#3`
    ])
    await Promise.all(instances.map((i) => i.stop()))
  })

  it("edits at one instant of the clock are dated one after the other; the next tick submits the last", async () => {
    clock.set(Math.ceil(clock.now() / 3600_000) * 3600_000 + 3600_000 + 10_000) // hh:00:10
    const hour = clock.now() - 10_000
    const instances = [await startScheduler(0), await startScheduler(1)]
    const first = await api(createSchedule({ name: "same-instant", cron: "* * * * *", graph: graphMarked("same-instant#0") }))
    const dates = [Date.parse(first.created_at)]
    for (let i = 1; i <= 4; i++) {
      dates.push(Date.parse((await api(updateSchedule("same-instant", { graph: graphMarked(`same-instant#${i}`) }, undefined))).created_at))
    }
    expect(dates).toEqual([0, 1, 2, 3, 4].map((i) => hour + 10_000 + i))
    await sawChanges(instances)
    clock.set(hour + MINUTE)
    await settledAt(instances)
    expect(await submitted("same-instant")).toEqual([`${modelLabel("same-instant", hour + MINUTE)} <- same-instant#4`])
    await Promise.all(instances.map((i) => i.stop()))
    await api(deleteSchedule("same-instant"))
  })

  it("a tick missed before an edit is submitted with the graph of the revision current at that tick", async () => {
    clock.set(Math.ceil(clock.now() / 3600_000) * 3600_000 + 3600_000 + 10_000) // hh:00:10, nobody running
    const hour = clock.now() - 10_000
    await api(createSchedule({ name: "before-edit", cron: "*/5 * * * *", graph: graphMarked("before-edit#0") }))
    clock.set(hour + 5 * MINUTE + 20_000)
    // Edited after the 00:05 tick, before any scheduler ran: 00:05 still belongs to the first revision.
    await api(updateSchedule("before-edit", { graph: graphMarked("before-edit#1") }, undefined))
    clock.set(hour + 6 * MINUTE)
    const instances = [await startScheduler(2), await startScheduler(3)]
    await settledAt(instances)
    clock.set(hour + 10 * MINUTE)
    await settledAt(instances)
    expect(await submitted("before-edit")).toEqual([
      `${modelLabel("before-edit", hour + 5 * MINUTE)} <- before-edit#0`,
      `${modelLabel("before-edit", hour + 10 * MINUTE)} <- before-edit#1`
    ])
    await Promise.all(instances.map((i) => i.stop()))
    await api(deleteSchedule("before-edit"))
  })

  it("a tick whose graph is refused at the tick is claimed with the refusal, and the next tick submits again", async () => {
    clock.advance(3600_000)
    await api(createNamed("repository", "sched-repo", {}))
    const instances = [await startScheduler(0), await startScheduler(1)]
    const graph = { nodes: { m: { task: "repository.modify", params: { repository: "sched-repo", remove: "*" } } } }
    await api(createSchedule({ name: "refused", cron: "* * * * *", graph }))
    await api(deleteNamed("repository", "sched-repo"))
    await sawChanges(instances)
    const first = Math.floor(clock.now() / MINUTE) * MINUTE + MINUTE
    clock.set(first)
    await settledAt(instances)
    const v = await api(getSchedule("refused"))
    expect(v.last_tick).toBe(modelTick(first))
    expect(v.last_graph).toBeNull()
    expect(v.last_error?.code).toBe("bad_request")
    expect(JSON.stringify(v.last_error)).toContain("sched-repo")
    expect(await submitted("refused")).toEqual([])
    await api(createNamed("repository", "sched-repo", {}))
    clock.set(first + MINUTE)
    await settledAt(instances)
    const after = await api(getSchedule("refused"))
    expect(after.last_error).toBeNull()
    expect(after.last_graph).toMatch(/^[0-9A-Z]{26}$/)
    expect((await submitted("refused")).length).toBe(1)
    const ticks = await api(scheduleTicks("refused"))
    expect(ticks.map((t) => [t.tick, t.graph, t.error?.code])).toEqual([
      [modelTick(first + MINUTE), after.last_graph, undefined],
      [modelTick(first), null, "bad_request"]
    ])
    expect(await api(scheduleTicks("refused", { limit: 1, before: ticks[0]!.tick }))).toEqual([ticks[1]])
    await Promise.all(instances.map((i) => i.stop()))
    await api(deleteSchedule("refused"))
  })

  it("next_run follows the schedule's time zone across a daylight-saving change", async () => {
    // A separate clock: this one is set to a fixed day (the shared clock only moves forward).
    const march = manualClock(Date.parse("2026-03-07T12:00:00Z"))
    const at = <A, E>(eff: Effect.Effect<A, E, Db | TaskKinds>) =>
      processes[0]!.runPromise(eff.pipe(Effect.provideService(SchedulerClock, march.clock)))
    const body: ScheduleCreate = { name: "dst", cron: "30 2 * * *", timezone: "America/New_York", graph: graphMarked("dst") }
    const created = await at(createSchedule(body))
    expect(created.timezone).toBe("America/New_York")
    // 8 March 2026, 02:30 does not exist in New York: the tick is at 03:00 EDT.
    expect(created.next_run).toBe("2026-03-08T07:00:00Z")
    march.set(Date.parse("2026-03-08T07:00:00Z"))
    expect((await at(getSchedule("dst"))).next_run).toBe("2026-03-09T06:30:00Z") // 02:30 EDT
    const utc = await at(updateSchedule("dst", { timezone: "UTC" }, undefined))
    expect(utc.next_run).toBe("2026-03-09T02:30:00Z")
    await at(deleteSchedule("dst"))
  })

  it("refuses to change or delete a schedule revision in the database", async () => {
    const v = await api(createSchedule({ name: "guarded", cron: "0 0 * * *", graph: graphMarked("g") }))
    for (const [statement, word] of [
      [`UPDATE schedule_revisions SET enabled = false WHERE id = $1`, "changed"],
      [`DELETE FROM schedule_revisions WHERE id = $1`, "deleted"]
    ] as const) {
      const err = await admin.query(statement, [v.revision]).then(() => undefined, (e: { code: string; message: string }) => e)
      expect({ code: err?.code, message: err?.message }).toEqual({ code: "CA001", message: `schedule_revisions rows are never ${word}` })
    }
    await api(deleteSchedule("guarded"))
  })
})

// ---- the property ----------------------------------------------------------------------------------

type Step =
  | { readonly t: "advance"; readonly ms: number }
  | { readonly t: "edit"; readonly field: string | null; readonly enabled: boolean | null }
  | { readonly t: "delete" }
  | { readonly t: "create"; readonly field: string }
  | { readonly t: "start"; readonly process: number }
  | { readonly t: "stop"; readonly process: number }
  | { readonly t: "stopAll" }
  /** Move the clock and stop a scheduler at once, while it may be claiming (only if another runs). */
  | { readonly t: "advanceAndStop"; readonly ms: number; readonly process: number }
  /**
   * Every scheduler stops, the clock moves, the schedule is edited, the clock moves again, and
   * they start again: the tick owed then may belong to the revision before the edit.
   */
  | { readonly t: "downtime"; readonly before: number; readonly field: string; readonly after: number }

/** Dense expressions mostly, so that runs tick often; sparse ones reach back across revisions. */
const fieldArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant("*") },
  { weight: 3, arbitrary: fc.constant("*/2") },
  { weight: 2, arbitrary: fc.constantFrom(...minuteFields) }
)
const advanceBy = fc.constantFrom(15_000, 30_000, MINUTE, MINUTE + 1_000, 90_000, 150_000, 7 * MINUTE + 5_000)
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: advanceBy.map((ms) => ({ t: "advance" as const, ms })) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("edit" as const),
      field: fc.option(fieldArb),
      enabled: fc.constantFrom(null, null, true, true, false)
    })
  },
  { weight: 1, arbitrary: fc.constant({ t: "delete" as const }) },
  { weight: 1, arbitrary: fieldArb.map((field) => ({ t: "create" as const, field })) },
  { weight: 2, arbitrary: fc.nat(3).map((process) => ({ t: "start" as const, process })) },
  { weight: 1, arbitrary: fc.nat(3).map((process) => ({ t: "stop" as const, process })) },
  { weight: 1, arbitrary: fc.constant({ t: "stopAll" as const }) },
  { weight: 2, arbitrary: fc.tuple(advanceBy, fc.nat(3)).map(([ms, process]) => ({ t: "advanceAndStop" as const, ms, process })) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("downtime" as const), before: advanceBy, field: fc.constantFrom(...minuteFields), after: advanceBy })
  }
)

/**
 * Scenarios run before the random ones (fast-check's `examples`), built to reach what the counters
 * below ask for, which 20 random runs may all miss, wherever the clock stands in its minute. The
 * property starts schedulers 0 and 1 first; every revision here is `* * * * *`, which owes every minute.
 */
const reaching: ReadonlyArray<[string, ReadonlyArray<Step>]> = [
  // Four schedulers racing: every move of the clock by a minute or more owes a tick.
  ["*", [
    { t: "start", process: 2 },
    { t: "start", process: 3 },
    ...Array.from({ length: 41 }, (_, i) => ({ t: "advance" as const, ms: [MINUTE, MINUTE + 1_000, 90_000, 150_000][i % 4]! }))
  ]],
  // Any minute of the clock holds a tick: the scheduler stopped may be claiming the tick owed.
  ["*", [{ t: "advanceAndStop", ms: MINUTE, process: 1 }]],
  // Each downtime's minute before the edit holds a tick of the older revision; the 15 s after the
  // edit hold a tick of the newer one only when the edit came in the last 15 s of a minute, and the
  // second edit comes 75 s after the first, so at most one of the two does: at least one downtime
  // owes the tick before its edit, to the older revision.
  ["*", [{ t: "downtime", before: MINUTE, field: "*", after: 15_000 }, { t: "downtime", before: MINUTE, field: "*", after: 15_000 }]]
]

let runs = 0
/**
 * What the runs exercised, so that a test that stopped reaching them fails (a model that owes
 * nothing would pass vacuously). `reaching` reaches each of them by construction.
 */
const seen = { ticks: 0, olderRevision: 0, stoppedAtTick: 0, racing: 0 }

const runScenario = async (firstField: string, steps: ReadonlyArray<Step>) => {
  const name = `prop${runs++}`
  clock.advance(3600_000)
  const running = new Map<number, Instance>()
  // The model: the live schedule's revisions, its latest tick, and every graph expected.
  let revisions: Array<ModelRevision & { marker: string }> = []
  let lastTick: number | undefined
  let markers = 0
  const expected: Array<string> = []
  const owe = () => {
    if (running.size === 0 || revisions.length === 0) return
    const due = modelDue(revisions, lastTick, clock.now())
    if (due === undefined) return
    lastTick = due.tick
    seen.ticks += 1
    if (due.revision !== revisions[revisions.length - 1]!.id) seen.olderRevision += 1
    if (running.size > 1) seen.racing += 1
    expected.push(`${modelLabel(name, due.tick)} <- ${revisions.find((r) => r.id === due.revision)!.marker}`)
  }
  const record = (v: ScheduleView, field: string, enabled: boolean, marker: string) =>
    revisions.push({ id: v.revision, createdAt: view(v).createdAt, field, enabled, marker })
  const create = async (field: string) => {
    const marker = `${name}#${markers++}`
    const v = await api(createSchedule({ name, cron: `${field} * * * *`, graph: graphMarked(marker) }))
    revisions = []
    lastTick = undefined
    record(v, field, true, marker)
  }

  const edit = async (newField: string | null, newEnabled: boolean | null) => {
    const current = revisions[revisions.length - 1]!
    const field = newField ?? current.field
    const enabled = newEnabled ?? current.enabled
    const marker = `${name}#${markers++}`
    const patch: SchedulePatch = {
      graph: graphMarked(marker),
      ...(newField === null ? {} : { cron: `${field} * * * *` }),
      ...(newEnabled === null ? {} : { enabled })
    }
    record(await api(updateSchedule(name, patch, current.id)), field, enabled, marker)
  }

  await create(firstField)
  for (const step of steps) {
    switch (step.t) {
      case "advance":
        clock.advance(step.ms)
        await settledAt(running.values())
        break
      case "advanceAndStop": {
        const victim = running.get(step.process)
        if (victim === undefined || running.size < 2) {
          clock.advance(step.ms)
          await settledAt(running.values())
          break
        }
        clock.advance(step.ms)
        running.delete(step.process)
        if (modelDue(revisions, lastTick, clock.now()) !== undefined) seen.stoppedAtTick += 1
        await victim.stop()
        await settledAt(running.values())
        break
      }
      case "edit": {
        if (revisions.length === 0) continue
        await edit(step.field, step.enabled)
        await sawChanges(running.values())
        break
      }
      case "downtime": {
        if (revisions.length === 0) continue
        const stopped = running.size === 0 ? [2] : [...running.keys()]
        for (const i of running.values()) await i.stop()
        running.clear()
        clock.advance(step.before)
        await edit(step.field, null)
        clock.advance(step.after)
        for (const p of stopped) running.set(p, await startScheduler(p))
        await settledAt(running.values())
        break
      }
      case "delete":
        if (revisions.length === 0) continue
        await api(deleteSchedule(name))
        revisions = []
        await sawChanges(running.values())
        break
      case "create":
        if (revisions.length > 0) continue
        await create(step.field)
        await sawChanges(running.values())
        break
      case "start":
        if (running.has(step.process)) continue
        running.set(step.process, await startScheduler(step.process))
        await settledAt([running.get(step.process)!])
        break
      case "stop": {
        const i = running.get(step.process)
        if (i === undefined) continue
        running.delete(step.process)
        await i.stop()
        break
      }
      case "stopAll":
        for (const i of running.values()) await i.stop()
        running.clear()
        break
    }
    owe()
  }
  for (const i of running.values()) await i.stop()
  if (revisions.length > 0) await api(deleteSchedule(name))
  expect(await submitted(name)).toEqual([...expected].sort())
  // Every submitted graph is on its tick's row (the schedule may have been re-created: several ids).
  const rows = (await admin.query<{ label: string; tick: Date }>(
    `SELECT g.label, t.tick FROM graphs g LEFT JOIN schedule_ticks t ON t.graph_id = g.id WHERE g.label LIKE $1 ORDER BY g.label`,
    [`${name} %`]
  )).rows
  expect(rows.map((r) => `${r.label} <- ${r.tick === null ? "no tick row" : modelTick(r.tick.getTime())}`)).toEqual(
    rows.map((r) => `${r.label} <- ${r.label.slice(name.length + 1)}`)
  )
}

describe("schedules: every owed tick exactly once, across racing schedulers (property, against a model)", () => {
  it("random clock moves, edits, disables, deletes, schedulers starting and stopping", async () => {
    await fc.assert(
      fc.asyncProperty(fieldArb, fc.array(stepArb, { minLength: 10, maxLength: 40 }), async (field, steps) => {
        await runScenario(field, [{ t: "start", process: 0 }, { t: "start", process: 1 }, ...steps])
      }),
      // The examples count among numRuns: 20 random runs after them.
      { numRuns: reaching.length + 20, examples: reaching.map(([field, steps]) => [field, [...steps]]) }
    )
    // The runs reached what they are for (`reaching` is built to).
    expect(seen.ticks).toBeGreaterThan(40)
    expect(seen.racing).toBeGreaterThan(20)
    expect(seen.olderRevision).toBeGreaterThan(0)
    expect(seen.stoppedAtTick).toBeGreaterThan(0)
  }, 600_000)
})
