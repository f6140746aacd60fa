/**
 * The content app's routing table, in memory: base path -> distribution's publication and guard ->
 * relative path -> file (digest, size, whether the bytes are stored, media type). A publication's
 * files are its version's units, each at the path its content type's plugin serves it at, and the
 * files the publication generated (`publication_files`: a PULP_MANIFEST, index pages), which take
 * precedence at a path both have (src/content/plugin.ts).
 *
 * Distributions change, so their table is loaded at start and reloaded on every wake-up of the
 * content store's channel `cairn_content` (sent by the transaction of every change to a
 * distribution's name or base path: src/content/sql/cairn_distributions_changed.sql), and on the
 * session's "everything changed" wake-up after each reconnect, which covers notifications lost
 * while it was away. Publications never change, so each one's file map is loaded once, on first
 * use, and kept (the least recently used are dropped beyond `MAX_PUBLICATIONS`).
 *
 * Freshness. A wake-up makes the table stale at once (synchronously, `Session.onWakeup`), and
 * requests arriving while it is stale wait for the reload: once the notification is in, nobody is
 * served the old route. A client that was just told "distribution.set resolved" may still ask
 * before the notification arrives; so a request about to answer 404 first asks `recheck`, which
 * passes the session's notification barrier (`Session.sync`) and waits for any reload it reveals.
 * A 404 thus reflects every distribution change committed before the request arrived, at the cost
 * of one `SELECT 1` on the session shared by all the 404s of the moment; a hit costs nothing.
 * (A hit on a path that a change committed a moment ago moved elsewhere can still be answered from
 * the old publication until its notification arrives, typically well under a millisecond.)
 *
 * A distribution's guard (src/content/guards.ts: token digests or the signing key) is a field of its
 * revision, so it is loaded, and replaced, with the route: a guarded request is checked from memory
 * too, and a guard given, changed or removed reaches the table by the same wake-up as a base path.
 *
 * So a request for a file that is stored makes no database query at all. While the table is
 * current and the publication loaded, `routeNow` and `cachedPublication` answer synchronously,
 * without a fiber: the content app's common case (see `serve.ts`).
 */
import { sql } from "drizzle-orm"
import { Context, Deferred, Duration, Effect, FiberId, Layer, Queue, Schedule } from "effect"
import { LRUCache } from "lru-cache"
import { Db, DbError } from "../../db/client.js"
import { Session } from "../../engine/session.js"
import { type ContentGuard, contentGuard, type StoredGuard } from "../guards.js"
import { pluginOf } from "../registry.js"
import { versionContent } from "../versions.js"
import { countPublicationCache } from "./metrics.js"
import { relativePathOf } from "./paths.js"
import { makeSingleflight } from "./singleflight.js"

/** The content store's notifications: distributions changed (src/content/sql/cairn_distributions_changed.sql). */
export const CONTENT_CHANNEL = "cairn_content"

/** Publications whose file maps are kept in memory. */
const MAX_PUBLICATIONS = 64

/**
 * How long a request waits for the barrier or a reload before it answers from the table it has:
 * while the database is away, content it knows keeps being served.
 */
const FRESHNESS_WAIT = Duration.seconds(1)

export interface FileEntry {
  /** The content unit; undefined for a file the publication generated. */
  readonly contentId: string | undefined
  readonly sha256: string
  readonly size: number
  /** False for an on-demand unit not fetched yet; set (once) when it has been. */
  stored: boolean
  /** Its content-type; undefined for a unit (served as application/octet-stream). */
  readonly mediaType: string | undefined
  /**
   * Generated files at the same path in other media types, in the publication's order after this
   * one (the default): the content app picks one by `accept` (negotiate.ts).
   */
  readonly variants?: ReadonlyArray<FileEntry>
}

export type PublicationFiles = ReadonlyMap<string, FileEntry>

export interface Route {
  readonly basePath: string
  /** Null while the distribution serves no publication. */
  readonly publicationId: string | null
  /** Who may read it; undefined: anyone. */
  readonly guard: ContentGuard | undefined
  readonly relativePath: string
}

