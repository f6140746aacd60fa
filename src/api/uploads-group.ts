/**
 * POST /api/v1/uploads: raw bytes in, an artifact out.
 *
 * The endpoint declares no payload schema on purpose: a payload schema makes HttpApi read the
 * whole body into memory before the handler runs. The handler streams `request.stream` into the
 * artifact store instead; the OpenAPI override below describes the body that the schema cannot.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authorization } from "./auth.js"

/** The contract's digest header: 64 hex digits (either case; the handler lowercases it). */
const ChecksumHeaders = Schema.Struct({
  "x-checksum-sha256": Schema.optional(
    Schema.String.pipe(Schema.pattern(/^[0-9A-Fa-f]{64}$/)).annotations({
      message: () => "must be a sha256 digest: 64 hexadecimal digits"
    })
  )
})

export const UploadView = Schema.Struct({
  artifact: Schema.String.annotations({ description: "the artifact's id" }),
  sha256: Schema.String,
  size: Schema.Number
}).annotations({ identifier: "Upload" })

export const UploadsGroup = HttpApiGroup.make("uploads")
  .add(
    HttpApiEndpoint.post("create", "/uploads")
      .setHeaders(ChecksumHeaders)
      .addSuccess(UploadView, { status: 201 })
      .annotate(OpenApi.Summary, "Upload raw bytes as an artifact")
      .annotate(
        OpenApi.Description,
        "The body (any content type) is streamed into the artifact store. With `x-checksum-sha256`, a body of " +
          "another digest is refused (400). A body over the configured limit (CAIRN_UPLOAD_MAX_BYTES), or a " +
          "content-length announcing one, is refused (413). A refused upload keeps nothing. The artifact is " +
          "owned by the upload (safe from orphan cleanup) until the upload expires (CAIRN_UPLOAD_TTL_MS); a " +
          "repository version that uses it owns it from then on."
      )
      .annotate(OpenApi.Override, {
        requestBody: {
          required: true,
          content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } }
        }
      })
  )
  .middleware(Authorization)
