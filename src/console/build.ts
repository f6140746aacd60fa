/**
 * The web console's bundle, built in memory by esbuild from the sources in `console/` the first
 * time a process is asked for it (not at start: most processes never serve it), then kept for the
 * life of the process. Nothing is written to disk and nothing is fetched: every asset comes from
 * this repository and node_modules, so a fresh clone serves the console after `npm install`, and a
 * changed source is served by the next process without a build step (DESIGN.md, "The console").
 *
 * Two entry points: the app, and the layout worker (dagre in a Web Worker, so that laying out a
 * large graph never freezes the page). The app learns the worker's hashed file name at build time.
 * Asset names carry a content hash, so they can be cached for ever; index.html cannot.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"

export interface Asset {
  readonly body: Buffer
  /** gzip of `body`, when that is smaller. */
  readonly gzip?: Buffer | undefined
  readonly type: string
  readonly etag: string
}

export interface ConsoleBundle {
  readonly index: Asset
  /** By file name, as index.html and the app refer to them under /ui/assets/. */
  readonly assets: ReadonlyMap<string, Asset>
}

/** The repository's `console/` directory (browser sources and index.html). */
export const CONSOLE_DIR = fileURLToPath(new URL("../../console/", import.meta.url))

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml"
}

const asset = (body: Buffer, type: string): Asset => {
  const gz = body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined
  return {
    body,
    gzip: gz !== undefined && gz.length < body.length ? gz : undefined,
    type,
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`
  }
}

export const buildConsole = async (): Promise<ConsoleBundle> => {
  const esbuild = await import("esbuild")
  const common = {
    absWorkingDir: CONSOLE_DIR,
    bundle: true,
    write: false,
    minify: true,
    sourcemap: "linked",
    format: "esm",
    target: "es2022",
    platform: "browser",
    outdir: "assets",
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: path.join(CONSOLE_DIR, "tsconfig.json"),
    logLevel: "silent",
    legalComments: "none"
  } as const
  const assets = new Map<string, Asset>()
  const collect = (files: ReadonlyArray<{ path: string; contents: Uint8Array }>) => {
    for (const f of files) {
      const name = path.basename(f.path)
      assets.set(name, asset(Buffer.from(f.contents), TYPES[path.extname(name)] ?? "application/octet-stream"))
    }
    return files.map((f) => path.basename(f.path))
  }
  const worker = collect((await esbuild.build({ ...common, entryPoints: { "layout-worker": "src/layout-worker.ts" } })).outputFiles)
  const workerJs = worker.find((n) => n.endsWith(".js"))!
  const app = collect((await esbuild.build({
    ...common,
    entryPoints: { app: "src/main.tsx" },
    define: { __LAYOUT_WORKER__: JSON.stringify(`assets/${workerJs}`) }
  })).outputFiles)
  const appJs = app.find((n) => n.endsWith(".js"))!
  const appCss = app.find((n) => n.endsWith(".css"))
  const template = await fs.readFile(path.join(CONSOLE_DIR, "index.html"), "utf8")
  const html = template
    .replace("<!--styles-->", appCss ? `<link rel="stylesheet" href="assets/${appCss}">` : "")
    .replace("<!--scripts-->", `<script type="module" src="assets/${appJs}"></script>`)
  return { index: asset(Buffer.from(html), TYPES[".html"]!), assets }
}
