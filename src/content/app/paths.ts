/**
 * Content URLs: `/content/<base path>/<relative path>`, percent-encoded.
 *
 * The path after `/content/` is decoded and checked by the path policy (`decodeSegments`: split
 * first, each segment decoded once, walking segments and encoded slashes refused), and the part
 * after the base path must be a relative path cairn could have published (`isSafeRelativePath`),
 * or one with a trailing `/` for a directory's page.
 * Files are looked up in the routing table and opened by digest only; a request that names no
 * file in a sane way just does not get as far as a lookup.
 */
import { decodeSegments, isSafeRelativePath } from "../policy/paths.js"

export const CONTENT_PREFIX = "/content/"

/** The decoded segments after `/content/`, or undefined when the path is malformed or unsafe. */
export const contentSegments = (url: string): ReadonlyArray<string> | undefined => {
  const query = url.indexOf("?")
  const fragment = url.indexOf("#")
  const end = query < 0 ? fragment : fragment < 0 ? query : Math.min(query, fragment)
  const path = end < 0 ? url : url.slice(0, end)
  if (!path.startsWith(CONTENT_PREFIX)) return undefined
  const rest = path.slice(CONTENT_PREFIX.length)
  // A trailing slash asks for a directory's page (a generated file such as `simple/attrs/`): its
  // segments end with an empty one, which no base path has and `relativePathOf` turns back into "/".
  if (rest.length > 1 && rest.endsWith("/")) {
    const segments = decodeSegments(rest.slice(0, -1))
    return segments === undefined ? undefined : [...segments, ""]
  }
  return decodeSegments(rest)
}

/**
 * The relative path of `segments` after the first `baseDepth` (the base path's), if it is a safe
 * one; a directory's (ending in "/") if the segments end with the empty one.
 */
export const relativePathOf = (segments: ReadonlyArray<string>, baseDepth: number): string | undefined => {
  const directory = segments.at(-1) === ""
  const end = directory ? segments.length - 1 : segments.length
  if (end <= baseDepth) return undefined
  const relative = segments.slice(baseDepth, end).join("/")
  if (!isSafeRelativePath(relative)) return undefined
  return directory ? `${relative}/` : relative
}
