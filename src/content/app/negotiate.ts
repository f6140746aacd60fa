/**
 * Content negotiation between the media types a publication generated at one path (PEP 691's
 * simple index pages: HTML and JSON), by the request's `accept` (RFC 9110 §12.5.1): each
 * alternative gets the quality of the most specific range that matches it (`type/subtype`, then
 * `type/*`, then `*\/*`), and the best one wins; ties, no `accept`, or nothing acceptable at all give
 * the default (the first the plugin generated), never a 406: clients that ask for nothing in
 * particular get the page every client reads.
 */
import type { FileEntry } from "./routing-table.js"

interface Range {
  readonly type: string
  readonly subtype: string
  readonly q: number
}

const parseAccept = (accept: string): Array<Range> => {
  const out: Array<Range> = []
  for (const part of accept.split(",")) {
    const [range, ...params] = part.split(";")
    const [type, subtype] = (range ?? "").trim().toLowerCase().split("/")
    if (!type || !subtype) continue
    let q = 1
    for (const p of params) {
      const [k, v] = p.split("=")
      if (k?.trim().toLowerCase() === "q") {
        const n = Number(v?.trim())
        q = Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0
      }
    }
    out.push({ type, subtype, q })
  }
  return out
}

/** The quality `ranges` give `mediaType` (its parameters ignored), or -1 when no range matches it. */
const quality = (ranges: ReadonlyArray<Range>, mediaType: string): number => {
  const [type, subtype] = (mediaType.split(";")[0] ?? "").trim().toLowerCase().split("/")
  let best = -1
  let specificity = 0
  for (const r of ranges) {
    const s = r.type === type && r.subtype === subtype ? 3 : r.type === type && r.subtype === "*" ? 2 : r.type === "*" && r.subtype === "*" ? 1 : 0
    if (s > specificity) {
      specificity = s
      best = r.q
    }
  }
  return best
}

/** The entry `accept` prefers among `file` (the default) and its variants. */
export const negotiate = (file: FileEntry, accept: string | undefined): FileEntry => {
  if (file.variants === undefined || accept === undefined || accept.trim() === "") return file
  const ranges = parseAccept(accept)
  let chosen = file
  let best = quality(ranges, file.mediaType ?? "")
  for (const v of file.variants) {
    const q = quality(ranges, v.mediaType ?? "")
    if (q > best) {
      chosen = v
      best = q
    }
  }
  return best > 0 ? chosen : file
}
