/**
 * A fixture upstream for sync and download tests and the soak run: a file repository on node:http
 * (127.0.0.1, a free port) serving each file at `<prefix><relative path>` (segments
 * percent-decoded) and a `PULP_MANIFEST` generated from the current files, with faults that tests
 * switch on per path.
 *
 * Bodies are written in 64 KiB chunks with backpressure, like a real server: a client that stops
 * reading stops the server too, and `aborted` counts the responses the client broke off.
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { formatManifest } from "../../src/content/manifest.js"
import { mulberry32 } from "./random.js"

export interface UpstreamOptions {
  /** The directory the repository is served under; default "/". Must start and end with "/". */
  readonly prefix?: string
  /**
   * Serve HTTPS with this certificate (for 127.0.0.1); with `ca` and `requestCert`, a client must
   * present a certificate issued by `ca` (the TLS handshake fails otherwise).
   */
  readonly tls?: { readonly key: string; readonly cert: string; readonly ca?: string; readonly requestCert?: boolean }
  /** Refuse a request with the status this answers (e.g. 401 without the right credentials), or serve it. */
  readonly check?: (req: http.IncomingMessage) => number | undefined
}

/** One request as the upstream saw it. */
export interface LoggedRequest {
  /** performance.now() when its headers arrived. */
  readonly at: number
  /** Decoded relative path ("PULP_MANIFEST" for the manifest). */
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  /** Refused by `check` with this status. */
  readonly refused?: number | undefined
}

export interface UpstreamFaults {
  /** The next `times` requests for `path` get `status` (default 503). */
  fail5xx(path: string, times: number, status?: number): void
  /** The next `times` requests for `path` get `status` (any: 404, 429, ...), with an optional Retry-After. */
  failStatus(path: string, status: number, times: number, retryAfter?: string): void
  /** The next `times` responses for `path` send half the body, then reset the connection. */
  reset(path: string, times: number): void
  /** The next `times` responses for `path` announce the full length, send half and close cleanly. */
  truncate(path: string, times: number): void
  /** Responses for `path` have the right length and different bytes (the next `times`, default all). */
  corrupt(path: string, times?: number): void
  /** Responses for `path` send half the body, pause `ms`, then send the rest (default: all of them). */
  slow(path: string, ms: number, times?: number): void
  /** Responses for `path` wait `ms` before sending their headers (default: all of them). */
  delay(path: string, ms: number, times?: number): void
  /** Responses for `path` have no Content-Length (chunked). */
  chunked(path: string): void
  /** Requests for `path` are redirected to `to` (a path or a URL) (default: all of them). */
  redirect(path: string, to: string, times?: number, status?: number): void
  /** Remove the faults of `path`, or of every path. */
  clear(path?: string): void
}

export interface Upstream {
  /** The manifest's URL. */
  readonly url: string
  /** The repository's base URL (ends with "/"). */
  readonly base: string
  /** The URL a relative path is served at. */
  readonly fileUrl: (path: string) => string
  readonly setFile: (path: string, content: Buffer | string) => void
  readonly removeFile: (path: string) => void
  /** Serve this text as PULP_MANIFEST instead of the generated one; `undefined` goes back. */
  readonly setManifestOverride: (text: string | undefined) => void
  /** Requests per relative path (decoded; "PULP_MANIFEST" for the manifest). */
  readonly requests: Map<string, number>
  /** Responses per relative path that the client closed before they were complete. */
  readonly aborted: Map<string, number>
  /** Every request, in arrival order. */
  readonly log: Array<LoggedRequest>
  readonly faults: UpstreamFaults
  /** sha256 (hex) of a served file's content. */
  readonly sha256: (path: string) => string
  readonly close: () => Promise<void>
}

interface Counted<T> {
  value: T
  left: number
}

interface PathFaults {
  status?: Counted<{ code: number; retryAfter?: string | undefined }>
  reset?: Counted<null>
  truncate?: Counted<null>
  corrupt?: Counted<null>
  slow?: Counted<number>
  delay?: Counted<number>
  chunked?: boolean
  redirect?: Counted<{ to: string; status: number }>
}

