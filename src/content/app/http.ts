/**
 * The parts of HTTP the content app needs, as pure functions: strong etags with `If-None-Match`
 * and `If-Range`, and single byte ranges (RFC 9110, sections 13.1.2, 13.1.5 and 14).
 */
import type { ByteRange } from "../storage.js"

/** A file's etag: its sha256, quoted (strong: equal etags mean equal bytes). */
export const etagOf = (sha256: string) => `"${sha256}"`

/** `If-None-Match` (weak comparison, as the RFC asks for it): does it name `etag`, or is it `*`? */
export const noneMatch = (header: string | undefined, etag: string): boolean => {
  if (header === undefined) return false
  return header.split(",").some((t) => {
    const tag = t.trim()
    return tag === "*" || tag === etag || tag === `W/${etag}`
  })
}

export type RangeRequest =
  | { readonly _tag: "Full" }
  | { readonly _tag: "Partial"; readonly range: ByteRange }
  | { readonly _tag: "Unsatisfiable" }

const FULL: RangeRequest = { _tag: "Full" }
const SPEC = /^(\d*)-(\d*)$/

/**
 * What to send for a `Range` header on a file of `size` bytes. Anything other than one valid
 * `bytes=` range gets the whole file, which the RFC allows: other units, several ranges (a
 * multipart answer buys nothing for file downloads), a syntax error, and a stale `If-Range`.
 */
export const rangeRequest = (
  range: string | undefined,
  ifRange: string | undefined,
  etag: string,
  size: number
): RangeRequest => {
  if (range === undefined) return FULL
  // If-Range with anything but our (strong) etag, a date for instance, means "send it all".
  if (ifRange !== undefined && ifRange.trim() !== etag) return FULL
  const eq = range.indexOf("=")
  if (eq < 0 || range.slice(0, eq).trim().toLowerCase() !== "bytes") return FULL
  const m = SPEC.exec(range.slice(eq + 1).trim())
  if (m === null) return FULL
  const [, first = "", last = ""] = m
  if (first === "") {
    if (last === "") return FULL
    // A suffix: the last n bytes (all of them when the file is shorter).
    const n = Number(last)
    if (n === 0 || size === 0) return { _tag: "Unsatisfiable" }
    return { _tag: "Partial", range: { start: Math.max(0, size - n), end: size - 1 } }
  }
  const start = Number(first)
  if (last !== "" && Number(last) < start) return FULL
  if (start >= size) return { _tag: "Unsatisfiable" }
  return { _tag: "Partial", range: { start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) } }
}
