/**
 * Reading a remote simple index (for `python.sync`): the project list and a project's page, in
 * PEP 503 HTML or PEP 691 JSON, whichever the server answered (ask with `SIMPLE_ACCEPT`, which
 * prefers JSON, then parse by the response's `content-type`).
 *
 * A page is untrusted input. What the reader decides:
 * - A page it cannot read at all (an unsupported content type or charset, JSON that is not a PEP
 *   691 document, an API major version other than 1) is an `InvalidIndexPage`.
 * - A file entry it will not use is listed in `rejected` with the reason, and the rest of the page
 *   stands; the sync reports them (or fails, as it chooses). Rejected are: a URL that is not
 *   http(s); a file name that is unsafe as one path segment (`/`, `\`, `..`, control characters;
 *   a `%2F` in a link counts, names are percent-decoded first); a file name that is not a wheel or
 *   sdist of the page's project with a PEP 440 version (eggs, installers, other projects' files);
 *   a missing or malformed sha256 — unless `requireSha256: false` — since cairn verifies every
 *   download against it; and every copy of a file name listed twice with different digests
 *   (which one is right cannot be known; identical repeats are kept once).
 * - Links are resolved against the page URL (or the page's first `<base href>`, as browsers and
 *   pip do) and the fragment is removed from the URL once its digest is read.
 * - A project list gives names; the page of a project is `<index url><normalised name>/` whatever
 *   the list links to (what pip does), so a list cannot send the sync to another host.
 *
 * Bodies are parsed whole: the caller bounds their size when downloading them.
 */
import { Data, Either } from "effect"
import { Parser } from "htmlparser2"
import {
  type DistributionFilename,
  isValidProjectName,
  normalizeProjectName,
  parseDistributionFilename,
  unsafeFilenameReason
} from "./names.js"
import { quoteText } from "./pep440.js"

/** pip's `Accept` header: JSON first, then HTML. */
export const SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

const JSON_TYPES = new Set(["application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json"])
const HTML_TYPES = new Set(["application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html"])

export class InvalidIndexPage extends Data.TaggedError("InvalidIndexPage")<{
  readonly url: string
  readonly reason: string
}> {
  override get message() {
    return `the simple index page ${this.url} cannot be read: ${this.reason}`
  }
}

export interface IndexedFile {
  readonly filename: string
  /** Absolute, without the fragment. */
  readonly url: string
  /** Lowercase hex; undefined only when the page was read with `requireSha256: false`. */
  readonly sha256: string | undefined
  readonly requiresPython: string | undefined
  /** true, or the reason, when the file is yanked (PEP 592). */
  readonly yanked: true | string | undefined
  /** The server offers the core metadata at `<url>.metadata` (PEP 658/714), with its sha256 when given. */
  readonly coreMetadata: { readonly sha256: string | undefined } | undefined
  /** From JSON pages of API version 1.1 and later (PEP 700). */
  readonly size: number | undefined
  readonly distribution: DistributionFilename
}

export interface RejectedEntry {
  /** The file name, or the link when no file name could be read from it. */
  readonly entry: string
  readonly reason: string
}

export interface ProjectPage {
  readonly format: "html" | "json"
  /** PEP 629's (HTML) or PEP 691's (JSON) API version, when the page states it. */
  readonly apiVersion: string | undefined
  readonly files: ReadonlyArray<IndexedFile>
  readonly rejected: ReadonlyArray<RejectedEntry>
}

export interface ListedProject {
  /** As the list writes it. */
  readonly name: string
  /** PEP 503-normalised. */
  readonly project: string
  /** `<index url><project>/`. */
  readonly url: string
}

export interface ProjectList {
  readonly format: "html" | "json"
  readonly apiVersion: string | undefined
  readonly projects: ReadonlyArray<ListedProject>
  readonly rejected: ReadonlyArray<RejectedEntry>
}

export interface PageResponse {
  /** The URL the page was fetched from (after redirects): relative links resolve against it. */
  readonly url: string
  readonly contentType: string | undefined
  readonly body: Uint8Array | string
}

export interface ProjectPageOptions {
  /** Refuse files without a sha256 (default true). */
  readonly requireSha256?: boolean | undefined
}

/** The URL of a project's page: `<index url><normalised name>/` (the index URL ends in "/"). */
export const projectPageUrl = (indexUrl: string, name: string): string =>
  new URL(`${encodeURIComponent(normalizeProjectName(name))}/`, indexUrl).href

// ---------------------------------------------------------------------------------------------
// Decoding a response
// ---------------------------------------------------------------------------------------------

type Decoded = { readonly format: "html"; readonly text: string } | { readonly format: "json"; readonly text: string }

