/**
 * Writing a publication's simple index (PEP 503 HTML and PEP 691 JSON), and choosing between the
 * two for a request.
 *
 * Layout of a python publication (relative paths, as the content app serves them under
 * `/content/<base_path>/`):
 *
 *     simple/index.html                      the project list, PEP 503 HTML
 *     simple/index.json                      the same, PEP 691 JSON
 *     simple/<project>/index.html            a project's files, PEP 503 HTML
 *     simple/<project>/index.json            the same, PEP 691 JSON
 *     packages/<project>/<filename>          the distribution files
 *     packages/<project>/<filename>.metadata their core metadata (PEP 658), when known
 *
 * `<project>` is the PEP 503-normalised name. Pages are meant to be served at the directory URL
 * (`simple/`, `simple/<project>/`, with the trailing slash; the server redirects the URL without it,
 * as PEP 503 asks) in the format `negotiateSimpleFormat` picks. Every link is relative —
 * `<project>/` on the project list, `../../packages/<project>/<filename>#sha256=<hex>` on a project
 * page — so the index works under any base path and any host. Grouping files by project keeps
 * directory listings small and lets a project's files be found without the index.
 *
 * Output is deterministic (the same projects give the same bytes, whatever their input order):
 * pages are stored as content-addressed artifacts, so an unchanged page is the same artifact.
 * Projects sort by normalised name, files by file name, in code unit order (no locale). Everything
 * written into HTML is escaped; names and digests are validated, and a bad one throws (what cairn
 * publishes was validated when it came in, so that is a bug, not input to report).
 *
 * JSON pages declare API version 1.1 (PEP 700: `versions` and each file's `size`); HTML pages
 * declare the same in PEP 629's `pypi:repository-version` meta tag.
 */
import { Either } from "effect"
import { isValidProjectName, normalizeProjectName, parseDistributionFilename } from "./names.js"
import { compareVersions, parseVersion } from "./pep440.js"

export const SIMPLE_API_VERSION = "1.1"
export const JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
export const HTML_CONTENT_TYPE = "application/vnd.pypi.simple.v1+html"
export const TEXT_HTML = "text/html"

export interface PublishedFile {
  readonly filename: string
  /** Lowercase hex. */
  readonly sha256: string
  readonly size: number
  readonly requiresPython?: string | undefined
  /** true, or the reason, when the file is yanked (PEP 592). */
  readonly yanked?: true | string | undefined
  /** The sha256 of the file's core metadata when it is published beside it (PEP 658). */
  readonly metadataSha256?: string | undefined
}

export interface PublishedProject {
  /** The project's name as its metadata spells it (shown on the project list). */
  readonly name: string
  readonly files: ReadonlyArray<PublishedFile>
}

export interface SimpleOutput {
  readonly relativePath: string
  readonly contentType: string
  readonly bytes: Uint8Array
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

export const rootPagePath = (format: "html" | "json"): string => `simple/index.${format}`
export const projectPagePath = (project: string, format: "html" | "json"): string =>
  `simple/${normalizeProjectName(project)}/index.${format}`
export const packagePath = (project: string, filename: string): string =>
  `packages/${normalizeProjectName(project)}/${filename}`
export const metadataPath = (project: string, filename: string): string => `${packagePath(project, filename)}.metadata`

/** A file's link from its project page (percent-encoded; resolves against `.../simple/<project>/`). */
const fileHref = (project: string, filename: string): string =>
  `../../packages/${encodeURIComponent(normalizeProjectName(project))}/${encodeURIComponent(filename)}`

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!)

const SHA256 = /^[0-9a-f]{64}$/

const byCodeUnits = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0

interface Checked {
  readonly project: string
  readonly name: string
  readonly files: ReadonlyArray<PublishedFile & { readonly version: string }>
}

