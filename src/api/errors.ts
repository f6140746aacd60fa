/**
 * The contract's error responses. Each is a yieldable error class (what handlers fail with) plus a
 * Schema that encodes it as `{ "error": { "code", "message", "details"? } }` with its HTTP status,
 * so the OpenAPI document describes exactly the body clients get.
 */
import { HttpApiSchema } from "@effect/platform"
import { Data, Schema } from "effect"

const Body = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String,
    message: Schema.String,
    details: Schema.optional(Schema.Unknown)
  })
})

interface Fields {
  readonly message: string
  readonly details?: unknown
}

const errorSchema = <E extends Fields & { readonly _tag: string }>(
  ctor: new(f: Fields) => E,
  code: string,
  status: number,
  identifier: string
) =>
  Schema.transform(Body, Schema.instanceOf(ctor), {
    strict: true,
    decode: (b) => new ctor({ message: b.error.message, details: b.error.details }),
    encode: (e) => ({ error: e.details === undefined ? { code, message: e.message } : { code, message: e.message, details: e.details } })
  }).annotations({ ...HttpApiSchema.annotations({ status }), identifier })

export class BadRequest extends Data.TaggedError("BadRequest")<Fields> {}
export class Unauthorized extends Data.TaggedError("Unauthorized")<Fields> {}
/** A token that is valid but may not do this (a `:read` token on anything but GET). */
export class Forbidden extends Data.TaggedError("Forbidden")<Fields> {}
export class NotFoundError extends Data.TaggedError("NotFoundError")<Fields> {}
export class ConflictError extends Data.TaggedError("ConflictError")<Fields> {}
export class PreconditionFailedError extends Data.TaggedError("PreconditionFailedError")<Fields> {}
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<Fields> {}
export class UnsupportedMediaType extends Data.TaggedError("UnsupportedMediaType")<Fields> {}
export class TooManyRequests extends Data.TaggedError("TooManyRequests")<Fields> {}
export class ServiceUnavailable extends Data.TaggedError("ServiceUnavailable")<Fields> {}

export const BadRequestSchema = errorSchema(BadRequest, "bad_request", 400, "BadRequest")
export const UnauthorizedSchema = errorSchema(Unauthorized, "unauthorized", 401, "Unauthorized")
export const ForbiddenSchema = errorSchema(Forbidden, "forbidden", 403, "Forbidden")
export const NotFoundSchema = errorSchema(NotFoundError, "not_found", 404, "NotFound")
export const ConflictSchema = errorSchema(ConflictError, "conflict", 409, "Conflict")
export const PreconditionFailedSchema = errorSchema(PreconditionFailedError, "precondition_failed", 412, "PreconditionFailed")
export const PayloadTooLargeSchema = errorSchema(PayloadTooLarge, "payload_too_large", 413, "PayloadTooLarge")
export const UnsupportedMediaTypeSchema = errorSchema(UnsupportedMediaType, "unsupported_media_type", 415, "UnsupportedMediaType")
export const TooManyRequestsSchema = errorSchema(TooManyRequests, "too_many_requests", 429, "TooManyRequests")
export const ServiceUnavailableSchema = errorSchema(ServiceUnavailable, "unavailable", 503, "ServiceUnavailable")

export type ApiError =
  | BadRequest
  | Unauthorized
  | Forbidden
  | NotFoundError
  | ConflictError
  | PreconditionFailedError
  | PayloadTooLarge
  | UnsupportedMediaType
  | TooManyRequests
  | ServiceUnavailable