export interface RoutingTableShape {
  /**
   * The live distribution whose base path is a path-prefix of `segments` (base paths never
   * overlap, so there is at most one), with the rest as a safe relative path. Waits (bounded)
   * while the table is stale; with `recheck`, first passes the notification barrier, so that every
   * change committed before the call is seen. Fails only if no table was ever loaded.
   */
  readonly route: (segments: ReadonlyArray<string>, recheck: boolean) => Effect.Effect<Route | undefined, DbError>
  /** `route` without waiting: `NOT_CURRENT` while the table is not loaded or stale. */
  readonly routeNow: (segments: ReadonlyArray<string>) => Route | undefined | typeof NOT_CURRENT
  /** A publication's files by relative path, its generated files included. */
  readonly publication: (id: string) => Effect.Effect<PublicationFiles, DbError>
  /** `publication` if its files are in memory already (counted as a hit), else undefined. */
  readonly cachedPublication: (id: string) => PublicationFiles | undefined
}

export const NOT_CURRENT = Symbol("not current")

/**
 * The publication a route named no longer exists: the distribution moved on a moment ago and the
 * old publication was released and reclaimed before this process's table caught up. The content
 * app then passes the notification barrier and routes again (serve.ts).
 */
export class PublicationGone extends Error {
  constructor(readonly publicationId: string) {
    super(`publication ${publicationId} was released`)
  }
}

export class RoutingTable extends Context.Tag("cairn/content/RoutingTable")<RoutingTable, RoutingTableShape>() {}

interface Served {
  readonly publicationId: string | null
  readonly guard: ContentGuard | undefined
}

/** Base path -> what its distribution serves, and to whom. */
type Distributions = ReadonlyMap<string, Served>