/** Validate, normalise and sort; throws on what cannot have come from a valid repository. */
const check = (projects: ReadonlyArray<PublishedProject>): Array<Checked> => {
  const seen = new Map<string, string>()
  const out: Array<Checked> = []
  for (const p of projects) {
    if (!isValidProjectName(p.name)) throw new Error(`simple index: invalid project name ${JSON.stringify(p.name)}`)
    const project = normalizeProjectName(p.name)
    const first = seen.get(project)
    if (first !== undefined) throw new Error(`simple index: projects ${JSON.stringify(first)} and ${JSON.stringify(p.name)} are the same project`)
    seen.set(project, p.name)
    const filenames = new Set<string>()
    const files = p.files.map((f) => {
      const parsed = parseDistributionFilename(f.filename, { project })
      if (Either.isLeft(parsed)) throw new Error(`simple index: ${parsed.left.message}`)
      if (filenames.has(f.filename)) throw new Error(`simple index: ${JSON.stringify(f.filename)} listed twice`)
      filenames.add(f.filename)
      if (!SHA256.test(f.sha256)) throw new Error(`simple index: ${JSON.stringify(f.filename)} has a bad sha256`)
      if (f.metadataSha256 !== undefined && !SHA256.test(f.metadataSha256)) {
        throw new Error(`simple index: ${JSON.stringify(f.filename)} has a bad metadata sha256`)
      }
      if (!Number.isSafeInteger(f.size) || f.size < 0) throw new Error(`simple index: ${JSON.stringify(f.filename)} has a bad size`)
      return { ...f, version: parsed.right.parsedVersion.normalized }
    })
    files.sort((a, b) => byCodeUnits(a.filename, b.filename))
    out.push({ project, name: p.name, files })
  }
  return out.sort((a, b) => byCodeUnits(a.project, b.project))
}

const utf8 = (s: string) => new TextEncoder().encode(s)

const htmlPage = (title: string, body: string): string =>
  `<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="${SIMPLE_API_VERSION}">\n` +
  `    <title>${escapeHtml(title)}</title>\n  </head>\n  <body>\n    <h1>${escapeHtml(title)}</h1>\n${body}  </body>\n</html>\n`

const rootHtml = (projects: ReadonlyArray<Checked>): string =>
  htmlPage(
    "Simple index",
    projects.map((p) => `    <a href="${escapeHtml(encodeURIComponent(p.project))}/">${escapeHtml(p.name)}</a><br>\n`).join("")
  )

const rootJson = (projects: ReadonlyArray<Checked>): string =>
  JSON.stringify({ meta: { "api-version": SIMPLE_API_VERSION }, projects: projects.map((p) => ({ name: p.name })) }) + "\n"

