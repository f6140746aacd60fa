/**
 * From the engine's typed errors to the contract's HTTP errors. A database that cannot be reached
 * is a 503 (the client may retry); any other database error is a bug and surfaces as a 500.
 */
import { Effect } from "effect"
import type { DbError } from "../db/client.js"
import type { Conflict, InvalidRequest, NotFound, PreconditionFailed } from "../engine/errors.js"
import { BadRequest, ConflictError, NotFoundError, PreconditionFailedError, ServiceUnavailable } from "./errors.js"

const SQLSTATE = /^[0-9A-Z]{5}$/

/**
 * SQLSTATE classes 08 (connection), 53 (insufficient resources: too many connections) and 57P
 * (shutdown), or no SQLSTATE at all: socket errors (ECONNREFUSED, ECONNRESET, ...) and a pool
 * that could not connect.
 */
export const isUnavailable = (e: DbError) =>
  e.code === undefined || !SQLSTATE.test(e.code) || e.code.startsWith("08") || e.code.startsWith("53") || e.code.startsWith("57P")

/**
 * SQLSTATE classes 22 (data exception: a NUL character or an unpaired surrogate in a string, an
 * integer out of range) and 54 (program limit exceeded): a value in the request that PostgreSQL
 * cannot store. The request's fault, so 400; its transaction wrote nothing.
 */
export const isBadValue = (e: DbError) => e.code !== undefined && (e.code.startsWith("22") || e.code.startsWith("54"))

export const toApi = <A, R>(
  eff: Effect.Effect<A, InvalidRequest | NotFound | Conflict | PreconditionFailed | DbError, R>
) =>
  eff.pipe(
    Effect.catchTags({
      InvalidRequest: (e) => Effect.fail(new BadRequest({ message: e.message, details: e.details })),
      NotFound: (e) => Effect.fail(new NotFoundError({ message: e.message })),
      Conflict: (e) => Effect.fail(new ConflictError({ message: e.message, details: e.details })),
      PreconditionFailed: (e) => Effect.fail(new PreconditionFailedError({ message: e.message })),
      DbError: (e) =>
        isUnavailable(e)
          ? Effect.fail(new ServiceUnavailable({ message: "the database is unavailable; retry shortly" }))
          : isBadValue(e)
          ? Effect.fail(new BadRequest({ message: `the request holds a value the database cannot store: ${e.message}` }))
          : Effect.die(e)
    })
  )
