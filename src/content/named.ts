/**
 * Named resources, copy-on-write: repositories, remotes and distributions (and schedules, whose
 * revisions src/schedules/revisions.ts reads and writes).
 *
 * A resource has a stable id (`resources`), immutable revisions (each with its name and fields),
 * and a row in `names` pointing at its current revision. Changing it writes a new revision and
 * moves the name by compare-and-swap under the row lock of `names` (PATCH with `if-match` answers
 * 412 when the name moved on). Work holds revision ids, so editing or deleting a name never breaks
 * queued work. Deleting frees the name (and, for a repository, its versions: lifecycle/retention.ts);
 * the revisions stay as history until history.purge takes those no name or task holds.
 */
import { sql } from "drizzle-orm"
import { Effect, Either } from "effect"
import { monotonicFactory } from "ulid"
import { CairnConfig } from "../config/config.js"
import { Db, DbError, type Tx, txRows } from "../db/client.js"
import { Conflict, InvalidRequest, NotFound, PreconditionFailed } from "../engine/errors.js"
import { insertScheduleRevision, type ScheduleFields, scheduleRevisionView } from "../schedules/revisions.js"
import { applyRetention, releaseRepository, startRepository } from "./lifecycle/retention.js"
import { type GuardInput, guardProblem, guardView, type StoredGuard, storeGuard } from "./guards.js"
import type { NamedKind } from "./named-lookup.js"
import { basePathProblem } from "./policy/paths.js"
import { defaultType, findPlugin, pluginOf, plugins } from "./registry.js"
import { checkRemoteUrl } from "./policy/urls.js"
import {
  openSettings,
  type RemoteSettings,
  settingsOf,
  settingsProblems,
  settingsView,
  STORED_COLUMNS,
  type StoredSettings,
  storeSettings
} from "./remote-settings.js"
import { keyringOf } from "./secrets.js"

export type { NamedKind }

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

const newId = monotonicFactory()

export interface RepositoryFields {
  readonly description?: string | null
  /** Keep the newest N versions (N >= 1); null or absent: keep all. */
  readonly retain_versions?: number | null
}
export interface RemoteFields extends Partial<RemoteSettings> {
  readonly url: string
  readonly policy: "immediate" | "on_demand"
  readonly download_concurrency: number
}
export interface DistributionFields {
  readonly base_path: string
  /** The publication future shown; stored as the publication it resolved to. */
  readonly publication?: string | null
  /** Who may read its content (guards.ts); null or absent: anyone. */
  readonly guard?: GuardInput | null
}

export interface RevisionView {
  readonly id: string
  readonly name: string
  readonly revision: string
  readonly created_at: string
  readonly [field: string]: unknown
}

const iso = (d: unknown) => new Date(d as string).toISOString()

/** SQLSTATE 23505 on names' primary key: the name is taken; 23P01: exclusion (base path overlap). */
const mapWriteError = (kind: NamedKind, name: string) => (e: DbError): Effect.Effect<never, Conflict | DbError> => {
  if (e.code === "23505") return Effect.fail(new Conflict({ message: `a ${kind} named ${name} already exists` }))
  if (e.code === "23P01") {
    return Effect.fail(new Conflict({ message: "base_path overlaps the base path of another distribution (equal, prefix or extension)" }))
  }
  return Effect.fail(e)
}

interface RemoteRow extends StoredSettings {
  readonly id: string
  readonly name: string
  readonly revision: string
  readonly created_at: string
  readonly type: string
  readonly type_fields: Readonly<Record<string, unknown>>
  readonly url: string
  readonly policy: string
  readonly download_concurrency: number
}

const REMOTE_COLUMNS = sql.raw(STORED_COLUMNS.join(", "))

/**
 * CAIRN_SECRET_KEY's keys. The config is looked up, not required, so that the operations on
 * named resources keep their requirements (every cairn process has a config; without one, as in
 * some tests, secrets are stored in the clear and sealed ones do not open).
 */
const keyring = Effect.map(
  Effect.serviceOption(CairnConfig),
  (config) => keyringOf(config._tag === "Some" ? config.value.secretKeys : [])
)

const remoteRow = (tx: Tx, revision: string) =>
  Effect.map(
    txRows<RemoteRow>(tx, sql`
      SELECT remote_id AS id, name, id AS revision, created_at, type, type_fields, url, policy, download_concurrency, ${REMOTE_COLUMNS}
      FROM remote_revisions WHERE id = ${revision}`),
    (rows) => rows[0]
  )

