/**
 * Signed content URLs (`POST /api/v1/distributions/{name}/sign`): the current revision's key signs
 * the distribution, the relative path and the expiry (src/content/guards.ts says what the MAC
 * covers, `app/guard-check.ts` how the content app checks it).
 */
import { sql } from "drizzle-orm"
import { Effect } from "effect"
import { Db } from "../db/client.js"
import { Conflict, InvalidRequest, NotFound } from "../engine/errors.js"
import { MAX_SIGNED_SECONDS, signatureOf, signedPath, type StoredGuard } from "./guards.js"
import { relativePathProblem } from "./policy/paths.js"

export interface SignedContent {
  /** Origin-relative: `/content/<base path>/<path>?expires=..&signature=..`. */
  readonly path: string
  /** Unix seconds; the URL is refused from then on. */
  readonly expires: number
}

/** A URL for `relativePath` of distribution `name`, valid `seconds` from `nowMs`. Writes nothing. */
export const signContentPath = (name: string, relativePath: string, seconds: number, nowMs: number) =>
  Effect.gen(function*() {
    const problem = relativePathProblem(relativePath)
    if (problem !== undefined) {
      return yield* new InvalidRequest({ message: `path must be a relative path inside the distribution, like dir/file.txt: ${problem}` })
    }
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SIGNED_SECONDS) {
      return yield* new InvalidRequest({ message: `expires_in_seconds must be a whole number from 1 to ${MAX_SIGNED_SECONDS}` })
    }
    const db = yield* Db
    const [d] = yield* db.rows<{ distribution_id: string; base_path: string; guard: StoredGuard | null }>(sql`
      SELECT n.resource_id AS distribution_id, r.base_path, r.guard
      FROM names n JOIN distribution_revisions r ON r.id = n.revision_id
      WHERE n.kind = 'distribution' AND n.name = ${name}`)
    if (!d) return yield* new NotFound({ message: `no distribution named ${name}` })
    if (d.guard?.type !== "signed") {
      return yield* new Conflict({
        message: `distribution ${name} does not serve signed URLs: give it "guard": { "type": "signed" } first`
      })
    }
    const expires = Math.floor(nowMs / 1000) + seconds
    const signature = signatureOf(Buffer.from(d.guard.key, "hex"), d.distribution_id, relativePath, expires)
    return { path: signedPath(d.base_path, relativePath, expires, signature), expires } satisfies SignedContent
  })
