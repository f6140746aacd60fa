import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { UnauthorizedSchema } from "./errors.js"

/**
 * Bearer tokens from CAIRN_API_TOKENS; with none configured the API is open. Attached to each group
 * (not the whole API, which would also guard /healthz, /metrics and the OpenAPI document).
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: UnauthorizedSchema,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