/**
 * A remote revision's fields as a PATCH starts from them: secrets opened (with CAIRN_SECRET_KEY),
 * so that the next revision keeps those the patch does not replace, sealed anew.
 */
const remoteFieldsToRevise = (tx: Tx, revision: string) =>
  Effect.gen(function*() {
    const r = (yield* remoteRow(tx, revision))!
    const settings = openSettings(yield* keyring, { remoteId: r.id, revisionId: r.revision, url: r.url }, r)
    if (Either.isLeft(settings)) {
      return yield* new Conflict({ message: `remote ${r.name} cannot be changed by this server: ${settings.left.message}` })
    }
    return { type: r.type, ...r.type_fields, url: r.url, policy: r.policy, download_concurrency: r.download_concurrency, ...settings.right }
  })

const revisionView = (kind: NamedKind, tx: Tx, revision: string) =>
  Effect.gen(function*() {
    switch (kind) {
      case "repository": {
        const [r] = yield* txRows<{ id: string; name: string; revision: string; created_at: string; type: string; description: string | null; retain_versions: number | null }>(tx, sql`
          SELECT repository_id AS id, name, id AS revision, created_at, type, description, retain_versions FROM repository_revisions WHERE id = ${revision}`)
        return r && { ...r, created_at: iso(r.created_at) }
      }
      case "remote": {
        const r = yield* remoteRow(tx, revision)
        return r && {
          id: r.id,
          name: r.name,
          revision: r.revision,
          created_at: iso(r.created_at),
          type: r.type,
          ...r.type_fields,
          url: r.url,
          policy: r.policy,
          download_concurrency: r.download_concurrency,
          ...settingsView(r)
        }
      }
      case "distribution": {
        // An old revision records its publication but does not hold it: once the publication is
        // released and reclaimed, `publication` is the future it had and `publication_released` says so.
        const [r] = yield* txRows<{ id: string; name: string; revision: string; created_at: string; base_path: string; publication: string | null; publication_released: boolean; guard: StoredGuard | null }>(tx, sql`
          SELECT d.distribution_id AS id, d.name, d.id AS revision, d.created_at, d.base_path,
                 coalesce(p.future_id, d.publication_future_id) AS publication,
                 (d.publication_id IS NOT NULL AND p.id IS NULL) AS publication_released, d.guard
          FROM distribution_revisions d LEFT JOIN publications p ON p.id = d.publication_id WHERE d.id = ${revision}`)
        // The guard's secrets stay in the row: the view says only that a guard is set.
        return r && { ...r, created_at: iso(r.created_at), guard: guardView(r.guard) }
      }
      case "schedule":
        return yield* scheduleRevisionView(tx, revision)
    }
  }).pipe(Effect.map((v) => v as RevisionView | undefined))

/**
 * The publication a publication future resolved to (for distributions' `publication` field), locked
 * FOR KEY SHARE until the caller commits: the distribution's path row will hold it, and a cleanup
 * deleting it right now is waited for (it is then not found: released).
 */
const publicationOf = (tx: Tx, futureId: string) =>
  Effect.gen(function*() {
    const [f] = yield* txRows<{ kind: string; state: string; publication: string | null }>(
      tx,
      sql`SELECT kind, state, value ->> 'publication' AS publication FROM futures WHERE id = ${futureId}`
    )
    if (!f) return yield* new InvalidRequest({ message: `publication future ${futureId} does not exist` })
    if (f.kind !== "publication") return yield* new InvalidRequest({ message: `future ${futureId} is a ${f.kind}, not a publication` })
    if (f.state !== "resolved") {
      return yield* new InvalidRequest({
        message: `publication future ${futureId} is ${f.state}; point the distribution at it with a distribution.set task instead`
      })
    }
    const [p] = yield* txRows<{ id: string }>(tx, sql`SELECT id FROM publications WHERE id = ${f.publication} FOR KEY SHARE`)
    if (!p) return yield* new InvalidRequest({ message: `the publication of future ${futureId} was released and has been reclaimed` })
    return p.id
  })

/** What a revision records beside its fields: the future of the task that wrote it, if one did. */
export interface RevisionOrigin {
  readonly future?: string | undefined
}

