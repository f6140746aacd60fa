/**
 * What the content task kinds share: the future kinds they produce, named-resource params (a name
 * at submission, the revision it had at submission in the stored params), and turning the
 * failures of the layers below into a task's `{ code, message }`.
 */
import { sql } from "drizzle-orm"
import { Effect, Schema } from "effect"
import { Db, type DbError } from "../../db/client.js"
import { TaskFailure } from "../../engine/errors.js"
import type { ParamProblems } from "../../engine/kind.js"
import { type NamedKind, resolveNamed } from "../named-lookup.js"

/** Future kinds of the content store. */
export const REPOSITORY_VERSION = "repository_version"
export const PUBLICATION = "publication"
export const DISTRIBUTION = "distribution"

/**
 * A named resource as stored in params: the resource id and the revision current at submission
 * (copy-on-write: queued work keeps the revision it was submitted with), and the name for humans.
 */
export const NamedRef = Schema.Struct({ id: Schema.String, revision: Schema.String, name: Schema.String })
export type NamedRef = Schema.Schema.Type<typeof NamedRef>

/** The content type of a repository or remote revision (fixed at creation: every revision repeats it). */
export const revisionType = (kind: "repository" | "remote", revision: string) =>
  Effect.flatMap(Db, (db) =>
    db.rows<{ type: string }>(kind === "repository"
      ? sql`SELECT type FROM repository_revisions WHERE id = ${revision}`
      : sql`SELECT type FROM remote_revisions WHERE id = ${revision}`)).pipe(Effect.map((rows) => rows[0]?.type))

/**
 * For `prepare`: replace `raw[field]`, a resource name, by its NamedRef. Problems are sentences
 * for the node's 400; other fields are left for the params Schema to check. With `type` (a
 * content-type plugin's kinds), a repository or remote of another type is such a problem too.
 */
export const resolveNamedFields = (
  raw: unknown,
  fields: ReadonlyArray<readonly [field: string, kind: NamedKind]>,
  type?: string
) =>
  Effect.gen(function*() {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return raw
    const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) }
    const problems: Array<string> = []
    for (const [field, kind] of fields) {
      const v = out[field]
      if (typeof v !== "string") continue // the Schema reports a missing or mistyped field
      const found = yield* resolveNamed(kind, v)
      if (!found) {
        problems.push(`params.${field}: no ${kind} named ${JSON.stringify(v)}`)
        continue
      }
      if (type !== undefined && (kind === "repository" || kind === "remote")) {
        const actual = yield* revisionType(kind, found.revision)
        if (actual !== type) problems.push(`params.${field}: ${kind} ${JSON.stringify(v)} is a ${actual} ${kind}, not a ${type} one`)
      }
      out[field] = found
    }
    if (problems.length > 0) return yield* Effect.fail(problems as ParamProblems)
    return out
  })

/** A failure of something below a handler, as the task's error. */
export const failWith = (code: string) => (e: { readonly message: string }) =>
  new TaskFailure({ code, message: e.message })

/** Database failures inside a handler fail the task with code `db_error`. */
export const dbFailure = (e: DbError) => new TaskFailure({ code: "db_error", message: e.message })

export const orDbFailure = <A, E, R>(eff: Effect.Effect<A, E | DbError, R>) =>
  Effect.catchIf(eff, (e): e is DbError => (e as { _tag?: string })._tag === "DbError", (e) => Effect.fail(dbFailure(e)))
