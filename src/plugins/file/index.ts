/**
 * The file plugin: cairn's first content type, Pulp's file plugin in its shape. A unit is a file at
 * a relative path; a remote is the address of a PULP_MANIFEST (`relative_path,sha256,size` lines:
 * manifest.ts) that `file.sync` reads (sync.ts); `repository.modify` adds an upload as
 * `{ relative_path, artifact }`; a publication serves each file at its relative path and generates
 * the PULP_MANIFEST listing them. DESIGN.md "Content-type plugins" walks through it.
 */
import { Effect, Schema } from "effect"
import { definePlugin } from "../../content/plugin.js"
import { isSafeRelativePath } from "../../content/policy/paths.js"
import { formatManifest } from "./manifest.js"
import { fileDeclaration } from "./declaration.js"
import { fileSync } from "./sync.js"
import { fileUnit } from "./unit.js"

/** The manifest's path in a publication, and how it is served. */
export const MANIFEST_PATH = "PULP_MANIFEST"
export const MANIFEST_TYPE = "text/plain; charset=utf-8"

const RelativePath = Schema.String.pipe(
  Schema.filter((p) => isSafeRelativePath(p) || "a relative path: '/'-separated, no empty, '.' or '..' segments, no leading '/'")
)

/** An uploaded artifact added to a file repository, at the relative path it is to have. */
const UploadedFile = Schema.Struct({ relative_path: RelativePath, artifact: Schema.String })

export const filePlugin = definePlugin<undefined>({
  ...fileUnit,
  ...fileDeclaration,
  kinds: [fileSync],
  modify: {
    add: UploadedFile,
    resolve: (entries: ReadonlyArray<typeof UploadedFile.Type>, artifacts) =>
      Effect.succeed(entries.map((e) => ({
        unit: { relative_path: e.relative_path, ...artifacts.get(e.artifact)! },
        artifact: e.artifact,
        detail: undefined
      })))
  },
  publication: {
    servedPath: (u) => u.relative_path,
    generate: (units) =>
      Effect.sync(() => [{ relative_path: MANIFEST_PATH, media_type: MANIFEST_TYPE, bytes: Buffer.from(formatManifest(units), "utf8") }])
  },
  content: {
    ...fileDeclaration.content,
    describe: (units) => Effect.succeed(units.map((u) => ({ relative_path: u.relative_path })))
  }
})
