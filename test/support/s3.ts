/**
 * A real S3-protocol server for tests, and a fault-injecting proxy to put in front of it.
 *
 * The server is s3rver (in-process, on a temporary directory). It speaks the protocol and keeps
 * objects on disk, but it is not AWS: it checks that an access key id exists and that a presigned
 * URL has not expired, yet it does NOT verify SigV4 signatures or `x-amz-checksum-*` headers, does
 * not decode aws-chunked bodies, and has no multipart abort/list or UploadPartCopy. Tests must not
 * rely on it to refuse bad bytes or bad signatures: cairn checks what it needs itself.
 *
 * One defect of s3rver is worked around here: deleting an object removes its directory when that
 * empties it, racing a concurrent PUT into the same directory, whose write then fails unseen (the
 * server answers 200, nothing is stored, and the error surfaces as an uncaught exception in this
 * process). cairn notices what did not land (it checks every upload), but the orphan-cleanup race
 * tests delete and store the same digests at the same time on purpose, so the store here keeps
 * its empty directories (`deleteObject` without the pruning).
 *
 * The proxy is a plain HTTP reverse proxy the test controls: it passes requests through, or
 * answers 503 SlowDown / 500 InternalError with S3's XML error body, or holds requests without an
 * answer (a store that is slow), or resets connections, or stops listening (a store that is down),
 * or adds a byte to every PUT body (a store that stores something else than it was sent).
 */
import * as fs from "node:fs"
import * as http from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import S3rver from "s3rver"
import { Redacted } from "effect"
import type { StorageConfig } from "../../src/config/config.js"
import type { S3StorageOptions } from "../../src/content/storage-s3.js"

export const S3RVER_KEY = "S3RVER"

export interface S3Server {
  readonly endpoint: string
  readonly bucket: string
  readonly directory: string
  /** Options for `S3ArtifactStorage` against this server, under `prefix`. */
  readonly options: (prefix?: string, endpoint?: string) => S3StorageOptions
  /** The configuration (`CairnConfig.storage`) of a store on this server, under `prefix`. */
  readonly storage: (prefix?: string, endpoint?: string) => Extract<StorageConfig, { kind: "s3" }>
  /** The environment a cairn process needs to use this server (under `prefix`). */
  readonly env: (prefix?: string, endpoint?: string) => Record<string, string>
  readonly close: () => Promise<void>
}

let buckets = 0

const require = createRequire(import.meta.url)
const FilesystemStore = require("s3rver/lib/stores/filesystem.js") as {
  prototype: { getResourcePath(bucket: string, key: string | undefined, what: string): string; deleteObject(bucket: string, key: string): Promise<void> }
}
FilesystemStore.prototype.deleteObject = async function(bucket, key) {
  await Promise.all(["object", "object.md5", "metadata.json"].map((what) =>
    fs.promises.unlink(this.getResourcePath(bucket, key, what)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e
    })
  ))
}

/** s3rver on 127.0.0.1, a free port, with one bucket. */
export const startS3 = async (): Promise<S3Server> => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-s3-"))
  const bucket = `cairn-${process.pid}-${buckets++}`
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] })
  const { port } = await server.run()
  const endpoint = `http://127.0.0.1:${port}`
  return {
    endpoint,
    bucket,
    directory,
    options: (prefix = "", at = endpoint) => ({
      bucket,
      prefix,
      endpoint: at,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY }
    }),
    storage: (prefix = "", at = endpoint) => ({
      kind: "s3",
      bucket,
      prefix,
      endpoint: at,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: Redacted.make(S3RVER_KEY), secretAccessKey: Redacted.make(S3RVER_KEY), sessionToken: undefined }
    }),
    env: (prefix = "", at = endpoint) => ({
      CAIRN_STORAGE: "s3",
      CAIRN_S3_BUCKET: bucket,
      CAIRN_S3_PREFIX: prefix,
      CAIRN_S3_ENDPOINT: at,
      CAIRN_S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: S3RVER_KEY,
      AWS_SECRET_ACCESS_KEY: S3RVER_KEY
    }),
    close: async () => {
      await server.close()
      fs.rmSync(directory, { recursive: true, force: true })
    }
  }
}

