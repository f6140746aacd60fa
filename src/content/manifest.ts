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

export interface ManifestEntry {
  /** A safe relative path (see `isSafeRelativePath`). */
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

/** The longest relative path accepted (UTF-16 code units). */
export const MAX_RELATIVE_PATH_LENGTH = 1024

const MAX_QUOTED_LINE = 200

/** C0 controls, DEL and C1 controls: never part of a file name we are willing to store or serve. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
/**
 * A lone surrogate is not a character: it cannot be percent-encoded (encodeURIComponent throws) nor
 * written as UTF-8, so such a path could be neither fetched nor published. With the `u` flag this
 * class only matches surrogates that are not half of a pair.
 */
const LONE_SURROGATE = /[\ud800-\udfff]/u
const SHA256 = /^[0-9a-fA-F]{64}$/
const DIGITS = /^[0-9]+$/

/**
 * The relative path rules, for manifests, the content app and uploads alike: a non-empty
 * `/`-separated path of at most 1024 characters, without a leading `/`, backslashes, NUL or control
 * characters, and without `.`, `..` or empty segments, so that it can only ever name a file under
 * the directory it is resolved against, on any server and any file system.
 *
 * It may not start with `#` or whitespace either: a `PULP_MANIFEST` line beginning with those is a
 * comment or loses them to trimming, and every path cairn stores must be publishable in one.
 */
export const isSafeRelativePath = (p: string): boolean => {
  if (p.length === 0 || p.length > MAX_RELATIVE_PATH_LENGTH) return false
  if (p.startsWith("#") || /^\s/.test(p)) return false
  if (p.includes("\\") || CONTROL.test(p) || LONE_SURROGATE.test(p)) return false
  for (const segment of p.split("/")) {
    // Also catches a leading "/" ("" first segment), "a//b" and a trailing "/".
    if (segment === "" || segment === "." || segment === "..") return false
  }
  return true
}

/** A line as an error message shows it: JSON-quoted (control characters visible), truncated. */
const quote = (line: string): string =>
  JSON.stringify(line.length > MAX_QUOTED_LINE ? `${line.slice(0, MAX_QUOTED_LINE)}…` : line)

const lineError = (line: number, raw: string, problem: string) =>
  new ManifestError({
    message: `PULP_MANIFEST line ${line}: ${problem}: ${quote(raw)}`,
    line,
    content: raw.length > MAX_QUOTED_LINE ? raw.slice(0, MAX_QUOTED_LINE) : raw
  })

/** Why `p` is not a safe relative path, for the error message. */
const unsafeReason = (p: string): string => {
  if (p.length === 0) return "empty relative path"
  if (p.length > MAX_RELATIVE_PATH_LENGTH) return `relative path longer than ${MAX_RELATIVE_PATH_LENGTH} characters`
  if (p.startsWith("/")) return "relative path starts with \"/\""
  if (p.includes("\\")) return "relative path contains a backslash"
  if (CONTROL.test(p)) return "relative path contains a control character"
  if (LONE_SURROGATE.test(p)) return "relative path is not valid Unicode"
  if (p.startsWith("#") || /^\s/.test(p)) return "relative path starts with \"#\" or whitespace"
  return "relative path has an empty, \".\" or \"..\" segment"
}

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
    if (!isSafeRelativePath(relative_path)) return Either.left(lineError(n, raw, unsafeReason(relative_path)))
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
    const problem = !isSafeRelativePath(e.relative_path)
      ? unsafeReason(e.relative_path)
      : !SHA256.test(e.sha256)
      ? "sha256 is not 64 hex digits"
      : !Number.isSafeInteger(e.size) || e.size < 0
      ? "size is not a non-negative integer"
      : i > 0 && sorted[i - 1]!.relative_path === e.relative_path
      ? "duplicate relative path"
      : undefined
    if (problem !== undefined) throw lineError(i + 1, line, problem)
    out += `${line}\n`
  }
  return out
}
