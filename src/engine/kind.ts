/**
 * What a task kind is, and the registry of kinds known to this process.
 *
 * A kind is registered in code: its params Schema, its output futures and their kinds, the resource
 * keys a params value needs, and its handler. Params reference futures with `{ "$ref": ... }`; by
 * the time the params Schema sees them, the submitter has resolved every ref to
 * `{ "$ref": "<future id>", "kind": "<future kind>" }`, so `FutureRef("repository_version")` checks
 * the kind of what a param points at, and a mismatch is an ordinary Schema error at that path.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { Db, DbError, Tx } from "../db/client.js"
import type { TaskFailure } from "./errors.js"
import type { GraphSpec, SubmittedGraph } from "./submit.js"

/** The kind of a plain JSON result. Content kinds (repository_version, publication, ...) add more. */
export const VALUE = "value"

export const FutureRef = (kind?: string) =>
  Schema.Struct({
    $ref: Schema.String,
    kind: kind === undefined ? Schema.String : Schema.Literal(kind).annotations({
      message: (issue) => ({ message: `expected a reference to a ${kind} future, got ${JSON.stringify(issue.actual)}`, override: true })
    })
  }).annotations({ identifier: kind === undefined ? "FutureRef" : `FutureRef<${kind}>` })
export type FutureRef = Schema.Schema.Type<ReturnType<typeof FutureRef>>

export interface Progress {
  readonly done: number
  readonly total?: number | undefined
  readonly unit?: string | undefined
}

export interface ResolvedInput {
  readonly kind: string
  readonly value: unknown
}

/** What a running handler gets besides its params. */
export interface TaskContext {
  readonly taskId: string
  readonly graphId: string
  readonly attempt: number
  /** This task's output futures: output name -> future id (payload rows record them). */
  readonly outputs: Readonly<Record<string, string>>
  /** The worker running it (slot locks held while running name it, so they die with it). */
  readonly workerId: string
  /** Input futures by id, all resolved. */
  readonly inputs: ReadonlyMap<string, ResolvedInput>
  /** Report progress; throttled by the worker, so call it as often as convenient. */
  readonly progress: (p: Progress) => Effect.Effect<void>
  /**
   * Child tasks (src/engine/children.ts): submits a graph linked to this task, whose tasks any
   * worker takes. A child graph that does not validate fails with code `bad_child_graph`. Children
   * still unsettled when the handler ends (whatever its outcome) are canceled, and so are those of
   * this task's earlier attempts at its first spawn.
   */
  readonly spawn: (spec: GraphSpec) => Effect.Effect<SubmittedGraph, TaskFailure>
  /**
   * Waits until every future listed has settled, lending this task's slot to other work meanwhile;
   * answers their values in order, or fails with the first failed (or canceled) one's root cause:
   * its code and message.
   */
  readonly awaitFutures: (futures: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<unknown>, TaskFailure>
}

export interface ResourceKeys {
  readonly exclusive: ReadonlyArray<string>
  readonly shared: ReadonlyArray<string>
}

export type OutputValues = Readonly<Record<string, unknown>>

/**
 * A handler result whose payload rows must be written in the same transaction that resolves the
 * task's futures (a repository version, a publication): `run` writes them and returns the output
 * values. If the worker no longer owns the task, the transaction rolls back and nothing is written.
 */
export class Commit {
  constructor(readonly run: (tx: Tx) => Effect.Effect<OutputValues, TaskFailure | DbError>) {}
}

export type HandlerResult = OutputValues | Commit

/** Sentences about what is wrong with a node's params, reported in the 400 for that node. */
export type ParamProblems = ReadonlyArray<string>

export interface TaskKind<P = any, R = any> {
  readonly name: string
  readonly params: Schema.Schema<P, any, never>
  /** Output name -> future kind. */
  readonly outputs: Readonly<Record<string, string>>
  readonly resources: (params: P) => ResourceKeys
  /**
   * At submission, before `params` decodes them: turn params as a client wrote them into their
   * stored form, e.g. a repository name into its current revision id (copy-on-write: queued work
   * keeps the revision it was submitted with). It runs with the services handlers get (the
   * registry's context), so it may also look at stored bytes (an uploaded file's metadata).
   */
  readonly prepare?: (raw: unknown) => Effect.Effect<unknown, ParamProblems | DbError, Db | R>
  /** Resolves to the value of each output (JSON), or a Commit that also writes payload rows. */
  readonly handler: (params: P, ctx: TaskContext) => Effect.Effect<HandlerResult, TaskFailure, R>
}

export const defineKind = <P, I, R = never>(
  kind: TaskKind<P, R> & { readonly params: Schema.Schema<P, I, never> }
): TaskKind<P, R> => kind

export const noResources = (): ResourceKeys => ({ exclusive: [], shared: [] })

export interface TaskKindsShape {
  readonly kinds: ReadonlyMap<string, TaskKind>
  /** The services handlers need (storage, HTTP, ...), captured when the registry is built. */
  readonly context: Context.Context<never>
}

export class TaskKinds extends Context.Tag("cairn/TaskKinds")<TaskKinds, TaskKindsShape>() {
  static layer = <R>(kinds: ReadonlyArray<TaskKind<any, R>>) =>
    Layer.effect(
      TaskKinds,
      Effect.map(Effect.context<R>(), (context) => ({
        kinds: new Map(kinds.map((k) => [k.name, k as TaskKind] as const)),
        context: context as Context.Context<never>
      }))
    )
}

/** Replace every resolved ref `{ $ref, kind }` in a value by the referenced future's value. */
export const substituteRefs = (value: unknown, inputs: ReadonlyMap<string, ResolvedInput>): unknown => {
  if (Array.isArray(value)) return value.map((v) => substituteRefs(v, inputs))
  if (value !== null && typeof value === "object") {
    const ref = (value as { $ref?: unknown }).$ref
    if (typeof ref === "string" && inputs.has(ref)) return inputs.get(ref)!.value
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteRefs(v, inputs)]))
  }
  return value
}
