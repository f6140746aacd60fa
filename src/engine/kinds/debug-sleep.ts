/**
 * `debug.sleep`: waits for its inputs, sleeps `ms`, then fails with `fail` or resolves `result`
 * with `value` (refs inside `value` replaced by the referenced futures' values). Tests and
 * benchmarks exercise the engine with it, like Pulp's sleep task.
 */
import { Duration, Effect, Schema } from "effect"
import { TaskFailure } from "../errors.js"
import { defineKind, FutureRef, noResources, substituteRefs, VALUE } from "../kind.js"

const Params = Schema.Struct({
  ms: Schema.optional(Schema.Int.pipe(Schema.between(0, 3_600_000))),
  fail: Schema.optional(Schema.String.pipe(Schema.maxLength(10_000))),
  value: Schema.optional(Schema.Unknown),
  inputs: Schema.optional(Schema.Array(FutureRef()))
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const debugSleep = defineKind({
  name: "debug.sleep",
  params: Params,
  outputs: { result: VALUE },
  resources: noResources,
  handler: (params, ctx) =>
    Effect.gen(function*() {
      if (params.ms) yield* Effect.sleep(Duration.millis(params.ms))
      if (params.fail !== undefined) return yield* new TaskFailure({ code: "task_failed", message: params.fail })
      return { result: substituteRefs(params.value ?? null, ctx.inputs) }
    })
})