/** Use one of a fault's remaining times; true if it applies to this request. */
const take = <T>(c: Counted<T> | undefined): c is Counted<T> => {
  if (c === undefined || c.left <= 0) return false
  c.left--
  return true
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

const CHUNK = 64 * 1024

export const startUpstream = async (
  initial: Record<string, Buffer | string>,
  opts: UpstreamOptions = {}
): Promise<Upstream> => {
  const prefix = opts.prefix ?? "/"
  const files = new Map<string, Buffer>()
  for (const [p, c] of Object.entries(initial)) files.set(p, Buffer.from(c))
  let manifestOverride: string | undefined
  const faults = new Map<string, PathFaults>()
  const requests = new Map<string, number>()
  const aborted = new Map<string, number>()
  const log: Array<LoggedRequest> = []
  const faultsOf = (p: string) => {
    let f = faults.get(p)
    if (f === undefined) faults.set(p, (f = {}))
    return f
  }

  const manifest = () =>
    manifestOverride ??
      formatManifest([...files].map(([relative_path, c]) => ({ relative_path, sha256: sha256(c), size: c.length })))

  /** Resolves after `ms`, or as soon as the client goes away. */
  const pause = (res: http.ServerResponse, ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      res.once("close", () => {
        clearTimeout(t)
        resolve()
      })
    })

  /** Write `body` in chunks, waiting for the client to take each; false if the client went away. */
  const writeAll = async (res: http.ServerResponse, body: Buffer): Promise<boolean> => {
    for (let at = 0; at < body.length; at += CHUNK) {
      if (res.destroyed) return false
      if (!res.write(body.subarray(at, at + CHUNK))) {
        const ok = await new Promise<boolean>((resolve) => {
          const onDrain = () => {
            res.off("close", onClose)
            resolve(true)
          }
          const onClose = () => {
            res.off("drain", onDrain)
            resolve(false)
          }
          res.once("drain", onDrain)
          res.once("close", onClose)
        })
        if (!ok) return false
      }
    }
    return !res.destroyed
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const pathname = (req.url ?? "/").split("?")[0]!
    if (!pathname.startsWith(prefix)) {
      res.writeHead(404).end()
      return
    }
    let rel: string
    try {
      rel = pathname.slice(prefix.length).split("/").map(decodeURIComponent).join("/")
    } catch {
      res.writeHead(400).end()
      return
    }
    bump(requests, rel)
    const refused = opts.check?.(req)
    log.push({ at: performance.now(), path: rel, headers: req.headers, refused })
    if (refused !== undefined) {
      res.writeHead(refused, { "content-type": "text/plain", ...(refused === 401 ? { "www-authenticate": 'Basic realm="upstream"' } : {}) })
        .end(`refused ${refused}\n`)
      return
    }
    const f = faults.get(rel) ?? {}

    if (take(f.redirect)) {
      res.writeHead(f.redirect.value.status, { location: f.redirect.value.to }).end()
      return
    }
    if (take(f.delay)) {
      await pause(res, f.delay.value)
      if (res.destroyed) return
    }
    if (take(f.status)) {
      const headers: http.OutgoingHttpHeaders = { "content-type": "text/plain" }
      if (f.status.value.retryAfter !== undefined) headers["retry-after"] = f.status.value.retryAfter
      res.writeHead(f.status.value.code, headers).end(`injected ${f.status.value.code}\n`)
      return
    }
    const content = rel === "PULP_MANIFEST" ? Buffer.from(manifest()) : files.get(rel)
    if (content === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n")
      return
    }
    const body = take(f.corrupt) ? Buffer.from(content.map((b) => b ^ 0xff)) : content
    const headers: http.OutgoingHttpHeaders = { "content-type": "application/octet-stream" }
    if (!f.chunked) headers["content-length"] = body.length
    const half = body.subarray(0, Math.floor(body.length / 2))

    if (take(f.reset)) {
      res.writeHead(200, headers)
      res.write(half, () => res.socket?.resetAndDestroy())
      return
    }
    if (take(f.truncate)) {
      res.writeHead(200, headers)
      // A clean end of the connection (FIN), short of the announced length.
      res.write(half, () => res.socket?.end())
      return
    }
    res.on("close", () => {
      if (!res.writableFinished) bump(aborted, rel)
    })
    res.writeHead(200, headers)
    let rest = body
    if (take(f.slow)) {
      if (!(await writeAll(res, half))) return
      await pause(res, f.slow.value)
      rest = body.subarray(half.length)
    }
    if (await writeAll(res, rest)) res.end()
  }

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(req, res).catch(() => res.destroy())
  }
  const server = opts.tls === undefined
    ? http.createServer(onRequest)
    : https.createServer({
      key: opts.tls.key,
      cert: opts.tls.cert,
      ...(opts.tls.ca !== undefined ? { ca: opts.tls.ca } : {}),
      requestCert: opts.tls.requestCert === true,
      rejectUnauthorized: opts.tls.requestCert === true
    }, onRequest)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  const base = `${opts.tls === undefined ? "http" : "https"}://127.0.0.1:${port}${prefix}`
  const fileUrl = (p: string) => base + p.split("/").map(encodeURIComponent).join("/")

  return {
    url: `${base}PULP_MANIFEST`,
    base,
    fileUrl,
    setFile: (p, c) => void files.set(p, Buffer.from(c)),
    removeFile: (p) => void files.delete(p),
    setManifestOverride: (text) => void (manifestOverride = text),
    requests,
    aborted,
    log,
    sha256: (p) => {
      const c = files.get(p)
      if (c === undefined) throw new Error(`no file ${p}`)
      return sha256(c)
    },
    faults: {
      fail5xx: (p, times, status = 503) => void (faultsOf(p).status = { value: { code: status }, left: times }),
      failStatus: (p, status, times, retryAfter) =>
        void (faultsOf(p).status = { value: { code: status, retryAfter }, left: times }),
      reset: (p, times) => void (faultsOf(p).reset = { value: null, left: times }),
      truncate: (p, times) => void (faultsOf(p).truncate = { value: null, left: times }),
      corrupt: (p, times = Infinity) => void (faultsOf(p).corrupt = { value: null, left: times }),
      slow: (p, ms, times = Infinity) => void (faultsOf(p).slow = { value: ms, left: times }),
      delay: (p, ms, times = Infinity) => void (faultsOf(p).delay = { value: ms, left: times }),
      chunked: (p) => void (faultsOf(p).chunked = true),
      redirect: (p, to, times = Infinity, status = 302) => void (faultsOf(p).redirect = { value: { to, status }, left: times }),
      clear: (p) => void (p === undefined ? faults.clear() : faults.delete(p))
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * `n` files with deterministic pseudo-random contents and sizes in [minSize, maxSize], at
 * `dir<i % 3>/file-<i>.bin`.
 */
export const makeFiles = (
  n: number,
  opts: { readonly minSize?: number; readonly maxSize?: number; readonly seed?: number } = {}
): Record<string, Buffer> => {
  const minSize = opts.minSize ?? 0
  const maxSize = opts.maxSize ?? 4096
  // Seeded: the same fixtures on every run.
  const next = mulberry32(opts.seed ?? 1)
  const out: Record<string, Buffer> = {}
  for (let i = 0; i < n; i++) {
    const size = minSize + (next() % (maxSize - minSize + 1))
    const b = Buffer.alloc(size)
    for (let at = 0; at < size; at += 4) {
      const w = next()
      for (let k = 0; k < 4 && at + k < size; k++) b[at + k] = (w >>> (8 * k)) & 0xff
    }
    out[`dir${i % 3}/file-${i}.bin`] = b
  }
  return out
}
