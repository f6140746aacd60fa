/**
 * Core metadata (https://packaging.python.org/specifications/core-metadata/): the `METADATA` file
 * of a wheel's `.dist-info` directory and the `PKG-INFO` file of an sdist. It is RFC 822-style:
 * `Name: value` header lines, continuation lines starting with a space or a tab, then an optional
 * blank line and a body (the description, from metadata 2.1 on).
 *
 * Parsing follows what Python's `email` parser (which `packaging` and pip use) does with such a
 * file: header names are case-insensitive, a folded value keeps its line breaks (the description
 * header relies on them) while one-line fields are unfolded, the first line that is neither a
 * header nor a continuation ends the headers. It is stricter on what it relies on: `Metadata-Version`,
 * `Name` and `Version` must each appear exactly once, and `Name` must be a valid project name.
 * Bytes that are not UTF-8 are decoded with replacement characters (old sdists wrote Latin-1 author
 * names; the fields relied on are ASCII).
 */
import { Data, Either } from "effect"
import { isValidProjectName } from "./names.js"
import { quoteText } from "./pep440.js"

export class InvalidMetadata extends Data.TaggedError("InvalidMetadata")<{
  readonly reason: string
}> {
  override get message() {
    return `invalid core metadata: ${this.reason}`
  }
}

export interface CoreMetadata {
  readonly metadataVersion: string
  readonly name: string
  readonly version: string
  readonly summary: string | undefined
  readonly requiresPython: string | undefined
  readonly requiresDist: ReadonlyArray<string>
  readonly providesExtra: ReadonlyArray<string>
  readonly license: string | undefined
  readonly author: string | undefined
  readonly authorEmail: string | undefined
  readonly homePage: string | undefined
  readonly descriptionContentType: string | undefined
  /** The body, or else the `Description` header as written (folded lines kept). */
  readonly description: string | undefined
  /** Every header in file order, names as written, values with folding line breaks kept. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>
  /** The first value of a header (case-insensitive name), unfolded and trimmed. */
  readonly get: (name: string) => string | undefined
  /** Every value of a header (case-insensitive name), unfolded and trimmed. */
  readonly getAll: (name: string) => ReadonlyArray<string>
}

/** A header line: printable ASCII except ":" for the name (RFC 5322's field name), then ":". */
const HEADER = /^([\x21-\x39\x3b-\x7e]+):[ \t]*(.*)$/s

/** Fields that must appear at most once (a second one would make the file ambiguous). */
const SINGLE = ["metadata-version", "name", "version", "summary", "requires-python"]

const unfold = (value: string): string => value.replace(/\n(?=[ \t])/g, "").trim()

export const parseCoreMetadata = (input: Uint8Array | string): Either.Either<CoreMetadata, InvalidMetadata> => {
  const fail = (reason: string) => Either.left(new InvalidMetadata({ reason }))
  let text = typeof input === "string" ? input : new TextDecoder("utf-8").decode(input)
  if (text.startsWith("\ufeff")) text = text.slice(1)
  const lines = text.split(/\r\n|\n|\r/)
  const headers: Array<[string, string]> = []
  let i = 0
  for (; i < lines.length; i++) {
    const line = lines[i]!
    if (line === "") {
      i++
      break
    }
    if (/^[ \t]/.test(line)) {
      const last = headers[headers.length - 1]
      if (last === undefined) return fail("the first line is a continuation line")
      last[1] += `\n${line}`
      continue
    }
    const m = HEADER.exec(line)
    if (m === null) break // Python's email parser: the body starts here.
    headers.push([m[1]!, m[2]!])
  }
  const bodyLines = lines.slice(i)
  while (bodyLines.length > 0 && bodyLines[bodyLines.length - 1] === "") bodyLines.pop()
  const body = bodyLines.length > 0 ? bodyLines.join("\n") : undefined

  const byName = new Map<string, Array<string>>()
  for (const [name, value] of headers) {
    const key = name.toLowerCase()
    byName.set(key, [...(byName.get(key) ?? []), value])
  }
  const getAll = (name: string) => (byName.get(name.toLowerCase()) ?? []).map(unfold)
  const get = (name: string) => getAll(name)[0]
  for (const key of SINGLE) {
    if ((byName.get(key)?.length ?? 0) > 1) {
      const written = headers.find(([n]) => n.toLowerCase() === key)![0]
      return fail(`the field ${quoteText(written)} appears more than once`)
    }
  }
  const metadataVersion = get("Metadata-Version")
  const name = get("Name")
  const version = get("Version")
  if (!metadataVersion) return fail("no Metadata-Version field")
  if (!name) return fail("no Name field")
  if (!version) return fail("no Version field")
  if (!isValidProjectName(name)) return fail(`the Name ${quoteText(name)} is not a valid project name`)
  const description = body ?? byName.get("description")?.[0]
  return Either.right({
    metadataVersion,
    name,
    version,
    summary: get("Summary"),
    requiresPython: get("Requires-Python"),
    requiresDist: getAll("Requires-Dist"),
    providesExtra: getAll("Provides-Extra"),
    license: get("License"),
    author: get("Author"),
    authorEmail: get("Author-email"),
    homePage: get("Home-page"),
    descriptionContentType: get("Description-Content-Type"),
    description,
    headers,
    get,
    getAll
  })
}
