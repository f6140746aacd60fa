/**
 * The floor of Node's HTTP stack for bench:content: a bare `node:http` server answering GETs for
 * the files under a directory from memory, with the headers cairn's content app sends for a cached
 * small file (etag, accept-ranges, content-type, content-length), and nothing else: no routing
 * table, no conditional or range requests, no metrics. What it spends per request is what any
 * Node.js server spends, so cairn's CPU per request above it is cairn's own, and nginx's below it
 * is what Node itself costs. Run as its own process (`node --import tsx node-floor.ts <dir>`); it
 * prints `listening <port>` once it answers.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import { createServer } from "node:http"
import * as path from "node:path"

const root = process.argv[2]
if (root === undefined) throw new Error("usage: node-floor.ts <directory>")

const files = new Map<string, { readonly body: Buffer; readonly etag: string }>()
for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue
  const full = path.join(entry.parentPath, entry.name)
  const body = await fs.readFile(full)
  files.set(`/${path.relative(root, full)}`, { body, etag: `"${createHash("sha256").update(body).digest("hex")}"` })
}

const server = createServer((req, res) => {
  const file = files.get(req.url ?? "")
  if (file === undefined) {
    res.writeHead(404, { "content-length": 0 })
    return res.end()
  }
  res.writeHead(200, {
    etag: file.etag,
    "accept-ranges": "bytes",
    "content-type": "application/octet-stream",
    "content-length": file.body.length
  })
  res.end(file.body)
})
server.listen(0, "127.0.0.1", () => {
  const address = server.address()
  console.log(`listening ${typeof address === "object" && address !== null ? address.port : ""}`)
})
process.on("SIGTERM", () => process.exit(0))