const insertRevision = (kind: NamedKind, tx: Tx, resourceId: string, name: string, fields: Record<string, unknown>, origin: RevisionOrigin = {}) =>
  Effect.gen(function*() {
    const revision = newId()
    switch (kind) {
      case "repository":
        yield* txRows(tx, sql`INSERT INTO repository_revisions (id, repository_id, name, type, description, retain_versions)
                              VALUES (${revision}, ${resourceId}, ${name}, ${typeOf(fields)}, ${(fields.description as string | null | undefined) ?? null},
                                      ${(fields.retain_versions as number | null | undefined) ?? null})`)
        break
      case "remote": {
        const url = fields.url as string
        const st = storeSettings(yield* keyring, { remoteId: resourceId, revisionId: revision, url }, settingsOf(fields))
        const type = typeOf(fields)
        const own = Object.keys(pluginOf(type).remote.fields).filter((k) => fields[k] !== undefined)
        const typeFields = JSON.stringify(Object.fromEntries(own.map((k) => [k, fields[k]])))
        yield* txRows(tx, sql`INSERT INTO remote_revisions (id, remote_id, name, type, type_fields, url, policy, download_concurrency, ${REMOTE_COLUMNS})
                              VALUES (${revision}, ${resourceId}, ${name}, ${type}, ${typeFields}::jsonb, ${url}, ${fields.policy as string},
                                      ${fields.download_concurrency as number}, ${st.proxy_url}, ${st.ca_cert}, ${st.client_cert},
                                      ${st.username}, ${sql.param([...st.header_names])}::text[], ${st.connect_timeout_ms},
                                      ${st.total_timeout_ms}, ${st.max_retries}, ${st.rate_limit},
                                      ${sql.param([...st.secret_fields])}::text[], ${st.secrets})`)
        break
      }
      case "distribution": {
        const future = typeof fields.publication === "string" ? fields.publication : null
        const publicationId = future === null ? null : yield* publicationOf(tx, future)
        const guard = (fields.guard as StoredGuard | null | undefined) ?? null
        yield* txRows(tx, sql`INSERT INTO distribution_revisions (id, distribution_id, name, base_path, publication_id, publication_future_id, future_id, guard)
                              VALUES (${revision}, ${resourceId}, ${name}, ${fields.base_path as string}, ${publicationId}, ${future},
                                      ${origin.future ?? null}, ${guard === null ? null : JSON.stringify(guard)}::jsonb)`)
        // The live base path (the exclusion constraint refuses an overlap: 23P01), and the hold on
        // what the distribution serves.
        yield* txRows(tx, sql`INSERT INTO distribution_paths (distribution_id, base_path, publication_id)
                              VALUES (${resourceId}, ${fields.base_path as string}, ${publicationId})
                              ON CONFLICT (distribution_id) DO UPDATE SET base_path = EXCLUDED.base_path, publication_id = EXCLUDED.publication_id`)
        break
      }
      case "schedule":
        yield* insertScheduleRevision(tx, revision, resourceId, name, fields as unknown as ScheduleFields)
        break
    }
    return revision
  })

/** The content type of a repository or remote being written (fixed at creation; the default type when none is given). */
const typeOf = (fields: Record<string, unknown>) => (fields.type as string | undefined) ?? defaultType()

/**
 * A remote's fields that its type's plugin adds (src/content/plugin.ts `remote.fields`): those of
 * another type are refused, and the plugin checks its own.
 */
const typeFieldProblems = (fields: Record<string, unknown>): Array<string> => {
  const type = typeOf(fields)
  const plugin = findPlugin(type)
  if (plugin === undefined) return [`type must be one of ${plugins.map((p) => p.type).join(", ")}`]
  const problems: Array<string> = []
  for (const other of plugins) {
    if (other === plugin) continue
    for (const k of Object.keys(other.remote.fields)) {
      if (fields[k] !== undefined && !(k in plugin.remote.fields)) problems.push(`${k} is a field of ${other.type} remotes, not of ${type} ones`)
    }
  }
  const own = Object.fromEntries(Object.keys(plugin.remote.fields).filter((k) => fields[k] !== undefined).map((k) => [k, fields[k]]))
  problems.push(...(plugin.remote.check?.(own) ?? []))
  return problems
}

