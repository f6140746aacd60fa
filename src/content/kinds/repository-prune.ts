/**
 * `repository.prune`: release versions of a repository: the listed `versions` and/or all but the
 * newest `keep` it keeps (lifecycle/prune.ts). Holds `repository:<id>` exclusively, so it is ordered
 * with the repository's syncs and modifies. Its report (`value`): `{ released: [n], held: [{ number, by }] }`.
 * `DELETE /api/v1/repositories/{name}/versions/{number}` submits one for a single version.
 */
import { Effect, Schema } from "effect"
import { Db } from "../../db/client.js"
import { Commit, defineKind, type ParamProblems, VALUE } from "../../engine/kind.js"
import { heldVersions } from "../lifecycle/holders.js"
import { pruneVersions } from "../lifecycle/prune.js"
import { NamedRef, orDbFailure, resolveNamedFields } from "./common.js"

const VersionNumber = Schema.Int.pipe(Schema.between(0, 2_147_483_647))

const Params = Schema.Struct({
  repository: NamedRef,
  versions: Schema.optional(Schema.Array(VersionNumber).pipe(Schema.maxItems(10_000))),
  keep: Schema.optional(Schema.Int.pipe(Schema.between(1, 2_147_483_647)))
}).pipe(
  Schema.filter((p) => p.versions !== undefined || p.keep !== undefined || "give the version numbers to release (versions), or how many to keep (keep), or both")
).annotations({ parseOptions: { onExcessProperty: "error" } })

/** At submission: the repository by name, and every listed version must be one the API shows. */
const prepare = (raw: unknown) =>
  Effect.gen(function*() {
    const params = (yield* resolveNamedFields(raw, [["repository", "repository"]])) as { repository?: unknown; versions?: unknown }
    const repo = params.repository as NamedRef | undefined
    if (typeof repo !== "object" || repo === null || !Array.isArray(params.versions)) return params
    const db = yield* Db
    const shown = new Set((yield* db.rows<{ number: number }>(heldVersions(repo.id))).map((v) => v.number))
    const unknown = params.versions.filter((n) => typeof n === "number" && !shown.has(n))
    if (unknown.length > 0) {
      return yield* Effect.fail([`params.versions: repository ${repo.name} has no version ${unknown.join(", ")}`] as ParamProblems)
    }
    return params
  })

export const repositoryPrune = defineKind({
  name: "repository.prune",
  params: Params,
  outputs: { report: VALUE },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare,
  handler: (p) =>
    Effect.succeed(
      new Commit((tx) =>
        Effect.map(
          pruneVersions(tx, { repositoryId: p.repository.id, versions: p.versions ?? [], keep: p.keep }),
          (report) => ({ report })
        ).pipe(orDbFailure)
      )
    )
})