const projectHtml = (p: Checked): string =>
  htmlPage(
    `Links for ${p.project}`,
    p.files.map((f) => {
      const attrs = [`href="${escapeHtml(`${fileHref(p.project, f.filename)}#sha256=${f.sha256}`)}"`]
      if (f.requiresPython !== undefined) attrs.push(`data-requires-python="${escapeHtml(f.requiresPython)}"`)
      if (f.yanked !== undefined) attrs.push(`data-yanked="${f.yanked === true ? "" : escapeHtml(f.yanked)}"`)
      if (f.metadataSha256 !== undefined) {
        // PEP 714's name, and PEP 658's for installers older than it (pip before 23.3).
        attrs.push(`data-core-metadata="sha256=${f.metadataSha256}"`, `data-dist-info-metadata="sha256=${f.metadataSha256}"`)
      }
      return `    <a ${attrs.join(" ")}>${escapeHtml(f.filename)}</a><br>\n`
    }).join("")
  )

const sortedVersions = (versions: Iterable<string>): Array<string> =>
  [...new Set(versions)]
    .map((v) => Either.getOrThrow(parseVersion(v)))
    .sort((a, b) => compareVersions(a, b) || byCodeUnits(a.normalized, b.normalized))
    .map((v) => v.normalized)
    .filter((v, i, all) => i === 0 || all[i - 1] !== v)

const projectJson = (p: Checked): string =>
  JSON.stringify({
    meta: { "api-version": SIMPLE_API_VERSION },
    name: p.project,
    versions: sortedVersions(p.files.map((f) => f.version)),
    files: p.files.map((f) => ({
      filename: f.filename,
      url: fileHref(p.project, f.filename),
      hashes: { sha256: f.sha256 },
      ...(f.requiresPython === undefined ? {} : { "requires-python": f.requiresPython }),
      size: f.size,
      ...(f.yanked === undefined ? {} : { yanked: f.yanked }),
      ...(f.metadataSha256 === undefined
        ? {}
        : { "core-metadata": { sha256: f.metadataSha256 }, "dist-info-metadata": { sha256: f.metadataSha256 } })
    }))
  }) + "\n"

/**
 * Every page of the index: the project list and each project's page, in HTML and JSON, sorted
 * by relative path. The distribution files (and metadata files) are not included: they are the
 * repository's artifacts, placed at `packagePath` / `metadataPath`.
 */
export const renderSimpleIndex = (projects: ReadonlyArray<PublishedProject>): Array<SimpleOutput> => {
  const checked = check(projects)
  const out: Array<SimpleOutput> = [
    { relativePath: rootPagePath("html"), contentType: HTML_CONTENT_TYPE, bytes: utf8(rootHtml(checked)) },
    { relativePath: rootPagePath("json"), contentType: JSON_CONTENT_TYPE, bytes: utf8(rootJson(checked)) }
  ]
  for (const p of checked) {
    out.push(
      { relativePath: projectPagePath(p.project, "html"), contentType: HTML_CONTENT_TYPE, bytes: utf8(projectHtml(p)) },
      { relativePath: projectPagePath(p.project, "json"), contentType: JSON_CONTENT_TYPE, bytes: utf8(projectJson(p)) }
    )
  }
  return out.sort((a, b) => byCodeUnits(a.relativePath, b.relativePath))
}

// ---------------------------------------------------------------------------------------------
// Content negotiation
// ---------------------------------------------------------------------------------------------

/**
 * What a client may ask for, and what is served for it (PEP 691's content types). On equal
 * quality the first wins: HTML, which every client reads (curl and older tools send only the any-type range).
 */
const SERVED: ReadonlyArray<readonly [mediaType: string, format: "json" | "html", contentType: string]> = [
  [TEXT_HTML, "html", TEXT_HTML],
  [HTML_CONTENT_TYPE, "html", HTML_CONTENT_TYPE],
  ["application/vnd.pypi.simple.latest+html", "html", HTML_CONTENT_TYPE],
  [JSON_CONTENT_TYPE, "json", JSON_CONTENT_TYPE],
  ["application/vnd.pypi.simple.latest+json", "json", JSON_CONTENT_TYPE]
]

export interface Negotiated {
  readonly format: "json" | "html"
  /** The `content-type` to answer with. */
  readonly contentType: string
}

/**
 * Pick the page format for an `Accept` header: the served type with the highest q-value (each
 * type takes the q of its most specific matching range: exact, then `type/*`, then the any-type range; on a
 * tie, the order above). No header: HTML, as for clients that predate PEP 691. Undefined when
 * nothing served is acceptable (answer 406).
 */
export const negotiateSimpleFormat = (accept: string | undefined): Negotiated | undefined => {
  if (accept === undefined || accept.trim() === "") return { format: "html", contentType: TEXT_HTML }
  const ranges = accept.split(",").flatMap((part) => {
    const [range, ...params] = part.split(";").map((s) => s.trim().toLowerCase())
    if (!range) return []
    let q = 1
    for (const p of params) {
      const m = /^q=([0-9.]+)$/.exec(p)
      if (m) q = Math.min(1, Number(m[1]))
    }
    return Number.isNaN(q) ? [] : [{ range, q }]
  })
  const qualityOf = (mediaType: string): number => {
    const [type] = mediaType.split("/")
    const exact = ranges.find((r) => r.range === mediaType)
    if (exact) return exact.q
    const sub = ranges.find((r) => r.range === `${type}/*`)
    if (sub) return sub.q
    return ranges.find((r) => r.range === "*/*")?.q ?? 0
  }
  let best: { q: number; served: Negotiated } | undefined
  for (const [mediaType, format, contentType] of SERVED) {
    const q = qualityOf(mediaType)
    if (q > 0 && (best === undefined || q > best.q)) best = { q, served: { format, contentType } }
  }
  return best?.served
}
