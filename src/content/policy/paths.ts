/**
 * The path policy: which paths cairn accepts, in one place.
 *
 * - A **relative path** names a file of a repository version: a `PULP_MANIFEST` line
 *   (`../manifest.ts`), an uploaded file (`repository.modify`), the rest of a content URL after
 *   the base path (`../app/paths.ts`). It must name a file under whatever directory it is resolved
 *   against, on any server and any file system, and be publishable in a `PULP_MANIFEST`.
 * - A **base path** is where a distribution serves under `/content/` (`../named.ts`): URL-safe
 *   characters only, so that it is the same string encoded or not.
 * - A **request path** is what a client sent after `/content/`: split on `/` first, then each
 *   segment decoded exactly once (`decodeSegments`).
 *
 * One rule holds for all three: no segment that could walk anywhere (`isWalkingSegment`), which
 * also rules out a leading `/`, `//` and a trailing `/`. None of this is what keeps the artifact
 * store safe (files are stored and opened by digest only); it keeps paths that could mean
 * something else elsewhere out of the database and away from lookups.
 */

/** The longest relative path accepted (UTF-16 code units). */
export const MAX_RELATIVE_PATH_LENGTH = 1024

/** The longest base path accepted. */
export const MAX_BASE_PATH_LENGTH = 256

/** C0 controls, DEL and C1 controls: never part of a file name we are willing to store or serve. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
/**
 * A lone surrogate is not a character: it cannot be percent-encoded (encodeURIComponent throws) nor
 * written as UTF-8, so such a path could be neither fetched nor published. With the `u` flag this
 * class only matches surrogates that are not half of a pair.
 */
const LONE_SURROGATE = /[\ud800-\udfff]/u
/** A `PULP_MANIFEST` line starting with these is a comment, or loses them to trimming. */
const MANIFEST_UNSAFE_START = /^[#\s]/
/** The unreserved characters of RFC 3986: a base path is the same string percent-encoded or not. */
const BASE_PATH_SEGMENT = /^[A-Za-z0-9._~-]+$/

/** `""` (from `//`, a leading or a trailing `/`), `.` and `..`: segments that could walk anywhere. */
export const isWalkingSegment = (segment: string): boolean => segment === "" || segment === "." || segment === ".."

const hasWalkingSegment = (path: string): boolean => path.split("/").some(isWalkingSegment)

/**
 * Why `p` is not a relative path cairn accepts, or undefined if it is one: a non-empty
 * `/`-separated path of at most 1024 characters, without a leading `/`, backslashes, NUL, control
 * characters or lone surrogates, without `.`, `..` or empty segments, and not starting with `#` or
 * whitespace.
 */
export const relativePathProblem = (p: string): string | undefined => {
  if (p.length === 0) return "empty relative path"
  if (p.length > MAX_RELATIVE_PATH_LENGTH) return `relative path longer than ${MAX_RELATIVE_PATH_LENGTH} characters`
  if (p.startsWith("/")) return "relative path starts with \"/\""
  if (p.includes("\\")) return "relative path contains a backslash"
  if (CONTROL.test(p)) return "relative path contains a control character"
  if (LONE_SURROGATE.test(p)) return "relative path is not valid Unicode"
  if (MANIFEST_UNSAFE_START.test(p)) return "relative path starts with \"#\" or whitespace"
  if (hasWalkingSegment(p)) return "relative path has an empty, \".\" or \"..\" segment"
  return undefined
}

export const isSafeRelativePath = (p: string): boolean => relativePathProblem(p) === undefined

/**
 * Why `p` is not a base path cairn accepts, or undefined if it is one: 1 to 256 characters,
 * relative, `/`-separated, no `.`, `..` or empty segments, each segment of letters, digits and
 * `. _ ~ -` only (so no NUL, control characters, backslashes or anything that needs encoding).
 */
export const basePathProblem = (p: string): string | undefined => {
  if (p.length === 0 || p.length > MAX_BASE_PATH_LENGTH) return `base_path must have 1 to ${MAX_BASE_PATH_LENGTH} characters`
  if (p.startsWith("/")) return "base_path must be relative (no leading '/')"
  for (const segment of p.split("/")) {
    if (segment === "") return "base_path may not have empty segments ('//' or a trailing '/')"
    if (isWalkingSegment(segment)) return "base_path may not have '.' or '..' segments"
    if (!BASE_PATH_SEGMENT.test(segment)) return "base_path segments may only use letters, digits and . _ ~ -"
  }
  return undefined
}

/**
 * A percent-encoded request path (no query, no leading `/`) as decoded segments, or undefined.
 *
 * The path is split on `/` first and each segment decoded exactly once: an encoded slash (`%2F`)
 * can therefore never create a segment boundary (a segment that decodes to one is refused), and
 * `%252e%252e` stays the literal name `%2e%2e`. Walking segments, after decoding, and malformed
 * percent-encoding (or encoded bytes that are not UTF-8) are refused.
 */
export const decodeSegments = (path: string): Array<string> | undefined => {
  const segments: Array<string> = []
  for (const raw of path.split("/")) {
    let segment = raw
    // Without a `%` there is nothing to decode (and decoding would only copy the string).
    if (raw.includes("%")) {
      try {
        segment = decodeURIComponent(raw)
      } catch {
        return undefined
      }
    }
    if (isWalkingSegment(segment) || segment.includes("/")) return undefined
    segments.push(segment)
  }
  return segments
}
