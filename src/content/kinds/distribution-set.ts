/**
 * `distribution.set`: point a distribution at a publication — a new revision of the distribution
 * (its other fields as they are by then), committed with the task; content apps reload their
 * routing table on the NOTIFY that the new revision sends. Holds `distribution:<id>` exclusively,
 * so two sets of one distribution apply in submission order.
 */
import { Effect, Schema } from "effect"
import { TaskFailure } from "../../engine/errors.js"
import { Commit, defineKind, FutureRef } from "../../engine/kind.js"
import { reviseResource } from "../named.js"
import { DISTRIBUTION, NamedRef, orDbFailure, PUBLICATION, resolveNamedFields } from "./common.js"

const Params = Schema.Struct({
  distribution: NamedRef,
  publication: FutureRef(PUBLICATION)
}).annotations({ parseOptions: { onExcessProperty: "error" } })

export const distributionSet = defineKind({
  name: "distribution.set",
  params: Params,
  outputs: { distribution: DISTRIBUTION },
  resources: (p) => ({ exclusive: [`distribution:${p.distribution.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["distribution", "distribution"]]),
  handler: (p, ctx) =>
    Effect.succeed(
      new Commit((tx) =>
        Effect.gen(function*() {
          // The publication is held by this task (since its submission, or since it resolved), so it is there.
          const revision = yield* reviseResource(tx, "distribution", p.distribution.id, { publication: p.publication.$ref }, {
            future: ctx.outputs.distribution
          }).pipe(
            Effect.catchIf(
              (e) => e._tag !== "DbError",
              (e) => Effect.fail(new TaskFailure({ code: "invalid_params", message: e.message }))
            )
          )
          if (!revision) {
            return yield* new TaskFailure({ code: "not_found", message: `distribution ${p.distribution.name} was deleted` })
          }
          return { distribution: revision }
        }).pipe(orDbFailure)
      )
    )
})
