/**
 * The python content type: wheels and sdists, synced from a PEP 503 / PEP 691 simple index,
 * uploaded, and published as a simple index that pip installs from. What each part does:
 *
 * - units.ts: a unit is a distribution file (repository key: the file name) with its
 *   python_packages row (schema.ts);
 * - remote-index.ts and sync.ts: `python.sync`;
 * - upload.ts: what `repository.modify` adds (`{ filename, artifact }`);
 * - pages.ts: what a publication serves (the simple index pages, the files under `packages/`);
 * - lib/: PEP 440, names, requirements, reading and writing simple indexes, reading distributions.
 */
import { Effect, Either, Schema } from "effect"
import { definePlugin } from "../../content/plugin.js"
import { compileSelection } from "./lib/requirements.js"
import { generatePages, servedPath } from "./pages.js"
import { pythonSync } from "./sync.js"
import { UploadedDistribution, resolveUploads } from "./upload.js"
import { detailsOf, type PythonDetail, pythonUnit } from "./units.js"

const Requirements = Schema.Array(Schema.String)

export const pythonPlugin = definePlugin<PythonDetail>({
  ...pythonUnit,
  remote: {
    fields: { includes: Schema.optional(Requirements), excludes: Schema.optional(Requirements) },
    check: (fields) =>
      Either.match(compileSelection({ includes: fields.includes as Array<string> | undefined, excludes: fields.excludes as Array<string> | undefined }), {
        onLeft: (e) => [e.message],
        onRight: () => []
      }),
    urlMeans: "the root of a simple index (PEP 503 / PEP 691), ending in /"
  },
  kinds: [pythonSync],
  modify: { add: UploadedDistribution, resolve: resolveUploads },
  publication: { servedPath, generate: generatePages },
  content: {
    view: { name: Schema.String, version: Schema.String, filename: Schema.String },
    describe: (units) =>
      Effect.map(detailsOf(units), (details) =>
        units.map((u) => {
          const d = details.get(u.id)
          return { name: d?.name ?? null, version: d?.version ?? null, filename: u.relative_path }
        }))
  }
})
