/**
 * Looking a named resource up by name, for task kinds' `prepare` (named.ts has the rest of the
 * named resources). Its own module because content-type plugins' kinds use it, and named.ts asks
 * the plugin registry (src/content/registry.ts), which loads the plugins.
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../db/client.js"

export type NamedKind = "repository" | "remote" | "distribution" | "schedule"

/**
 * For task kinds' `prepare`: a name (or a revision id) -> { id, revision, name } of its current
 * revision; undefined when there is no such resource.
 */
export const resolveNamed = (kind: NamedKind, nameOrRevision: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const [r] = yield* db.rows<{ id: string; revision: string; name: string }>(sql`
      SELECT resource_id AS id, revision_id AS revision, name FROM names WHERE kind = ${kind} AND name = ${nameOrRevision}`)
    return r
  })