const decode = (page: PageResponse): Either.Either<Decoded, InvalidIndexPage> => {
  const fail = (reason: string) => Either.left(new InvalidIndexPage({ url: page.url, reason }))
  const [type = "", ...params] = (page.contentType ?? "").split(";").map((s) => s.trim())
  const mediaType = type.toLowerCase()
  const format = JSON_TYPES.has(mediaType) ? "json" : HTML_TYPES.has(mediaType) ? "html" : undefined
  if (format === undefined) {
    return fail(`unsupported content type ${quoteText(page.contentType ?? "(none)")} (expected PEP 691 JSON or HTML)`)
  }
  if (typeof page.body === "string") return Either.right({ format, text: page.body })
  const charset = params.map((p) => /^charset=("?)([^"]*)\1$/i.exec(p)?.[2]).find((c) => c !== undefined) ?? "utf-8"
  try {
    // JSON is UTF-8 whatever the header says (RFC 8259).
    return Either.right({ format, text: new TextDecoder(format === "json" ? "utf-8" : charset).decode(page.body) })
  } catch {
    return fail(`unsupported charset ${quoteText(charset)}`)
  }
}

/** PEP 629 / 691: a major version other than 1 is a format this reader does not know. */
const checkApiVersion = (url: string, version: string | undefined): Either.Either<void, InvalidIndexPage> => {
  if (version === undefined) return Either.void
  const major = /^([0-9]+)\.[0-9]+$/.exec(version.trim())?.[1]
  if (major === undefined) return Either.left(new InvalidIndexPage({ url, reason: `malformed API version ${quoteText(version)}` }))
  return major === "1"
    ? Either.void
    : Either.left(new InvalidIndexPage({ url, reason: `API version ${quoteText(version)} is not supported (only 1.x)` }))
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

interface Anchor {
  readonly attribs: Record<string, string>
  text: string
}

interface HtmlDocument {
  readonly anchors: ReadonlyArray<Anchor>
  readonly base: string | undefined
  readonly repositoryVersion: string | undefined
}

const parseHtml = (text: string): HtmlDocument => {
  const anchors: Array<Anchor> = []
  let current: Anchor | undefined
  let base: string | undefined
  let repositoryVersion: string | undefined
  const parser = new Parser({
    onopentag(name, attribs) {
      if (name === "a") {
        current = { attribs, text: "" }
        anchors.push(current)
      } else if (name === "base" && base === undefined && attribs.href !== undefined) {
        base = attribs.href
      } else if (name === "meta" && attribs.name === "pypi:repository-version" && repositoryVersion === undefined) {
        repositoryVersion = attribs.content
      }
    },
    ontext(t) {
      if (current !== undefined) current.text += t
    },
    onclosetag(name) {
      if (name === "a") current = undefined
    }
  }, { decodeEntities: true })
  parser.write(text)
  parser.end()
  return { anchors, base, repositoryVersion }
}

/** The base URL links resolve against: the page's `<base href>` (itself relative to the page), or the page. */
const baseUrl = (pageUrl: string, base: string | undefined): string => {
  if (base === undefined) return pageUrl
  try {
    return new URL(base, pageUrl).href
  } catch {
    return pageUrl
  }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

const SHA256 = /^[0-9a-fA-F]{64}$/

interface RawFile {
  /** For rejections when no file name is known. */
  readonly label: string
  /** The file name, when the entry states it (JSON); else read from the URL. */
  readonly filename: string | undefined
  readonly href: string
  readonly hashes: ReadonlyMap<string, string>
  readonly requiresPython: string | undefined
  readonly yanked: true | string | undefined
  readonly coreMetadata: { readonly sha256: string | undefined } | undefined
  readonly size: number | undefined
}

/** `sha256=...&md5=...` fragment parameters (PEP 503 gives one `<hashname>=<hashvalue>`). */
const fragmentHashes = (fragment: string): Map<string, string> => {
  const out = new Map<string, string>()
  for (const part of fragment.replace(/^#/, "").split("&")) {
    const eq = part.indexOf("=")
    if (eq > 0) out.set(part.slice(0, eq).toLowerCase(), part.slice(eq + 1))
  }
  return out
}

/** `data-core-metadata` / `data-dist-info-metadata` values: "true" or "<hashname>=<hex>". */
const metadataAttribute = (value: string | undefined): RawFile["coreMetadata"] => {
  if (value === undefined || value.toLowerCase() === "false") return undefined
  const hashes = fragmentHashes(value)
  const sha256 = hashes.get("sha256")
  return { sha256: sha256 !== undefined && SHA256.test(sha256) ? sha256.toLowerCase() : undefined }
}

const resolveFiles = (
  raws: ReadonlyArray<RawFile>,
  base: string,
  project: string,
  requireSha256: boolean
): { files: Array<IndexedFile>; rejected: Array<RejectedEntry> } => {
  const accepted: Array<IndexedFile> = []
  const rejected: Array<RejectedEntry> = []
  for (const raw of raws) {
    const reject = (entry: string, reason: string) => rejected.push({ entry, reason })
    let url: URL
    try {
      url = new URL(raw.href, base)
    } catch {
      reject(raw.label, `the link ${quoteText(raw.href)} is not a URL`)
      continue
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      reject(raw.label, `the link ${quoteText(raw.href)} is not an http(s) URL`)
      continue
    }
    const hashes = new Map([...fragmentHashes(url.hash), ...raw.hashes])
    url.hash = ""
    let filename = raw.filename
    if (filename === undefined) {
      const last = url.pathname.split("/").pop() ?? ""
      try {
        filename = decodeURIComponent(last)
      } catch {
        reject(raw.label, `the link ${quoteText(raw.href)} has a malformed percent-encoding`)
        continue
      }
    }
    const unsafe = unsafeFilenameReason(filename)
    if (unsafe !== undefined) {
      reject(filename === "" ? raw.label : filename, unsafe)
      continue
    }
    const distribution = parseDistributionFilename(filename, { project })
    if (Either.isLeft(distribution)) {
      reject(filename, distribution.left.reason)
      continue
    }
    const digest = hashes.get("sha256")
    if (digest !== undefined && !SHA256.test(digest)) {
      reject(filename, `malformed sha256 ${quoteText(digest)}`)
      continue
    }
    if (digest === undefined && requireSha256) {
      reject(filename, hashes.size === 0 ? "no sha256 given" : `no sha256 given (only ${[...hashes.keys()].sort().join(", ")})`)
      continue
    }
    accepted.push({
      filename,
      url: url.href,
      sha256: digest?.toLowerCase(),
      requiresPython: raw.requiresPython,
      yanked: raw.yanked,
      coreMetadata: raw.coreMetadata,
      size: raw.size,
      distribution: distribution.right
    })
  }
  // A file name listed twice: one entry if the digests agree, none if they do not.
  const digests = new Map<string, Set<string | undefined>>()
  for (const f of accepted) digests.set(f.filename, (digests.get(f.filename) ?? new Set()).add(f.sha256))
  const files: Array<IndexedFile> = []
  const done = new Set<string>()
  for (const f of accepted) {
    if (done.has(f.filename)) continue
    done.add(f.filename)
    if (digests.get(f.filename)!.size > 1) rejected.push({ entry: f.filename, reason: "listed more than once with different sha256 digests" })
    else files.push(f)
  }
  return { files, rejected }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x)

const parseJson = (url: string, text: string): Either.Either<Record<string, unknown>, InvalidIndexPage> => {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    return Either.left(new InvalidIndexPage({ url, reason: `not JSON (${e instanceof Error ? e.message : String(e)})` }))
  }
  if (!isObject(doc)) return Either.left(new InvalidIndexPage({ url, reason: "the JSON document is not an object" }))
  const meta = doc.meta
  if (!isObject(meta) || typeof meta["api-version"] !== "string") {
    return Either.left(new InvalidIndexPage({ url, reason: "the JSON document has no meta.api-version" }))
  }
  return Either.map(checkApiVersion(url, meta["api-version"]), () => doc as Record<string, unknown>)
}

/** A JSON `core-metadata` / `dist-info-metadata` value: false, true or a hashes object. */
const jsonMetadata = (value: unknown): RawFile["coreMetadata"] => {
  if (value === true) return { sha256: undefined }
  if (!isObject(value)) return undefined
  const sha256 = value.sha256
  return { sha256: typeof sha256 === "string" && SHA256.test(sha256) ? sha256.toLowerCase() : undefined }
}

const jsonFile = (file: unknown, index: number): RawFile | RejectedEntry => {
  const label = isObject(file) && typeof file.filename === "string" ? file.filename : `files[${index}]`
  if (!isObject(file)) return { entry: label, reason: "not an object" }
  if (typeof file.filename !== "string") return { entry: label, reason: "no filename" }
  if (typeof file.url !== "string") return { entry: label, reason: "no url" }
  if (!isObject(file.hashes)) return { entry: label, reason: "no hashes object" }
  const hashes = new Map<string, string>()
  for (const [k, v] of Object.entries(file.hashes)) if (typeof v === "string") hashes.set(k.toLowerCase(), v)
  const yanked = file.yanked === true ? true : typeof file.yanked === "string" ? (file.yanked === "" ? true : file.yanked) : undefined
  const size = typeof file.size === "number" && Number.isSafeInteger(file.size) && file.size >= 0 ? file.size : undefined
  return {
    label,
    filename: file.filename,
    // A fragment in the JSON url is not a hash: hashes come from `hashes` only.
    href: file.url.replace(/#.*$/s, ""),
    hashes,
    requiresPython: typeof file["requires-python"] === "string" ? file["requires-python"] : undefined,
    yanked,
    coreMetadata: jsonMetadata(file["core-metadata"] ?? file["dist-info-metadata"]),
    size
  }
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

/** A project's page: its files, and the entries refused with why. */
export const parseProjectPage = (
  page: PageResponse,
  project: string,
  options?: ProjectPageOptions
): Either.Either<ProjectPage, InvalidIndexPage> =>
  Either.gen(function*() {
    const decoded = yield* decode(page)
    const requireSha256 = options?.requireSha256 ?? true
    const normalized = normalizeProjectName(project)
    if (decoded.format === "html") {
      const doc = parseHtml(decoded.text)
      yield* checkApiVersion(page.url, doc.repositoryVersion)
      const raws: Array<RawFile> = doc.anchors.filter((a) => a.attribs.href !== undefined).map((a) => ({
        label: a.attribs.href!,
        filename: undefined,
        href: a.attribs.href!,
        hashes: new Map(),
        requiresPython: a.attribs["data-requires-python"] || undefined,
        yanked: a.attribs["data-yanked"] === undefined ? undefined : a.attribs["data-yanked"] === "" ? true : a.attribs["data-yanked"],
        // PEP 714: the new attribute wins over the old one.
        coreMetadata: metadataAttribute(a.attribs["data-core-metadata"] ?? a.attribs["data-dist-info-metadata"]),
        size: undefined
      }))
      const { files, rejected } = resolveFiles(raws, baseUrl(page.url, doc.base), normalized, requireSha256)
      return { format: "html" as const, apiVersion: doc.repositoryVersion, files, rejected }
    }
    const doc = yield* parseJson(page.url, decoded.text)
    const invalid = (reason: string) => Either.left(new InvalidIndexPage({ url: page.url, reason }))
    if (!Array.isArray(doc.files)) return yield* invalid("the JSON document has no files array")
    if (typeof doc.name === "string" && normalizeProjectName(doc.name) !== normalized) {
      return yield* invalid(`the page is project ${quoteText(doc.name)}'s, not ${quoteText(project)}'s`)
    }
    const raws: Array<RawFile> = []
    const rejected: Array<RejectedEntry> = []
    doc.files.forEach((f, i) => {
      const r = jsonFile(f, i)
      if ("reason" in r) rejected.push(r)
      else raws.push(r)
    })
    const resolved = resolveFiles(raws, page.url, normalized, requireSha256)
    return {
      format: "json" as const,
      apiVersion: (doc.meta as Record<string, unknown>)["api-version"] as string,
      files: resolved.files,
      rejected: [...rejected, ...resolved.rejected]
    }
  })

/** The project list (the index's root page). `indexUrl` is the index's URL, ending in "/". */
export const parseProjectList = (page: PageResponse, indexUrl: string = page.url): Either.Either<ProjectList, InvalidIndexPage> =>
  Either.gen(function*() {
    const decoded = yield* decode(page)
    let names: Array<string>
    let apiVersion: string | undefined
    if (decoded.format === "html") {
      const doc = parseHtml(decoded.text)
      yield* checkApiVersion(page.url, doc.repositoryVersion)
      apiVersion = doc.repositoryVersion
      names = doc.anchors.map((a) => a.text.trim())
    } else {
      const doc = yield* parseJson(page.url, decoded.text)
      if (!Array.isArray(doc.projects)) {
        return yield* Either.left(new InvalidIndexPage({ url: page.url, reason: "the JSON document has no projects array" }))
      }
      apiVersion = (doc.meta as Record<string, unknown>)["api-version"] as string
      names = doc.projects.map((p, i) => isObject(p) && typeof p.name === "string" ? p.name : `projects[${i}]`)
    }
    const projects: Array<ListedProject> = []
    const rejected: Array<RejectedEntry> = []
    const seen = new Set<string>()
    for (const name of names) {
      if (!isValidProjectName(name)) {
        rejected.push({ entry: name, reason: "not a valid project name" })
        continue
      }
      const project = normalizeProjectName(name)
      if (seen.has(project)) {
        rejected.push({ entry: name, reason: "listed more than once" })
        continue
      }
      seen.add(project)
      projects.push({ name, project, url: projectPageUrl(indexUrl, project) })
    }
    return { format: decoded.format, apiVersion, projects, rejected }
  })