const validate = (kind: NamedKind, fields: Record<string, unknown>) => {
  const problems: Array<string> = []
  if (kind === "repository" && findPlugin(typeOf(fields)) === undefined) {
    problems.push(`type must be one of ${plugins.map((p) => p.type).join(", ")}`)
  }
  if (kind === "remote") {
    problems.push(...typeFieldProblems(fields))
    const url = checkRemoteUrl(String(fields.url))
    if (Either.isLeft(url)) problems.push(url.left.message)
    problems.push(...settingsProblems(settingsOf(fields)))
  }
  if (kind === "distribution") {
    const bad = basePathProblem(String(fields.base_path))
    if (bad !== undefined) problems.push(bad)
  }
  if (kind === "repository") {
    const n = fields.retain_versions
    if (n !== undefined && n !== null && !(Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 2_147_483_647)) {
      problems.push("retain_versions must be a whole number >= 1, or null to keep every version")
    }
  }
  return problems.length > 0 ? Effect.fail(new InvalidRequest({ message: problems.join("; "), details: { problems } })) : Effect.void
}

/**
 * A distribution's `guard` as given (GuardInput) in its stored form: token digests, or a new random
 * key (guards.ts). `insertRevision` writes stored guards only; the other fields pass as they are.
 */
const storingGuard = (kind: NamedKind, fields: Record<string, unknown>) => {
  const given = fields.guard as GuardInput | null | undefined
  if (kind !== "distribution" || given === undefined || given === null) return Effect.succeed(fields)
  const problem = guardProblem(given)
  if (problem !== undefined) return Effect.fail(new InvalidRequest({ message: problem, details: { problems: [problem] } }))
  return Effect.succeed({ ...fields, guard: storeGuard(given) })
}

/** The guard a distribution revision stores (not its view), to carry into the next revision. */
const storedGuardOf = (tx: Tx, revision: string) =>
  Effect.map(
    txRows<{ guard: StoredGuard | null }>(tx, sql`SELECT guard FROM distribution_revisions WHERE id = ${revision}`),
    ([r]) => r?.guard ?? null
  )

export const createNamed = (kind: NamedKind, name: string, given: Record<string, unknown>) =>
  Effect.gen(function*() {
    if (!NAME.test(name)) return yield* new InvalidRequest({ message: `name must match ${NAME.source}` })
    yield* validate(kind, given)
    const fields = yield* storingGuard(kind, given)
    const db = yield* Db
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const id = newId()
        yield* txRows(tx, sql`INSERT INTO resources (id, kind) VALUES (${id}, ${kind})`)
        const revision = yield* insertRevision(kind, tx, id, name, fields)
        yield* txRows(tx, sql`INSERT INTO names (kind, name, resource_id, revision_id) VALUES (${kind}, ${name}, ${id}, ${revision})`)
        if (kind === "repository") {
          // Version 0, empty, exists from creation: the head, and kept.
          const version0 = newId()
          yield* txRows(tx, sql`INSERT INTO repository_versions (id, repository_id, number, content_count) VALUES (${version0}, ${id}, 0, 0)`)
          yield* startRepository(tx, id, version0)
        }
        return (yield* revisionView(kind, tx, revision))!
      })
    ).pipe(Effect.catchTag("DbError", mapWriteError(kind, name)))
  })

export const getNamed = (kind: NamedKind, name: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const [n] = yield* txRows<{ revision_id: string }>(tx, sql`SELECT revision_id FROM names WHERE kind = ${kind} AND name = ${name}`)
        if (!n) return yield* new NotFound({ message: `no ${kind} named ${name}` })
        return (yield* revisionView(kind, tx, n.revision_id))!
      })
    )
  })

export const listNamed = (kind: NamedKind) =>
  Effect.gen(function*() {
    const db = yield* Db
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const rows = yield* txRows<{ revision_id: string }>(tx, sql`SELECT revision_id FROM names WHERE kind = ${kind} ORDER BY name`)
        const out: Array<RevisionView> = []
        for (const r of rows) out.push((yield* revisionView(kind, tx, r.revision_id))!)
        return out
      })
    )
  })

export const listRevisions = (kind: NamedKind, name: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const [n] = yield* txRows<{ resource_id: string }>(tx, sql`SELECT resource_id FROM names WHERE kind = ${kind} AND name = ${name}`)
        if (!n) return yield* new NotFound({ message: `no ${kind} named ${name}` })
        const table = { repository: sql`repository_revisions WHERE repository_id`, remote: sql`remote_revisions WHERE remote_id`, distribution: sql`distribution_revisions WHERE distribution_id`, schedule: sql`schedule_revisions WHERE schedule_id` }[kind]
        const revs = yield* txRows<{ id: string }>(tx, sql`SELECT id FROM ${table} = ${n.resource_id} ORDER BY id DESC`)
        const out: Array<RevisionView> = []
        for (const r of revs) out.push((yield* revisionView(kind, tx, r.id))!)
        return out
      })
    )
  })

