/**
 * The engine's typed errors. The API maps each to its HTTP status and the contract's error body.
 */
import { Data } from "effect"

/** A task handler's failure: the task (and, transitively, its downstream) fails with this. */
export class TaskFailure extends Data.TaggedError("TaskFailure")<{
  readonly code: string
  readonly message: string
}> {}

/** A request that cannot be carried out as asked (400); `details` says what to fix. */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly message: string
  readonly details?: unknown
}> {}

export class NotFound extends Data.TaggedError("NotFound")<{ readonly message: string }> {}

export class Conflict extends Data.TaggedError("Conflict")<{
  readonly message: string
  readonly details?: unknown
}> {}

export class PreconditionFailed extends Data.TaggedError("PreconditionFailed")<{ readonly message: string }> {}
