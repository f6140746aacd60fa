/**
 * Content URLs: `/content/<base path>/<relative path>`, percent-encoded.
 *
 * The path is decoded exactly once, segment by segment, after splitting on `/`: an encoded slash
 * (`%2F`) can therefore never create a segment boundary, and `%252e%252e` stays the literal name
 * `%2e%2e`. Segments that could walk anywhere (`.`, `..`, empty ones from `//` or a leading `/`)
 * are refused outright, as are paths that cairn could never have published (see
 * `isSafeRelativePath`). None of this is what keeps the filesystem safe — files are looked up in
 * the routing table and opened by digest only — but a request that names no file in a sane way
 * should not get as far as a lookup.
 */
import { isSafeRelativePath } from "../manifest.js"

export const CONTENT_PREFIX = "/content/"

/** The decoded segments after `/content/`, or undefined when the path is malformed or unsafe. */
export const contentSegments = (url: string): ReadonlyArray<string> | undefined => {
  const query = url.indexOf("?")
  const fragment = url.indexOf("#")
  const end = query < 0 ? fragment : fragment < 0 ? query : Math.min(query, fragment)
  const path = end < 0 ? url : url.slice(0, end)
  if (!path.startsWith(CONTENT_PREFIX)) return undefined
  const segments: Array<string> = []
  for (const raw of path.slice(CONTENT_PREFIX.length).split("/")) {
    let segment = raw
    // Without a `%` there is nothing to decode (and decoding would only copy the string).
    if (raw.includes("%")) {
      try {
        segment = decodeURIComponent(raw)
      } catch {
        return undefined // malformed percent-encoding or not UTF-8
      }
    }
    if (segment === "" || segment === "." || segment === ".." || segment.includes("/")) return undefined
    segments.push(segment)
  }
  return segments
}

/** The relative path of `segments` after the first `baseDepth` (the base path's), if it is a safe one. */
export const relativePathOf = (segments: ReadonlyArray<string>, baseDepth: number): string | undefined => {
  if (segments.length <= baseDepth) return undefined
  const relative = segments.slice(baseDepth).join("/")
  return isSafeRelativePath(relative) ? relative : undefined
}
