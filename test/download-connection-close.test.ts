/**
 * The downloader against upstreams that close the connection after a response (Connection: close,
 * or a body that ends with the connection) while the sink has not read the body yet, so that the
 * socket is paused for backpressure when the connection's end arrives. undici 7 crashes the whole
 * process there (an assertion in a socket event handler) unless the downloader keeps the parser
 * running at that point; these tests fail with an unhandled AssertionError without that.
 *
 * The upstreams are raw TCP servers: node:http would keep the connection alive.
 */
import { createHash } from "node:crypto"
import * as net from "node:net"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { download, DownloadError, PAUSE_AT } from "../src/content/download.js"

interface RawUpstream {
  readonly url: string
  /** Resolves when the upstream's side of the first connection has closed. */
  readonly closed: Promise<void>
  /** Whether the upstream wrote its whole response before the connection closed. */
  readonly wroteAll: () => boolean
  readonly close: () => Promise<void>
}

/** Answer the first request with `head` then `body` (in 64 KiB writes, with backpressure), then close. */
const rawUpstream = async (head: string, body: Buffer): Promise<RawUpstream> => {
  let closed!: () => void
  const closedP = new Promise<void>((resolve) => (closed = resolve))
  let finished = false
  const sockets = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on("error", () => undefined)
    sock.on("close", () => {
      sockets.delete(sock)
      closed()
    })
    sock.once("data", async () => {
      sock.write(`HTTP/1.1 200 OK\r\n${head}Connection: close\r\n\r\n`)
      for (let at = 0; at < body.length && !sock.destroyed; at += 64 << 10) {
        if (!sock.write(body.subarray(at, at + (64 << 10)))) {
          await new Promise<void>((resolve) => {
            sock.once("drain", resolve)
            sock.once("close", resolve)
          })
        }
      }
      if (!sock.destroyed) sock.end(() => (finished = true))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/file.bin`,
    closed: closedP,
    wroteAll: () => finished,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

/** A sink that reads nothing until `before` resolves, then hashes the body. */
const lateSink = (before: Promise<void>) => (body: AsyncIterable<Uint8Array>) =>
  Effect.promise(async () => {
    await before
    const h = createHash("sha256")
    let bytes = 0
    for await (const chunk of body) {
      h.update(chunk)
      bytes += chunk.byteLength
    }
    return { bytes, sha256: h.digest("hex") }
  })

const opts = { timeoutMs: 30_000, retries: 0, maxRedirects: 0 }

/**
 * `work`, failing as soon as an exception escapes to the process (the crash this file guards
 * against would otherwise leave the test waiting for a connection that nobody closes).
 */
const orCrash = async <A>(work: Promise<A>): Promise<A> => {
  let listener: ((e: Error) => void) | undefined
  const crashed = new Promise<never>((_, reject) => {
    listener = (e) => reject(new Error(`uncaught exception while downloading: ${e.message}`))
    process.on("uncaughtException", listener)
  })
  try {
    return await Promise.race([work, crashed])
  } finally {
    process.off("uncaughtException", listener!)
  }
}

describe("an upstream that closes the connection while the body waits for the sink", () => {
  let up: RawUpstream | undefined
  afterEach(async () => {
    await up?.close()
    up = undefined
  })

  // The body is exactly the amount at which the socket would be paused: its last chunk would pause
  // it, with the connection's end next.
  const body = Buffer.alloc(PAUSE_AT, 0x61)

  it("with a Content-Length: the body completes, and the sink gets all of it", async () => {
    up = await rawUpstream(`Content-Length: ${body.length}\r\n`, body)
    // The sink starts reading only once the upstream's side is closed: everything has arrived.
    const got = await orCrash(Effect.runPromise(download(up.url, { size: body.length, sha256: sha256(body) }, lateSink(up.closed), opts)))
    expect(got).toEqual({ bytes: body.length, sha256: sha256(body) })
  })

  it("with a body that ends with the connection: the same", async () => {
    up = await rawUpstream("", body)
    const got = await orCrash(Effect.runPromise(download(up.url, { size: body.length, sha256: sha256(body) }, lateSink(up.closed), opts)))
    expect(got).toEqual({ bytes: body.length, sha256: sha256(body) })
  })

  it("a body that ends with the connection and runs past the expected size is cut off there, not buffered", async () => {
    const huge = Buffer.alloc(64 << 20, 0x62)
    up = await rawUpstream("", huge)
    const expected = { size: 100_000, sha256: sha256(huge.subarray(0, 100_000)) }
    const error = await orCrash(Effect.runPromise(Effect.flip(download(up.url, expected, lateSink(up.closed), opts))))
    expect(error).toBeInstanceOf(DownloadError)
    expect(error).toMatchObject({ reason: "too_large" })
    expect(error.message).toMatch(/more than the expected 100000 bytes$/)
    // The connection was closed long before the upstream could write 64 MiB.
    expect(up.wroteAll()).toBe(false)
  })
})