/** PATCH: a new revision from the current one with `patch` applied; compare-and-swap on `ifMatch`. */
export const updateNamed = (kind: NamedKind, name: string, given: Record<string, unknown>, ifMatch: string | undefined) =>
  Effect.gen(function*() {
    const patch = yield* storingGuard(kind, given)
    const db = yield* Db
    return yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const [n] = yield* txRows<{ resource_id: string; revision_id: string }>(
          tx,
          sql`SELECT resource_id, revision_id FROM names WHERE kind = ${kind} AND name = ${name} FOR UPDATE`
        )
        if (!n) return yield* new NotFound({ message: `no ${kind} named ${name}` })
        if (ifMatch !== undefined && ifMatch !== n.revision_id) {
          return yield* new PreconditionFailed({ message: `${kind} ${name} is at revision ${n.revision_id}, not ${ifMatch}` })
        }
        return yield* revise(tx, kind, { ...n, name }, patch)
      })
    ).pipe(Effect.catchTag("DbError", mapWriteError(kind, name)))
  })

/**
 * The next revision: the current one's fields with `patch` applied; the name moves to it. A
 * repository's new retain_versions applies at once (a lower one releases what it no longer keeps).
 */
const revise = (
  tx: Tx,
  kind: NamedKind,
  n: { readonly resource_id: string; readonly revision_id: string; readonly name: string },
  patch: Record<string, unknown>,
  origin: RevisionOrigin = {}
) =>
  Effect.gen(function*() {
    let fields: Record<string, unknown>
    if (kind === "remote") fields = yield* remoteFieldsToRevise(tx, n.revision_id)
    else {
      const { id: _id, name: _name, revision: _rev, created_at: _c, publication_released: _released, ...shown } = (yield* revisionView(kind, tx, n.revision_id))! as RevisionView & { publication_released?: boolean }
      fields = shown
    }
    const next = { ...fields, ...patch }
    // The view shows the guard without its secrets: a change that does not give one keeps the stored one.
    if (kind === "distribution" && patch.guard === undefined) next.guard = yield* storedGuardOf(tx, n.revision_id)
    yield* validate(kind, next)
    const revision = yield* insertRevision(kind, tx, n.resource_id, n.name, next, origin)
    yield* txRows(tx, sql`UPDATE names SET revision_id = ${revision} WHERE kind = ${kind} AND name = ${n.name}`)
    if (kind === "repository") yield* applyRetention(tx, n.resource_id)
    return (yield* revisionView(kind, tx, revision))!
  })

/**
 * For task handlers, inside their commit: a new revision of resource `resourceId` with `patch`
 * applied to its current revision (whatever it is by now), recording the task's output future;
 * undefined when the resource was deleted.
 */
export const reviseResource = (tx: Tx, kind: NamedKind, resourceId: string, patch: Record<string, unknown>, origin: RevisionOrigin = {}) =>
  Effect.gen(function*() {
    const [n] = yield* txRows<{ resource_id: string; revision_id: string; name: string }>(
      tx,
      sql`SELECT resource_id, revision_id, name FROM names WHERE kind = ${kind} AND resource_id = ${resourceId} FOR UPDATE`
    )
    if (!n) return undefined
    return yield* revise(tx, kind, n, patch, origin)
  })

export const deleteNamed = (kind: NamedKind, name: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    yield* db.transaction((tx) =>
      Effect.gen(function*() {
        const [n] = yield* txRows<{ resource_id: string }>(
          tx,
          sql`DELETE FROM names WHERE kind = ${kind} AND name = ${name} RETURNING resource_id`
        )
        if (!n) return yield* new NotFound({ message: `no ${kind} named ${name}` })
        // A live distribution's path row is its hold on what it serves; a repository keeps nothing
        // once its name is gone (versions something else holds stay until it lets go).
        if (kind === "distribution") {
          yield* txRows(tx, sql`DELETE FROM distribution_paths WHERE distribution_id = ${n.resource_id}`)
        }
        if (kind === "repository") yield* releaseRepository(tx, n.resource_id)
      })
    )
  })

export { resolveNamed } from "./named-lookup.js"
