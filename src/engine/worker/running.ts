/**
 * The tasks this process is running, and how one is stopped. The worker runtime's modules share
 * this table: the producer counts free slots in it, the executor adds its task and removes it when
 * settled, cancel requests and the liveness module stop tasks through it, the drain waits on it.
 *
 * A task is stopped by interrupting its handler's fiber. Why it was stopped (the first reason given
 * wins) decides what the completer does with the interruption: `cancel` settles it canceled,
 * `shutdown` hands it back (cairn_release), `lost` settles nothing: the worker generation that
 * claimed it is gone (its session dropped, or it fenced itself), so the task is no longer ours and
 * the reaper retries or fails it.
 *
 * A task awaiting its child tasks lends its slot (`lend`, src/engine/children.ts): it stays in the
 * table, but does not count against the slots while it waits, so this process may claim other work
 * meanwhile, its own children included. When it resumes, the process may run more tasks than it has
 * slots for a while; it claims nothing more until it is back under (`free`, `refill`).
 */
import { Effect, Fiber } from "effect"
import type { TaskFailure } from "../errors.js"
import type { HandlerResult } from "../kind.js"
import type { ClaimedTask } from "../queries/claim.js"

export type StopReason = "cancel" | "shutdown" | "lost"

export interface Running {
  readonly task: ClaimedTask
  /** The id of the worker generation that claimed it; every settle names it. */
  readonly workerId: string
  /** Why it was stopped, if it was. */
  reason: StopReason | undefined
  /** The handler's fiber, once it is forked. */
  fiber: Fiber.RuntimeFiber<HandlerResult, TaskFailure> | undefined
  /** Resolves once the task is settled (or given up) and out of the table. */
  readonly done: Promise<void>
}

export class RunningTasks {
  private readonly tasks = new Map<string, Running>()
  /** Set by the drain: no more claims, and no new registration after a lost session. */
  draining = false
  /**
   * Worker generations that were lost. A settle can claim tasks for its slot while its generation
   * is being lost (completer.ts); they are added stopped, never run, and left to the reaper.
   */
  private readonly lost = new Set<string>()
  /** Running tasks that lent their slot while they wait for their children. */
  private readonly lent = new Set<Running>()

  constructor(readonly slots: number) {}

  get size() {
    return this.tasks.size
  }

  /** Slots a claim may fill now: none while draining; none (or less than none) while over budget. */
  get free() {
    return this.draining ? 0 : this.slots - (this.tasks.size - this.lent.size)
  }

  /** Tasks a settle may claim for the slot it frees (none while draining or over budget). */
  get refill() {
    return !this.draining && this.free >= 0 ? 1 : 0
  }

  /** `r` waits for its children: its slot is free for other work until `reclaim`. */
  lend(r: Running) {
    this.lent.add(r)
  }

  reclaim(r: Running) {
    this.lent.delete(r)
  }

  values() {
    return [...this.tasks.values()]
  }

  /** Records a claimed task; `finished` takes it out of the table and resolves its `done`. */
  add(task: ClaimedTask, workerId: string): { readonly running: Running; readonly finished: () => void } {
    let resolveDone!: () => void
    const reason: StopReason | undefined = this.lost.has(workerId) ? "lost" : undefined
    const running: Running = { task, workerId, reason, fiber: undefined, done: new Promise((res) => (resolveDone = res)) }
    this.tasks.set(task.id, running)
    return {
      running,
      finished: () => {
        // A settle that claims can claim its own task again (a retry), added before this one leaves.
        if (this.tasks.get(task.id) === running) this.tasks.delete(task.id)
        this.lent.delete(running)
        resolveDone()
      }
    }
  }

  /** Interrupts the task's handler, remembering the first reason (a task not forked yet is interrupted as it starts). */
  stop(r: Running, reason: StopReason) {
    r.reason ??= reason
    return r.fiber ? Fiber.interruptFork(r.fiber) : Effect.void
  }

  /** A cancel request: stops those of the listed tasks that run here. */
  cancel(ids: Iterable<string>) {
    return Effect.forEach(ids, (id) => {
      const r = this.tasks.get(id)
      return r ? this.stop(r, "cancel") : Effect.void
    }, { discard: true })
  }

  /** A lost generation: stops, without settling, every task it claimed. */
  abandon(workerId: string) {
    this.lost.add(workerId)
    return Effect.forEach(this.values().filter((r) => r.workerId === workerId), (r) => this.stop(r, "lost"), { discard: true })
  }

  /** Resolves once any task now running is out of the table. */
  anyDone() {
    return Promise.race(this.values().map((r) => r.done))
  }
}
