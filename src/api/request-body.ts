/**
 * Request bodies as the API reads them: JSON only, at most `CAIRN_BODY_MAX_BYTES`, strict UTF-8,
 * nested at most `MAX_BODY_DEPTH` levels, and no string (key or value) with a NUL character or an
 * unpaired surrogate: PostgreSQL cannot store the first, and the second would be stored as U+FFFD
 * in a text column, silently changing what the client sent.
 *
 * HttpApi reads a payload through the request's `text` (JSON and forms), `multipart` or
 * `arrayBuffer`, without a size limit, and would happily decode a form or a multipart body (written
 * to temporary files) into a payload. `limitBody` gives the API a view of the request whose body
 * readers enforce the rules above; everything else (headers, url, the Node request that uploads
 * stream from) is the request itself. Nothing is read until an endpoint asks for its payload, so
 * authorization runs first, and endpoints without a payload never read the body at all.
 */
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Effect, Stream } from "effect"
import type { IncomingMessage } from "node:http"
import { BadRequest, PayloadTooLarge, UnsupportedMediaType } from "./errors.js"

/** Deeper JSON is refused before anything walks it (schema decoding and its messages recurse). */
export const MAX_BODY_DEPTH = 64

/**
 * What is left of a refused body is read and thrown away, so that the client, still sending,
 * gets our answer rather than a reset; past `DRAIN_LIMIT` more bytes the connection is closed.
 */
const DRAIN_LIMIT = 64 * 1024 * 1024

const discardRest = (req: IncomingMessage) => {
  if (req.readableEnded || req.destroyed) return
  let discarded = 0
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length
    if (discarded > DRAIN_LIMIT) req.socket?.destroy()
  })
  req.resume()
}

/** `application/json` (any parameters), or no content type at all (which HttpApi takes as JSON). */
const isJson = (contentType: string | undefined) =>
  contentType === undefined || contentType.split(";")[0]!.trim().toLowerCase() === "application/json"

/** Nesting depth of JSON text, counted without parsing (brackets inside strings do not count). */
const jsonDepth = (text: string, max: number) => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return depth
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return depth
}

const decode = (bytes: Buffer): Effect.Effect<string, BadRequest> => {
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return Effect.fail(new BadRequest({ message: "the request body is not valid UTF-8" }))
  }
  if (jsonDepth(text, MAX_BODY_DEPTH) > MAX_BODY_DEPTH) {
    return Effect.fail(
      new BadRequest({ message: `JSON bodies may nest at most ${MAX_BODY_DEPTH} levels deep`, details: { limit: MAX_BODY_DEPTH } })
    )
  }
  return Effect.succeed(text)
}

const readAtMost = (req: IncomingMessage, announced: string | undefined, limit: number) =>
  Effect.async<string, BadRequest | PayloadTooLarge>((resume) => {
    const tooLarge = () =>
      new PayloadTooLarge({
        message: `request bodies are limited to ${limit} bytes (CAIRN_BODY_MAX_BYTES); uploads have their own limit`,
        details: { limit }
      })
    if (announced !== undefined && /^[0-9]+$/.test(announced) && Number(announced) > limit) {
      discardRest(req)
      return resume(Effect.fail(tooLarge()))
    }
    const chunks: Array<Buffer> = []
    let size = 0
    const stop = () => {
      req.off("data", onData)
      req.off("end", onEnd)
      req.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) return void chunks.push(chunk)
      stop()
      discardRest(req)
      resume(Effect.fail(tooLarge()))
    }
    const onEnd = () => {
      stop()
      resume(decode(Buffer.concat(chunks)))
    }
    const onError = (e: Error) => {
      stop()
      resume(Effect.fail(new BadRequest({ message: `the request body could not be read: ${e.message}` })))
    }
    req.on("data", onData)
    req.on("end", onEnd)
    req.on("error", onError)
    return Effect.sync(stop)
  })

/** A lone UTF-16 surrogate (JSON's `"\ud800"` escape makes one), or U+0000. */
const UNSTORABLE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\u0000/

/** The path of the first string, key or value, that cannot be stored; the body is at most MAX_BODY_DEPTH deep. */
const unstorable = (value: unknown): string | undefined => {
  const stack: Array<[unknown, string]> = [[value, ""]]
  while (stack.length > 0) {
    const [v, path] = stack.pop()!
    if (typeof v === "string") {
      if (UNSTORABLE.test(v)) return path || "the body"
    } else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        const at = path === "" ? k : `${path}.${k}`
        if (UNSTORABLE.test(k)) return `the key ${JSON.stringify(at)}`
        stack.push([child, at])
      }
    }
  }
  return undefined
}

const parse = (text: string): Effect.Effect<unknown, BadRequest> => {
  let value: unknown
  try {
    value = text === "" ? null : JSON.parse(text)
  } catch (e) {
    return Effect.fail(new BadRequest({ message: `the request body is not valid JSON: ${(e as Error).message}` }))
  }
  const at = unstorable(value)
  return at === undefined
    ? Effect.succeed(value)
    : Effect.fail(
      new BadRequest({ message: `${at}: strings may not contain NUL (U+0000) or unpaired surrogates`, details: { path: at } })
    )
}

/**
 * The request as the API should see it. The body readers fail (as HttpApi turns their failures into
 * defects, ContractErrors finds these errors in the cause) with 415 for a media type other than
 * JSON, 413 past `limit` bytes, 400 for invalid UTF-8 or JSON, too deep nesting, or unstorable strings.
 */
export const limitBody = (request: HttpServerRequest.HttpServerRequest, limit: number): HttpServerRequest.HttpServerRequest => {
  const contentType = request.headers["content-type"]
  const notJson = () =>
    Effect.fail(
      new UnsupportedMediaType({
        message: `request bodies are JSON (content-type: application/json), not ${JSON.stringify(contentType)}`
      })
    )
  const text: Effect.Effect<string, BadRequest | PayloadTooLarge | UnsupportedMediaType> = isJson(contentType)
    ? Effect.runSync(Effect.cached(Effect.suspend(() =>
      readAtMost(NodeHttpServerRequest.toIncomingMessage(request), request.headers["content-length"], limit)
    )))
    : notJson()
  const json = Effect.flatMap(text, parse)
  // The platform's `urlParamsBody` reads `this.text`: it sees the override.
  return Object.create(request, {
    text: { get: () => text },
    json: { get: () => json },
    arrayBuffer: { get: notJson },
    multipart: { get: notJson },
    multipartStream: { get: () => Stream.fromEffect(notJson()) }
  })
}
