/**
 * The one error type of the client: whatever went wrong (the server refused, the server could not be
 * reached, a wait timed out or was aborted), callers get a `CairnError` whose `message` is one
 * sentence fit to show a user, and whose `code` is the contract's error code or one of the client's
 * own (`unreachable`, `timeout`, `aborted`, `unexpected_response`).
 */
import { Data } from "effect"

export type CairnErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "precondition_failed"
  | "payload_too_large"
  | "unavailable"
  | "server_error"
  | "unreachable"
  | "timeout"
  | "aborted"
  | "unexpected_response"

export class CairnError extends Data.TaggedError("CairnError")<{
  readonly message: string
  readonly code: CairnErrorCode
  /** The HTTP status, when the server answered. */
  readonly status?: number | undefined
  /** The contract's `error.details` (for a refused graph: `{ nodes: { <node>: [problem, ...] } }`). */
  readonly details?: unknown
  readonly cause?: unknown
}> {}

const codeOfStatus = (status: number): CairnErrorCode => {
  switch (status) {
    case 400:
      return "bad_request"
    case 401:
      return "unauthorized"
    case 403:
      return "forbidden"
    case 404:
      return "not_found"
    case 409:
      return "conflict"
    case 412:
      return "precondition_failed"
    case 413:
      return "payload_too_large"
    case 503:
      return "unavailable"
    default:
      return status >= 500 ? "server_error" : "unexpected_response"
  }
}

/**
 * The server's message, completed with what `details` names, so that one line says everything:
 * a refused graph's message ("the graph is invalid: 2 nodes failed validation") is followed by each
 * node's problems.
 */
export const describeRefusal = (message: string, details: unknown): string => {
  const nodes = (details as { nodes?: unknown } | undefined)?.nodes
  if (nodes === null || typeof nodes !== "object") return message
  const parts = Object.entries(nodes as Record<string, unknown>).map(([node, problems]) =>
    `${node}: ${Array.isArray(problems) ? problems.join(", ") : String(problems)}`
  )
  return parts.length === 0 ? message : `${message} (${parts.join("; ")})`
}

/** A non-2xx answer as a CairnError, from its status and body text (the contract's error body, or not). */
export const fromErrorResponse = (base: string, status: number, bodyText: string, token: string | undefined): CairnError => {
  const code = codeOfStatus(status)
  if (status === 401) return unauthorized(base, token)
  let body: { error?: { message?: unknown; details?: unknown } } | undefined
  try {
    body = JSON.parse(bodyText)
  } catch {
    body = undefined
  }
  const serverMessage = typeof body?.error?.message === "string" ? body.error.message : undefined
  const message = serverMessage === undefined
    ? `the server at ${base} answered ${status}${bodyText.trim() === "" ? "" : `: ${bodyText.trim().slice(0, 200)}`}`
    : describeRefusal(serverMessage, body?.error?.details)
  return new CairnError({ message, code, status, details: body?.error?.details })
}

export const unauthorized = (base: string, token: string | undefined) =>
  new CairnError({
    code: "unauthorized",
    status: 401,
    message: token
      ? `the cairn server at ${base} rejected the API token (CAIRN_TOKEN or --token)`
      : `the cairn server at ${base} wants an API token: set CAIRN_TOKEN or pass --token`
  })

/** fetch() failed before any answer: name the low-level reason (ECONNREFUSED, ENOTFOUND, ...). */
export const unreachable = (base: string, cause: unknown) => {
  const err = cause as { name?: string; message?: string; cause?: { code?: string; message?: string; cause?: unknown } }
  const why = err?.name === "TimeoutError"
    ? "it did not answer in time"
    : (err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(cause))
  return new CairnError({
    code: "unreachable",
    message: `cannot reach the cairn server at ${base} (${why}); start it with \`cairn serve\` or set CAIRN_URL`,
    cause
  })
}
