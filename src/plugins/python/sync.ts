/**
 * `python.sync { repository, remote, mirror?, skip_missing? }` -> `version`: a new version of a
 * python repository from a remote simple index. remote-index.ts reads the index (the projects the
 * remote's `includes` name, or all, filtered by `includes` and `excludes`), each file with the
 * sha256 the index gives; from there it is every sync's path (src/content/sync-files.ts): the same
 * downloader, host slots and remote settings as `file.sync`, each file verified against its sha256
 * while it is stored (a mismatch fails the sync and keeps nothing), `immediate` or `on_demand`,
 * mirror or additive, `skip_missing` (an included project the index does not have is then listed
 * as missing too, as `<project>/`). The units get their python_packages rows in the same commit.
 *
 * Holds `repository:<id>` exclusively, like every change of a repository.
 */
import { sql } from "drizzle-orm"
import { Effect, Either } from "effect"
import { Db } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import { defineKind } from "../../engine/kind.js"
import { orDbFailure, REPOSITORY_VERSION, resolveNamedFields } from "../../content/kinds/common.js"
import { openRemote, SyncParams, syncEntries } from "../../content/sync-files.js"
import { compileSelection } from "./lib/requirements.js"
import { readRemoteIndex } from "./remote-index.js"
import { detailOf, pythonUnit } from "./units.js"

/** The remote's python fields (index.ts), as stored with its revision. */
const selectionOf = (revision: string, remoteName: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [row] = yield* db.rows<{ type_fields: { includes?: Array<string>; excludes?: Array<string> } | null }>(
      sql`SELECT type_fields FROM remote_revisions WHERE id = ${revision}`
    )
    const selection = compileSelection({ includes: row?.type_fields?.includes, excludes: row?.type_fields?.excludes })
    if (Either.isLeft(selection)) return yield* new TaskFailure({ code: "invalid_remote", message: `remote ${remoteName}: ${selection.left.message}` })
    return selection.right
  })

export const pythonSync = defineKind({
  name: "python.sync",
  params: SyncParams,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["repository", "repository"], ["remote", "remote"]], pythonUnit.type),
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const remote = yield* openRemote(p.remote.revision)
      const selection = yield* selectionOf(p.remote.revision, p.remote.name)
      const index = yield* readRemoteIndex(remote, selection, { skipMissing: p.skip_missing === true }).pipe(
        Effect.catchTag("IndexUnreadable", (e) => new TaskFailure({ code: e.code, message: e.message }))
      )
      const entries = index.files.map((f) => ({
        relative_path: f.file.filename,
        sha256: f.file.sha256,
        size: f.file.size,
        url: f.file.url,
        detail: detailOf(f.file.distribution, f.project, f.file.requiresPython)
      }))
      return yield* syncEntries(pythonUnit, p, ctx, remote, entries, index.missingProjects.map((project) => `${project}/`))
    }).pipe(orDbFailure)
})
