/**
 * POST /api/v1/uploads: stream the request body into the artifact store and make an `uploads` row
 * own the artifact until it expires (src/content/artifacts.ts explains ownership).
 *
 * The endpoint has no payload schema, so HttpApi leaves the body unread; the handler hands the
 * Node request's async iterator to `storage.put`, which hashes and writes it chunk by chunk (it is
 * never held in memory) and stops reading at the size limit.
 */
import { HttpApiBuilder, type HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { sql } from "drizzle-orm"
import { Data, Duration, Effect } from "effect"
import type { IncomingMessage } from "node:http"
import { monotonicFactory } from "ulid"
import { CairnConfig } from "../../config/config.js"
import { txRows } from "../../db/client.js"
import { type ArtifactOwner, storeArtifact } from "../../content/artifacts.js"
import { ArtifactStorage, type ArtifactStorageShape, type PutResult } from "../../content/storage.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import { BadRequest, PayloadTooLarge, ServiceUnavailable } from "../errors.js"

const newId = monotonicFactory()

type PutError = Effect.Effect.Error<ReturnType<ArtifactStorageShape["put"]>>

/**
 * `storeArtifact` calls `put` again when an orphan cleanup removed identical bytes between our
 * put and our adoption; a request body cannot be read twice, so the client must send it again.
 */
class BodyConsumed extends Data.TaggedError("BodyConsumed")<{}> {}

/** The upload owns its artifact until `expires_at` (the orphan cleanup honours it until then). */
const ownedByUpload = (ttl: Duration.Duration): ArtifactOwner => (tx, artifactId) =>
  txRows(tx, sql`INSERT INTO uploads (id, artifact_id, expires_at)
                 VALUES (${newId()}, ${artifactId}, now() + ${Duration.toMillis(ttl)} * interval '1 millisecond')`)
    .pipe(Effect.asVoid)

/**
 * What is left of a refused body is read and thrown away, as Node does for bodies nobody read:
 * closing the connection instead would reset it under the client while it is still sending, and
 * it would get a broken pipe instead of our answer. Past `DRAIN_LIMIT` more bytes we stop being
 * polite and close it anyway.
 */
const DRAIN_LIMIT = 64 * 1024 * 1024

const discardRest = (req: IncomingMessage) =>
  Effect.sync(() => {
    if (req.readableEnded || req.destroyed) return
    let discarded = 0
    req.on("data", (chunk: Buffer) => {
      discarded += chunk.length
      if (discarded > DRAIN_LIMIT) req.socket.destroy()
    })
    req.resume()
  })

const tooLarge = (limit: number) => Effect.fail(new PayloadTooLarge({ message: `uploads are limited to ${limit} bytes` }))

const upload = (request: HttpServerRequest.HttpServerRequest, checksum: string | undefined) => {
  const req = NodeHttpServerRequest.toIncomingMessage(request)
  return Effect.gen(function*() {
    const config = yield* CairnConfig
    const storage = yield* ArtifactStorage
    const limit = config.uploadMaxBytes
    const announced = request.headers["content-length"]
    if (announced !== undefined && /^[0-9]+$/.test(announced) && Number(announced) > limit) return yield* tooLarge(limit)

    let consumed = false
    const put = Effect.suspend((): Effect.Effect<PutResult, PutError | BodyConsumed> => {
      if (consumed) return Effect.fail(new BodyConsumed())
      consumed = true
      // The request's own iterator, told not to destroy the request when put stops early (at the
      // limit): the connection must live on to carry the 413.
      return storage.put(req.iterator({ destroyOnReturn: false }), { sha256: checksum?.toLowerCase(), maxSize: limit })
    })
    const stored = yield* storeArtifact(put, ownedByUpload(config.uploadTtl))
    return { artifact: stored.id, sha256: stored.sha256, size: stored.size }
  }).pipe(
    Effect.catchTags({
      TooLarge: (e) => tooLarge(e.limit),
      DigestMismatch: (e) =>
        Effect.fail(new BadRequest({ message: e.message, details: { expected: e.expected, actual: e.actual } })),
      // Not announced by us, so not reachable; kept total rather than cast away.
      SizeMismatch: (e) => Effect.fail(new BadRequest({ message: e.message })),
      BadDigest: (e) => Effect.fail(new BadRequest({ message: e.message })),
      SourceError: (e) => Effect.fail(new BadRequest({ message: `the upload could not be read: ${e.message}` })),
      StorageError: (e) =>
        Effect.zipRight(
          Effect.logError("upload: the artifact store failed", e.message),
          Effect.fail(new ServiceUnavailable({ message: "the artifact store cannot take the upload now; retry later" }))
        ),
      ArtifactGone: () => Effect.fail(raced),
      BodyConsumed: () => Effect.fail(raced),
      DbError: (e) => toApi(Effect.fail(e))
    }),
    Effect.tapError(() => discardRest(req))
  )
}

const raced = new ServiceUnavailable({
  message: "an orphan cleanup removed identical content while it was being uploaded; send the upload again"
})

export const UploadsLive = HttpApiBuilder.group(CairnApi, "uploads", (h) =>
  h.handle("create", ({ headers, request }) => upload(request, headers["x-checksum-sha256"])))