export const RoutingTableLive = Layer.scoped(
  RoutingTable,
  Effect.gen(function*() {
    const db = yield* Db
    const session = yield* Session

    // One statement, one snapshot: a base path always comes with its own distribution's revision
    // (its publication and its guard).
    const loadDistributions = db.rows<{ base_path: string; distribution_id: string; publication_id: string | null; guard: StoredGuard | null }>(sql`
      SELECT p.base_path, p.distribution_id, r.publication_id, r.guard
      FROM distribution_paths p
      JOIN names n ON n.kind = 'distribution' AND n.resource_id = p.distribution_id
      JOIN distribution_revisions r ON r.id = n.revision_id`).pipe(
        Effect.map((rows): Distributions =>
          new Map(rows.map((r) => [r.base_path, { publicationId: r.publication_id, guard: contentGuard(r.distribution_id, r.guard) }]))
        )
      )

    // Plain variables, not Refs: requests read them synchronously (see `routeNow`).
    let distributions: Distributions | undefined
    // Distribution wake-ups announced so far, and how many had been when the table in memory
    // began loading: the table is current when the two are equal.
    let changes = 0
    let loadedAt = -1
    const isCurrent = () => distributions !== undefined && loadedAt === changes

    // Requests waiting for a table at least as new as `changes` was when they began to wait, one
    // Deferred per value of `changes` (so a flood of requests while the database is away adds none).
    const waiting = new Map<number, Deferred.Deferred<void>>()
    const kick = yield* Queue.sliding<void>(1)
    const reloadOnce = Effect.suspend(() => {
      const seen = changes
      return loadDistributions.pipe(
        Effect.tap((table) =>
          Effect.sync(() => {
            distributions = table
            loadedAt = seen
            for (const [need, done] of waiting) {
              if (need > seen) continue
              waiting.delete(need)
              Deferred.unsafeDone(done, Effect.void)
            }
          })
        ),
        Effect.tapError((e) => Effect.logWarning(`content app: loading distributions failed, retrying: ${e.message}`)),
        // Keep serving the table we have until the database answers again.
        Effect.retry(Schedule.exponential(Duration.millis(100), 2).pipe(Schedule.union(Schedule.spaced(Duration.seconds(5)))))
      )
    })
    // One load at a time; wake-ups arriving during a load (the sliding queue keeps one) cause
    // exactly one more, whose snapshot starts after them.
    yield* Queue.take(kick).pipe(Effect.zipRight(reloadOnce), Effect.forever, Effect.forkScoped)
    yield* session.listen(CONTENT_CHANNEL)
    yield* session.onWakeup((w) => {
      if (w.channel !== undefined && w.channel !== CONTENT_CHANNEL) return
      changes += 1
      kick.unsafeOffer(undefined)
    })
    // The first load. Requests wait for it; it runs in the background so that building the server
    // does no I/O here, and a database that is slow at start delays content requests only.
    kick.unsafeOffer(undefined)

    /** Waits (bounded) for a table loaded after every wake-up announced so far. */
    const awaitCurrent = Effect.suspend(() => {
      if (isCurrent()) return Effect.void
      let done = waiting.get(changes)
      if (done === undefined) {
        done = Deferred.unsafeMake<void>(FiberId.none)
        waiting.set(changes, done)
      }
      return Deferred.await(done).pipe(Effect.timeout(FRESHNESS_WAIT), Effect.ignore)
    })

    const loadPublication = (id: string) =>
      Effect.gen(function*() {
        const [p] = yield* db.rows<{ version_id: string }>(sql`SELECT version_id FROM publications WHERE id = ${id}`)
        // A live distribution holds its publication; a route may be a moment old (see PublicationGone).
        if (!p) return yield* Effect.die(new PublicationGone(id))
        const generated = yield* db.rows<{ relative_path: string; media_type: string; sha256: string; size: number }>(sql`
          SELECT f.relative_path, f.media_type, a.sha256, a.size::float8 AS size
          FROM publication_files f JOIN artifacts a ON a.id = f.artifact_id
          WHERE f.publication_id = ${id} ORDER BY f.position`)
        const content = yield* versionContent(p.version_id).pipe(
          Effect.provideService(Db, db),
          Effect.catchTag("NotFound", (e) => Effect.die(e))
        )
        const files = new Map<string, FileEntry>()
        for (const c of content) {
          const path = pluginOf(c.type).publication.servedPath(c)
          files.set(path, { contentId: c.id, sha256: c.sha256, size: c.size, stored: c.artifact !== null, mediaType: undefined })
        }
        const byPath = new Map<string, Array<FileEntry>>()
        for (const g of generated) {
          const entry: FileEntry = { contentId: undefined, sha256: g.sha256, size: g.size, stored: true, mediaType: g.media_type }
          const same = byPath.get(g.relative_path)
          if (same === undefined) byPath.set(g.relative_path, [entry])
          else same.push(entry)
        }
        for (const [path, [first, ...others]] of byPath) files.set(path, others.length === 0 ? first! : { ...first!, variants: others })
        return files as PublicationFiles
      })

    const publications = new LRUCache<string, PublicationFiles>({ max: MAX_PUBLICATIONS })
    const loading = yield* makeSingleflight<string>()

    const routeIn = (table: Distributions, segments: ReadonlyArray<string>): Route | undefined => {
      let basePath = ""
      for (let depth = 1; depth < segments.length; depth++) {
        basePath = depth === 1 ? segments[0]! : `${basePath}/${segments[depth - 1]}`
        const served = table.get(basePath)
        if (served === undefined) continue
        const relativePath = relativePathOf(segments, depth)
        return relativePath === undefined ? undefined : { basePath, publicationId: served.publicationId, guard: served.guard, relativePath }
      }
      return undefined
    }

    const cachedPublication = (id: string) => {
      const known = publications.get(id)
      if (known !== undefined) countPublicationCache(true)
      return known
    }

    const route = (segments: ReadonlyArray<string>, recheck: boolean) =>
      Effect.gen(function*() {
        if (recheck) yield* session.sync.pipe(Effect.timeout(FRESHNESS_WAIT), Effect.ignore)
        yield* awaitCurrent
        if (distributions === undefined) {
          return yield* new DbError({ message: "the content app has not loaded its routing table yet" })
        }
        return routeIn(distributions, segments)
      })

    return {
      route,
      routeNow: (segments) => (isCurrent() ? routeIn(distributions!, segments) : NOT_CURRENT),
      publication: (id) =>
        Effect.suspend(() => {
          const known = cachedPublication(id)
          if (known !== undefined) return Effect.succeed(known)
          countPublicationCache(false)
          return loading(id, Effect.tap(loadPublication(id), (files) => Effect.sync(() => publications.set(id, files))))
        }),
      cachedPublication
    }
  })
)