/** The objects stored under `prefix` in the bucket: key -> bytes (s3rver keeps `<key>._S3rver_object`). */
export const storedObjects = (s3: S3Server, prefix = ""): Map<string, Buffer> => {
  const root = path.join(s3.directory, s3.bucket)
  const out = new Map<string, Buffer>()
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith("._S3rver_object")) {
        const key = path.relative(root, p).slice(0, -"._S3rver_object".length).split(path.sep).join("/")
        if (key.startsWith(prefix)) out.set(key, fs.readFileSync(p))
      }
    }
  }
  walk(root)
  return out
}

export type Fault = "none" | "slowdown" | "internal" | "hang" | "reset" | "pad-puts"

export interface FaultProxy {
  readonly endpoint: string
  /** From now on, every request meets `fault`. */
  readonly set: (fault: Fault) => void
  /** Requests seen so far (all of them, whatever they met). */
  readonly requests: () => number
  /** Stop listening (connections are refused), or listen again on the same port. */
  readonly down: () => Promise<void>
  readonly up: () => Promise<void>
  readonly close: () => Promise<void>
}

const s3Error = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`

export const startFaultProxy = async (target: string): Promise<FaultProxy> => {
  const upstream = new URL(target)
  let fault: Fault = "none"
  let seen = 0
  const held = new Set<http.ServerResponse>()
  const sockets = new Set<import("node:net").Socket>()

  const answer = (req: http.IncomingMessage, res: http.ServerResponse, status: number, code: string, message: string) => {
    // Read the request to its end first, so that the client gets the answer and not a broken pipe.
    req.resume()
    req.on("end", () => {
      const body = req.method === "HEAD" ? "" : s3Error(code, message)
      res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) })
      res.end(body)
    })
  }

  const server = http.createServer((req, res) => {
    seen++
    switch (fault) {
      case "slowdown":
        return answer(req, res, 503, "SlowDown", "Please reduce your request rate.")
      case "internal":
        return answer(req, res, 500, "InternalError", "We encountered an internal error. Please try again.")
      case "hang":
        // Never answered; released (destroyed) when the fault changes or the proxy closes.
        held.add(res)
        return
      case "reset":
        return void req.socket.destroy()
      case "pad-puts":
      case "none": {
        const pad = fault === "pad-puts" && req.method === "PUT" && req.headers["content-length"] !== undefined
        const headers = pad ? { ...req.headers, "content-length": String(Number(req.headers["content-length"]) + 1) } : req.headers
        const out = http.request({
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers
        }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers)
          up.pipe(res)
        })
        out.on("error", () => res.destroy())
        req.pipe(out, { end: !pad })
        if (pad) req.on("end", () => out.end(Buffer.from("!")))
      }
    }
  })
  server.on("connection", (s) => {
    sockets.add(s)
    s.on("close", () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port

  const release = () => {
    for (const r of held) r.destroy()
    held.clear()
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      release()
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  return {
    endpoint: `http://127.0.0.1:${port}`,
    set: (f) => {
      release()
      fault = f
    },
    requests: () => seen,
    down: stop,
    up: () => new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject)
        resolve()
      })
    }),
    close: () => server.listening ? stop() : Promise.resolve()
  }
}

/** A plain SDK client of the server, for tests that put things behind the store's back. */
export const rawClient = (s3: S3Server) => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"
  const o = s3.options()
  return new S3Client({
    region: o.region,
    endpoint: o.endpoint,
    forcePathStyle: true,
    credentials: o.credentials!,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })
}

/** Put `bytes` at `key`, behind the store's back. */
export const putRaw = async (s3: S3Server, key: string, bytes: Buffer) => {
  const client = rawClient(s3)
  try {
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: bytes }))
  } finally {
    client.destroy()
  }
}

/** Make the object at `key` look `ageMs` old (s3rver's LastModified is its file's mtime). */
export const backdate = (s3: S3Server, key: string, ageMs: number) => {
  const file = path.join(s3.directory, s3.bucket, `${key}._S3rver_object`)
  const then = new Date(Date.now() - ageMs)
  fs.utimesSync(file, then, then)
}
