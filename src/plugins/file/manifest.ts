/**
 * `PULP_MANIFEST`: the file plugin's index of a file repository, one `relative_path,sha256,size`
 * line per file. `file.sync` reads it from a remote; cairn publishes its own in the same format.
 *
 * The format has no quoting, so a line is split on its LAST TWO commas: the digest and the size
 * never contain one, a relative path may. Lines are trimmed (as Pulp does), blank lines and lines
 * starting with `#` are skipped. Everything a remote sends is checked here, before any of it is
 * used to build a URL or a storage path: a manifest is untrusted input.
 */
import { Data, Either } from "effect"
import { relativePathProblem } from "../../content/policy/paths.js"

// The relative path rules are the path policy's, for manifests, the content app and uploads alike.
export { isSafeRelativePath, MAX_RELATIVE_PATH_LENGTH } from "../../content/policy/paths.js"

export interface ManifestEntry {
  /** A relative path the path policy accepts (src/content/policy/paths.ts). */
  readonly relative_path: string
  /** Lowercase hex. */
  readonly sha256: string
  readonly size: number
  /** 1-based line in the manifest, for error messages further down the sync. */
  readonly line: number
}

export class ManifestError extends Data.TaggedError("ManifestError")<{
  readonly message: string
  /** 1-based; 0 when the error is not about one line. */
  readonly line: number
  /** The offending line, truncated. */
  readonly content: string
}> {}

const MAX_QUOTED_LINE = 200
const SHA256 = /^[0-9a-fA-F]{64}$/
const DIGITS = /^[0-9]+$/

/** A line as an error message shows it: JSON-quoted (control characters visible), truncated. */
const quote = (line: string): string =>
  JSON.stringify(line.length > MAX_QUOTED_LINE ? `${line.slice(0, MAX_QUOTED_LINE)}…` : line)

const lineError = (line: number, raw: string, problem: string) =>
  new ManifestError({
    message: `PULP_MANIFEST line ${line}: ${problem}: ${quote(raw)}`,
    line,
    content: raw.length > MAX_QUOTED_LINE ? raw.slice(0, MAX_QUOTED_LINE) : raw
  })

/**
 * Parse a manifest. Fails with the first malformed line (naming its number and content) or the
 * second occurrence of a relative path. Entries come back in file order.
 */
export const parseManifest = (text: string): Either.Either<Array<ManifestEntry>, ManifestError> => {
  const entries: Array<ManifestEntry> = []
  const seen = new Map<string, number>()
  // A BOM is what some editors put in front of a "UTF-8" text file; it is not part of the first path.
  const body = text.startsWith("\ufeff") ? text.slice(1) : text
  const lines = body.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const n = i + 1
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    const sizeComma = line.lastIndexOf(",")
    const digestComma = sizeComma > 0 ? line.lastIndexOf(",", sizeComma - 1) : -1
    if (digestComma < 0) return Either.left(lineError(n, raw, "expected \"relative_path,sha256,size\""))
    const relative_path = line.slice(0, digestComma)
    const digest = line.slice(digestComma + 1, sizeComma)
    const sizeText = line.slice(sizeComma + 1)
    const unsafe = relativePathProblem(relative_path)
    if (unsafe !== undefined) return Either.left(lineError(n, raw, unsafe))
    if (!SHA256.test(digest)) return Either.left(lineError(n, raw, "sha256 is not 64 hex digits"))
    const size = Number(sizeText)
    if (!DIGITS.test(sizeText) || !Number.isSafeInteger(size)) {
      return Either.left(lineError(n, raw, "size is not a non-negative integer"))
    }
    const first = seen.get(relative_path)
    if (first !== undefined) {
      return Either.left(lineError(n, raw, `duplicate relative path (first on line ${first})`))
    }
    seen.set(relative_path, n)
    entries.push({ relative_path, sha256: digest.toLowerCase(), size, line: n })
  }
  return Either.right(entries)
}

/**
 * Render a manifest: entries sorted by relative path (code unit order, so the output does not
 * depend on a locale), one line each, with a trailing newline; no entries give "". Parsing the
 * result gives the same paths, digests and sizes back.
 *
 * Throws a `ManifestError` for an entry that could not be read back (an unsafe path, a bad digest
 * or size, a duplicate): what cairn publishes was validated when it came in, so that is a bug.
 */
export const formatManifest = (
  entries: Iterable<{ readonly relative_path: string; readonly sha256: string; readonly size: number }>
): string => {
  const sorted = [...entries].sort((a, b) =>
    a.relative_path < b.relative_path ? -1 : a.relative_path > b.relative_path ? 1 : 0
  )
  let out = ""
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!
    const line = `${e.relative_path},${e.sha256.toLowerCase()},${e.size}`
    const problem = relativePathProblem(e.relative_path) ?? (!SHA256.test(e.sha256)
      ? "sha256 is not 64 hex digits"
      : !Number.isSafeInteger(e.size) || e.size < 0
      ? "size is not a non-negative integer"
      : i > 0 && sorted[i - 1]!.relative_path === e.relative_path
      ? "duplicate relative path"
      : undefined)
    if (problem !== undefined) throw lineError(i + 1, line, problem)
    out += `${line}\n`
  }
  return out
}
