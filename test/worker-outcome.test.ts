/**
 * What the completer records for a finished attempt (src/engine/worker/completer.ts, `outcomeOf`),
 * without the database: the handler's exit and why the task was stopped, if it was. The settling
 * itself (fencing by worker and attempt, the Commit transaction) runs against PostgreSQL in
 * test/engine-basics, engine-kinds, worker-liveness and faults.
 */
import { Cause, Exit, FiberId } from "effect"
import { describe, expect, it } from "vitest"
import { TaskFailure } from "../src/engine/errors.js"
import { Commit } from "../src/engine/kind.js"
import { outcomeOf } from "../src/engine/worker/completer.js"
import type { StopReason } from "../src/engine/worker/running.js"

const interrupted = Exit.interrupt(FiberId.none)
const reasons: Array<StopReason | undefined> = [undefined, "cancel", "shutdown", "lost"]

describe("outcomeOf", () => {
  it("resolves a success with its result, a Commit included, whatever stopped it too late", () => {
    const commit = new Commit(() => {
      throw new Error("not run here")
    })
    for (const reason of reasons) {
      expect(outcomeOf(Exit.succeed({ out: 1 }), reason)).toEqual({ _tag: "resolve", result: { out: 1 } })
      expect(outcomeOf(Exit.succeed(commit), reason)).toEqual({ _tag: "resolve", result: commit })
    }
  })

  it("fails a handler's failure with its code, and a defect as task_crashed", () => {
    expect(outcomeOf(Exit.fail(new TaskFailure({ code: "not_found", message: "no such file" })), undefined))
      .toEqual({ _tag: "fail", how: "failed", code: "not_found", message: "no such file" })
    const crashed = outcomeOf(Exit.die(new Error("boom")), "cancel")
    expect(crashed).toMatchObject({ _tag: "fail", how: "failed", code: "task_crashed" })
    expect((crashed as { message: string }).message).toContain("boom")
    // Interrupted while failing: the failure is what happened.
    const both = Exit.failCause(Cause.sequential(Cause.fail(new TaskFailure({ code: "x", message: "y" })), Cause.interrupt(FiberId.none)))
    expect(outcomeOf(both, "lost")).toEqual({ _tag: "fail", how: "failed", code: "x", message: "y" })
  })

  it("an interruption: canceled on request, handed back at shutdown, left alone when the session was lost", () => {
    expect(outcomeOf(interrupted, "cancel")).toEqual({ _tag: "fail", how: "canceled", code: "canceled", message: "canceled by request" })
    expect(outcomeOf(interrupted, undefined)).toEqual({ _tag: "fail", how: "canceled", code: "canceled", message: "canceled by request" })
    expect(outcomeOf(interrupted, "shutdown")).toEqual({ _tag: "release" })
    // No longer ours: settling it would race whoever retries it.
    expect(outcomeOf(interrupted, "lost")).toEqual({ _tag: "abandon" })
  })
})
