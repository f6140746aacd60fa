/**
 * The typed Effect client of the v1 API, derived from the `HttpApi` definition (src/api/definition.ts)
 * by `HttpApiClient.make`: every endpoint, its path, payload and answer come from the same
 * description the server is built from, so the two cannot drift apart.
 *
 * `CairnClient` wraps it with the server's address and a `call` that turns every way a call can fail
 * (an error answer, no answer, an answer that does not decode) into one `CairnError`.
 */
import { FetchHttpClient, HttpApiClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Context, Effect, Layer, ParseResult } from "effect"
import { CairnApi } from "../api/definition.js"
import { CairnError, fromErrorResponse, unauthorized, unreachable } from "./errors.js"

export interface ClientOptions {
  /** The server's address, e.g. http://127.0.0.1:8080 (no /api/v1). */
  readonly url: string
  /** Bearer token, for a server started with CAIRN_API_TOKENS. */
  readonly token?: string | undefined
}

export const DEFAULT_URL = "http://127.0.0.1:8080"

/** The raw generated client: `api.graphs.submit({ payload })`, `api.futures.get({ path, urlParams })`, ... */
export const makeApiClient = (opts: ClientOptions) =>
  HttpApiClient.make(CairnApi, {
    baseUrl: baseOf(opts.url),
    transformClient: opts.token ? HttpClient.mapRequest(HttpClientRequest.bearerToken(opts.token)) : undefined
  })

export type ApiClient = Effect.Effect.Success<ReturnType<typeof makeApiClient>>

export interface CairnClientShape {
  /** The server's base address, without a trailing slash. */
  readonly url: string
  readonly token: string | undefined
  readonly api: ApiClient
  /** One API call, with every failure turned into a CairnError. */
  readonly call: <A, E>(f: (api: ApiClient) => Effect.Effect<A, E>) => Effect.Effect<A, CairnError>
}

export class CairnClient extends Context.Tag("cairn/CairnClient")<CairnClient, CairnClientShape>() {}

export const baseOf = (url: string) => url.trim().replace(/\/+$/, "")

export const makeCairnClient = (opts: ClientOptions): Effect.Effect<CairnClientShape, never, HttpClient.HttpClient> =>
  Effect.map(makeApiClient(opts), (api) => {
    const url = baseOf(opts.url)
    return {
      url,
      token: opts.token,
      api,
      call: (f) => Effect.catchAll(f(api), (e) => Effect.flatMap(explain(url, opts.token, e), Effect.fail))
    }
  })

/** `CairnClient` over the platform's fetch. */
export const layer = (opts: ClientOptions): Layer.Layer<CairnClient> =>
  Layer.effect(CairnClient, makeCairnClient(opts)).pipe(Layer.provide(FetchHttpClient.layer))

// ---- failures -------------------------------------------------------------------------------------

/** The tags of src/api/errors.ts, as the generated client decodes them from error answers. */
const declared: Record<string, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFoundError: 404,
  ConflictError: 409,
  PreconditionFailedError: 412,
  PayloadTooLarge: 413,
  ServiceUnavailable: 503
}

interface Tagged {
  readonly _tag: string
  readonly message?: string
  readonly details?: unknown
  readonly reason?: string
  readonly cause?: unknown
  readonly response?: { readonly status: number; readonly text: Effect.Effect<string, unknown> }
}

/** Any failure of a generated-client call as a CairnError (reading the body of an undeclared status). */
export const explain = (url: string, token: string | undefined, e: unknown): Effect.Effect<CairnError> => {
  if (e instanceof CairnError) return Effect.succeed(e)
  const t = e as Tagged
  const status = declared[t?._tag]
  if (status === 401) return Effect.succeed(unauthorized(url, token))
  if (status !== undefined) {
    // Re-use the error-body path so that messages read the same whichever client met them.
    return Effect.succeed(
      fromErrorResponse(url, status, JSON.stringify({ error: { message: t.message, details: t.details } }), token)
    )
  }
  if (t?._tag === "RequestError") {
    if (t.reason === "Transport") return Effect.succeed(unreachable(url, t.cause))
    return Effect.succeed(new CairnError({ code: "bad_request", message: `invalid request: ${t.message}`, cause: e }))
  }
  if (t?._tag === "ResponseError" && t.response !== undefined) {
    const res = t.response
    return res.text.pipe(
      Effect.orElseSucceed(() => ""),
      Effect.map((text) =>
        res.status >= 300
          ? fromErrorResponse(url, res.status, text, token)
          : new CairnError({
            code: "unexpected_response",
            status: res.status,
            message: `the server at ${url} answered ${res.status} with a body this client cannot read; is it a cairn server?`,
            cause: e
          })
      )
    )
  }
  if (ParseResult.isParseError(e)) {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(e)
      .map((i) => `${i.path.length === 0 ? "" : `${i.path.join(".")}: `}${i.message}`)
      .slice(0, 5)
    return Effect.succeed(
      new CairnError({
        code: "unexpected_response",
        message: `a request to ${url}, or its answer, does not fit the API: ${issues.join("; ")}`,
        cause: e
      })
    )
  }
  return Effect.succeed(
    new CairnError({ code: "unexpected_response", message: `unexpected failure talking to ${url}: ${String((e as Error)?.message ?? e)}`, cause: e })
  )
}
