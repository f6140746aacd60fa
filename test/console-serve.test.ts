/**
 * The console's request handler (src/console/serve.ts) on a plain Node HTTP server: what it
 * answers and what it leaves to the next handler, content types, caching, compression, and that
 * no path reaches a file outside the built bundle.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { gunzipSync } from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { consoleBundle, serveConsole } from "../src/console/serve.js"

let server: http.Server
let base: string

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (serveConsole(req, res)) return
    res.writeHead(418, { "content-type": "text/plain" })
    res.end("next handler")
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

/** A raw request (fetch would normalise `..` and `%2e%2e` away before sending). */
const raw = (path: string, o: { method?: string; headers?: Record<string, string> } = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${base}/`, { method: o.method ?? "GET", path, headers: o.headers }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on("error", reject)
    req.end()
  })

const assetNames = async () => [...(await consoleBundle()).assets.keys()]

describe("GET /ui/", () => {
  it("serves the page with no-cache, a CSP that allows only this origin, and links to hashed assets", async () => {
    const r = await raw("/ui/")
    expect(r.status).toBe(200)
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(r.headers["cache-control"]).toBe("no-cache")
    expect(r.headers["content-security-policy"]).toContain("default-src 'self'")
    expect(r.headers["x-content-type-options"]).toBe("nosniff")
    const html = r.body.toString()
    const scripts = [...html.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]!)
    expect(scripts.some((s) => /^assets\/app-\w+\.js$/.test(s))).toBe(true)
    expect(scripts.some((s) => /^assets\/app-\w+\.css$/.test(s))).toBe(true)
    // Nothing from another origin.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
    expect((await raw("/ui/index.html")).body.equals(r.body)).toBe(true)
    expect((await raw("/ui/?x=1")).status).toBe(200)
  })

  it("answers 304 to the page's etag and HEAD without a body", async () => {
    const r = await raw("/ui/")
    const again = await raw("/ui/", { headers: { "if-none-match": r.headers.etag! } })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    const head = await raw("/ui/", { method: "HEAD" })
    expect(head.status).toBe(200)
    expect(head.headers["content-length"]).toBe(String(r.body.length))
    expect(head.body.length).toBe(0)
  })

  it("redirects /ui to /ui/ (keeping the query)", async () => {
    const r = await raw("/ui?a=b")
    expect(r.status).toBe(308)
    expect(r.headers.location).toBe("/ui/?a=b")
    expect((await raw("/ui")).headers.location).toBe("/ui/")
  })
})

describe("GET /ui/assets/*", () => {
  it("serves every built asset with its type, cached for a year as immutable, gzipped when asked", async () => {
    const names = await assetNames()
    expect(names.some((n) => /^layout-worker-\w+\.js$/.test(n))).toBe(true)
    const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/, map: /^application\/json/ }
    for (const name of names) {
      const r = await raw(`/ui/assets/${name}`)
      expect(r.status, name).toBe(200)
      expect(r.headers["content-type"], name).toMatch(types[name.split(".").pop()!]!)
      expect(r.headers["cache-control"]).toBe("public, max-age=31536000, immutable")
      const gz = await raw(`/ui/assets/${name}`, { headers: { "accept-encoding": "gzip, br" } })
      if (gz.headers["content-encoding"] === "gzip") expect(gunzipSync(gz.body).equals(r.body), name).toBe(true)
      else expect(gz.body.equals(r.body)).toBe(true)
    }
    const app = names.find((n) => /^app-\w+\.js$/.test(n))!
    expect((await raw(`/ui/assets/${app}`, { headers: { "accept-encoding": "gzip" } })).headers["content-encoding"]).toBe("gzip")
  })

  it("the app bundle carries no server code", async () => {
    const app = (await assetNames()).find((n) => /^app-\w+\.js$/.test(n))!
    const js = (await raw(`/ui/assets/${app}`)).body.toString()
    for (const server of ["drizzle", "pg-pool", "node:crypto", "@effect/platform"]) expect(js, server).not.toContain(server)
  })

  it("404 for unknown assets and for anything that tries to leave the bundle", async () => {
    for (const path of [
      "/ui/assets/nope.js",
      "/ui/assets/",
      "/ui/assets/../../package.json",
      "/ui/assets/..%2f..%2fpackage.json",
      "/ui/assets/%2e%2e/%2e%2e/package.json",
      "/ui/../package.json",
      "/ui/assets/app.js/",
      "/ui/console/index.html",
      "/ui/src/main.tsx",
      "/ui/index.html/..",
      "/ui/assets/%00",
      "/ui/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV"
    ]) {
      const r = await raw(path)
      expect(r.status, path).toBe(404)
      expect(r.body.toString(), path).toBe("not found\n")
    }
  })

  it("GET and HEAD only", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const r = await raw("/ui/", { method })
      expect(r.status, method).toBe(405)
      expect(r.headers.allow).toBe("GET, HEAD")
    }
  })
})

describe("other paths", () => {
  it("are left to the next handler, untouched", async () => {
    for (const path of ["/", "/api/v1/graphs", "/uix", "/ui-x/", "/content/ui/x", "/healthz"]) {
      const r = await raw(path)
      expect(r.status, path).toBe(418)
    }
  })
})
