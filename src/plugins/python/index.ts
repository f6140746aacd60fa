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
import { Effect } from "effect"
import { definePlugin } from "../../content/plugin.js"
import { pythonDeclaration } from "./declaration.js"
import { generatePages, servedPath } from "./pages.js"
import { pythonSync } from "./sync.js"
import { UploadedDistribution, resolveUploads } from "./upload.js"
import { detailsOf, type PythonDetail, pythonUnit } from "./units.js"

export const pythonPlugin = definePlugin<PythonDetail>({
  ...pythonUnit,
  ...pythonDeclaration,
  kinds: [pythonSync],
  modify: { add: UploadedDistribution, resolve: resolveUploads },
  publication: { servedPath, generate: generatePages },
  content: {
    ...pythonDeclaration.content,
    describe: (units) =>
      Effect.map(detailsOf(units), (details) =>
        units.map((u) => {
          const d = details.get(u.id)
          return { name: d?.name ?? null, version: d?.version ?? null, filename: u.relative_path }
        }))
  }
})
