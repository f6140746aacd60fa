import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Schema } from "effect"
import { ForbiddenSchema, UnauthorizedSchema } from "./errors.js"

/**
 * Bearer tokens from CAIRN_API_TOKENS; with none configured the API is open. Attached to each group
 * (not the whole API, which would also guard /healthz, /metrics and the OpenAPI document). A missing
 * or wrong token: 401; a `:read` token on anything but GET (or HEAD): 403.
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Schema.Union(UnauthorizedSchema, ForbiddenSchema),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

