/**
 * What `repository.modify` adds to a python repository from an upload: `{ filename, artifact }`,
 * the distribution's file name and the uploaded artifact's id. The file name must be a wheel's or
 * an sdist's (checked with the params, at submission); the name and version are read from the file
 * itself (a wheel's METADATA, an sdist's PKG-INFO: lib/distribution.ts), which must agree with the
 * file name. A file that is not a valid distribution is refused at submission (repository.modify's
 * `prepare` runs this too: a 400 naming what is wrong) and, should it get that far, fails the task
 * before its commit: nothing is kept.
 */
import { Effect, Either, Schema } from "effect"
import { TaskFailure } from "../../engine/errors.js"
import type { UploadedUnit } from "../../content/plugin.js"
import { ArtifactStorage } from "../../content/storage.js"
import { artifactSource, readDistribution } from "./lib/distribution.js"
import { parseDistributionFilename } from "./lib/names.js"
import { detailOf, type PythonDetail } from "./units.js"

export const UploadedDistribution = Schema.Struct({
  filename: Schema.String.pipe(
    Schema.filter((f) => Either.match(parseDistributionFilename(f), { onLeft: (e) => e.message, onRight: () => true }))
  ),
  artifact: Schema.String
})
export type UploadedDistribution = Schema.Schema.Type<typeof UploadedDistribution>

export const resolveUploads = (
  entries: ReadonlyArray<UploadedDistribution>,
  artifacts: ReadonlyMap<string, { readonly sha256: string; readonly size: number }>
) =>
  Effect.gen(function*() {
    const storage = yield* ArtifactStorage
    return yield* Effect.forEach(entries, (e) =>
      Effect.gen(function*() {
        const a = artifacts.get(e.artifact)
        if (a === undefined) return yield* new TaskFailure({ code: "not_found", message: `no artifact ${e.artifact}` })
        const info = yield* readDistribution(e.filename, artifactSource(storage, a.sha256, a.size)).pipe(
          Effect.catchTags({
            InvalidDistribution: (err) => new TaskFailure({ code: "invalid_distribution", message: err.message }),
            SourceReadError: (err) => new TaskFailure({ code: "storage_error", message: err.message })
          })
        )
        const detail = detailOf(info.filename, info.metadata.name, info.metadata.requiresPython)
        return { unit: { relative_path: e.filename, sha256: a.sha256, size: a.size }, artifact: e.artifact, detail } satisfies UploadedUnit<PythonDetail>
      }), { concurrency: 4 })
  })
