/**
 * POST /api/v1/uploads. Not a JSON call, so not the generated client: the body is the file's bytes,
 * streamed (fetch with a stream body and `duplex: "half"`), never held in memory.
 *
 * The file is read twice: once to compute its sha256, then to send it with `x-checksum-sha256`, so
 * that the server refuses (and keeps nothing of) a file that changed or was damaged on the way.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { Readable, Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { baseOf, type ClientOptions } from "./effect.js"
import { CairnError, fromErrorResponse, unreachable } from "./errors.js"

export interface UploadResult {
  readonly artifact: string
  readonly sha256: string
  readonly size: number
}

export interface UploadOptions {
  /** Called as bytes leave: (sent, total). */
  readonly onProgress?: ((sent: number, total: number) => void) | undefined
  readonly signal?: AbortSignal | undefined
}

export const sha256OfFile = async (path: string, signal?: AbortSignal): Promise<string> => {
  const hash = createHash("sha256")
  await pipeline(fs.createReadStream(path), hash, { signal })
  return hash.digest("hex")
}

/** Upload a file: its digest first, then its bytes as a stream. */
export const uploadFile = async (conn: ClientOptions, path: string, opts: UploadOptions = {}): Promise<UploadResult> => {
  const { size } = await fs.promises.stat(path)
  const sha256 = await sha256OfFile(path, opts.signal)
  let sent = 0
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sent += chunk.length
      opts.onProgress?.(sent, size)
      done(null, chunk)
    }
  })
  const source = fs.createReadStream(path)
  source.on("error", (e) => counter.destroy(e))
  const body = Readable.toWeb(source.pipe(counter)) as ReadableStream<Uint8Array>
  return post(conn, body, { size, sha256, signal: opts.signal })
}

/** Upload bytes held in memory. */
export const uploadBytes = async (conn: ClientOptions, bytes: Uint8Array, opts: UploadOptions = {}): Promise<UploadResult> => {
  const sha256 = createHash("sha256").update(bytes).digest("hex")
  const result = await post(conn, bytes, { size: bytes.length, sha256, signal: opts.signal })
  opts.onProgress?.(bytes.length, bytes.length)
  return result
}

const post = async (
  conn: ClientOptions,
  body: ReadableStream<Uint8Array> | Uint8Array,
  meta: { readonly size: number; readonly sha256: string; readonly signal?: AbortSignal | undefined }
): Promise<UploadResult> => {
  const base = baseOf(conn.url)
  let res: Response
  try {
    res = await fetch(`${base}/api/v1/uploads`, {
      method: "POST",
      headers: {
        "content-type": "application/octet-stream",
        // Announced so that the server can refuse a file over its limit before any byte is sent.
        // fetch sets it itself for bytes in memory; a second one would be joined to the first
        // ("n, n"), which an undici dispatcher refuses.
        ...(body instanceof Uint8Array ? {} : { "content-length": String(meta.size) }),
        "x-checksum-sha256": meta.sha256,
        ...(conn.token ? { authorization: `Bearer ${conn.token}` } : {})
      },
      body,
      // Required by fetch for a stream body: the request is sent while the answer may already arrive.
      duplex: "half",
      signal: meta.signal
    } as RequestInit)
  } catch (e) {
    if (meta.signal?.aborted) throw new CairnError({ code: "aborted", message: "the upload was aborted", cause: e })
    throw unreachable(base, e)
  }
  const text = await res.text()
  if (!res.ok) throw fromErrorResponse(base, res.status, text, conn.token)
  try {
    return JSON.parse(text) as UploadResult
  } catch {
    throw new CairnError({ code: "unexpected_response", status: res.status, message: `the server at ${base} answered the upload with something that is not JSON` })
  }
}
