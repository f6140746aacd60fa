/**
 * Serves the web console under /ui/ as a plain Node request handler, in front of the API app
 * (src/api/server.ts hands it every request whose path is /ui or under /ui/). Loading the console
 * needs no token; the page calls the API with the token its user gives.
 *
 *   /ui                  308 to /ui/
 *   /ui/, /ui/index.html the page (no-cache: it names the current assets)
 *   /ui/assets/<file>    a built asset; names carry a content hash, so cached for a year, immutable
 *   anything else        404
 *
 * Only GET and HEAD (405 otherwise). Files are looked up by name in the in-memory bundle
 * (src/console/build.ts), never on disk, so no path can reach outside it.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { type Asset, buildConsole, type ConsoleBundle } from "./build.js"

export const isConsoleRequest = (req: IncomingMessage) => {
  const url = req.url ?? ""
  return url === "/ui" || url.startsWith("/ui/") || url.startsWith("/ui?")
}

/**
 * The bundle, built once per process on first use. A failed build is not kept: the next request
 * tries again (after the sources are fixed, without a restart).
 */
let bundle: Promise<ConsoleBundle> | undefined
export const consoleBundle = () => {
  bundle ??= buildConsole().catch((e: unknown) => {
    bundle = undefined
    throw e
  })
  return bundle
}

/**
 * Same-origin everything: the page's scripts, styles, worker and API calls all come from cairn
 * (no CDN). Inline style attributes are allowed for the drawing's computed positions.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

const plain = (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers })
  res.end(text)
}

const send = (req: IncomingMessage, res: ServerResponse, a: Asset, cacheControl: string, extra: Record<string, string> = {}) => {
  const headers: Record<string, string> = {
    "content-type": a.type,
    "cache-control": cacheControl,
    etag: a.etag,
    vary: "accept-encoding",
    "x-content-type-options": "nosniff",
    ...extra
  }
  if (req.headers["if-none-match"] === a.etag) {
    res.writeHead(304, headers)
    return res.end()
  }
  const gzip = a.gzip !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))
  const body = gzip ? a.gzip! : a.body
  if (gzip) headers["content-encoding"] = "gzip"
  headers["content-length"] = String(body.length)
  res.writeHead(200, headers)
  res.end(req.method === "HEAD" ? undefined : body)
}

/** Answers a console request; false (and nothing written) for any other request. */
export const serveConsole = (req: IncomingMessage, res: ServerResponse): boolean => {
  if (!isConsoleRequest(req)) return false
  const [pathname, query] = (req.url ?? "").split(/\?(.*)/s, 2) as [string, string | undefined]
  if (req.method !== "GET" && req.method !== "HEAD") {
    plain(res, 405, "the console answers GET and HEAD only\n", { allow: "GET, HEAD" })
    return true
  }
  if (pathname === "/ui") {
    res.writeHead(308, { location: `/ui/${query ? `?${query}` : ""}`, "content-length": "0" })
    res.end()
    return true
  }
  const asset = pathname.startsWith("/ui/assets/") ? pathname.slice("/ui/assets/".length) : undefined
  if (pathname !== "/ui/" && pathname !== "/ui/index.html" && (asset === undefined || !/^[\w.-]+$/.test(asset))) {
    plain(res, 404, "not found\n")
    return true
  }
  consoleBundle().then(
    (b) => {
      if (asset === undefined) return send(req, res, b.index, "no-cache", { "content-security-policy": CSP, "referrer-policy": "no-referrer" })
      const a = b.assets.get(asset)
      if (a === undefined) return plain(res, 404, "not found\n")
      send(req, res, a, "public, max-age=31536000, immutable")
    },
    (e: unknown) => {
      const message = e instanceof Error ? e.message : String(e)
      process.stderr.write(`console: the web console could not be built: ${message}\n`)
      plain(res, 500, `the web console could not be built: ${message}\n`)
    }
  )
  return true
}
