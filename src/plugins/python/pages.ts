/**
 * What a python publication serves besides its distributions: the simple index, generated once
 * per publication (lib/simple-write.ts) and stored as artifacts by the core's publish. Each page
 * is offered at its directory's path (`simple/`, `simple/<project>/`) as PEP 503 HTML and PEP 691
 * JSON; the content app picks by the request's `accept` (pip asks for JSON first), HTML for a
 * request that prefers neither. The distributions are served at `packages/<project>/<filename>`,
 * where the pages' relative links point.
 */
import { Effect } from "effect"
import type { GeneratedFile, StoredUnit, UnitSpec } from "../../content/plugin.js"
import { parseDistributionFilename } from "./lib/names.js"
import {
  HTML_CONTENT_TYPE,
  JSON_CONTENT_TYPE,
  packagePath,
  type PublishedProject,
  renderSimpleIndex,
  TEXT_HTML
} from "./lib/simple-write.js"
import { detailsOf } from "./units.js"

/** Where a publication serves a distribution (the link its project page gives). */
export const servedPath = (unit: UnitSpec): string => {
  const parsed = parseDistributionFilename(unit.relative_path)
  // Units are recorded only with a valid file name (sync and upload check it).
  if (parsed._tag === "Left") throw new Error(`python unit ${unit.relative_path}: ${parsed.left.message}`)
  return packagePath(parsed.right.project, unit.relative_path)
}

/** `simple/index.html` -> `simple/`, `simple/<project>/index.json` -> `simple/<project>/`. */
const directoryOf = (relativePath: string) => relativePath.slice(0, relativePath.lastIndexOf("/") + 1)

export const generatePages = (units: ReadonlyArray<StoredUnit>) =>
  Effect.gen(function*() {
    const details = yield* detailsOf(units)
    const projects = new Map<string, { name: string; files: Array<PublishedProject["files"][number]> }>()
    for (const u of units) {
      const d = details.get(u.id)
      if (d === undefined) return yield* Effect.dieMessage(`python unit ${u.id} (${u.relative_path}) has no python_packages row`)
      let p = projects.get(d.project)
      if (p === undefined) projects.set(d.project, p = { name: d.name, files: [] })
      p.files.push({ filename: u.relative_path, sha256: u.sha256, size: u.size, requiresPython: d.requires_python ?? undefined })
    }
    const out: Array<GeneratedFile> = []
    for (const page of renderSimpleIndex([...projects.values()])) {
      const relative_path = directoryOf(page.relativePath)
      if (page.contentType === HTML_CONTENT_TYPE) {
        // text/html first: what a client that names no PEP 691 type (a browser, curl, an old pip) gets.
        out.push({ relative_path, media_type: TEXT_HTML, bytes: page.bytes }, { relative_path, media_type: HTML_CONTENT_TYPE, bytes: page.bytes })
      } else out.push({ relative_path, media_type: JSON_CONTENT_TYPE, bytes: page.bytes })
    }
    return out
  })
