/**
 * Routes live in the URL's hash (#/graphs/<id>?task=<id>): the server serves one page at /ui/ and
 * never has to know the console's routes, and every view has a link that can be shared.
 */
import { useEffect, useState } from "preact/hooks"

export interface Route {
  /** Path segments, decoded: #/graphs/01H... -> ["graphs", "01H..."]. */
  readonly path: ReadonlyArray<string>
  readonly params: URLSearchParams
}

const parse = (): Route => {
  const hash = window.location.hash.replace(/^#\/?/, "")
  const [p = "", q = ""] = hash.split("?", 2)
  return { path: p.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(q) }
}

export const useRoute = (): Route => {
  const [route, setRoute] = useState(parse)
  useEffect(() => {
    const on = () => setRoute(parse())
    window.addEventListener("hashchange", on)
    return () => window.removeEventListener("hashchange", on)
  }, [])
  return route
}

/** "#/graphs/X?task=Y" from segments and parameters (undefined and "" left out). */
export const href = (segments: ReadonlyArray<string>, params: Record<string, string | number | undefined> = {}) => {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v))
  const s = q.toString()
  return `#/${segments.map(encodeURIComponent).join("/")}${s ? `?${s}` : ""}`
}

export const navigate = (to: string, replace = false) => {
  if (replace) window.history.replaceState(null, "", to)
  else window.location.hash = to.replace(/^#/, "")
  if (replace) window.dispatchEvent(new HashChangeEvent("hashchange"))
}
