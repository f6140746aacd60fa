/**
 * The content app's routing table, in memory: base path -> distribution's publication ->
 * relative path -> file (digest, size, whether the bytes are stored).
 *
 * Distributions change, so their table is loaded at start and reloaded whenever a wake-up says
 * distributions changed (`named.ts` sends one with every distribution revision and delete; the
 * session sends an "everything changed" wake-up after each reconnect, which covers notifications
 * lost while it was away). Publications never change, so each one's file map is loaded once, on
 * first use, and kept (the least recently used are dropped beyond `MAX_PUBLICATIONS`).
 *
 * So a request for a file that is stored makes no database query at all. Once both are loaded,
 * `routeNow` and `cachedPublication` answer synchronously, without a fiber: the content app's
 * common case (see `serve.ts`).
 */
import { sql } from "drizzle-orm"
import { Context, Deferred, Duration, Effect, Layer, PubSub, Queue, Schedule } from "effect"
import { Db, type DbError } from "../../db/client.js"
import { Session } from "../../engine/session.js"
import { versionContent } from "../versions.js"
import { countPublicationCache } from "./metrics.js"
import { relativePathOf } from "./paths.js"
import { makeSingleflight } from "./singleflight.js"

/** The publication's manifest is served under this relative path. */
export const MANIFEST_PATH = "PULP_MANIFEST"

/** Publications whose file maps are kept in memory. */
const MAX_PUBLICATIONS = 64

export interface FileEntry {
  /** The content unit; undefined for the publication's manifest. */
  readonly contentId: string | undefined
  readonly sha256: string
  readonly size: number
  /** False for an on-demand unit not fetched yet; set (once) when it has been. */
  stored: boolean
}

export type PublicationFiles = ReadonlyMap<string, FileEntry>

export interface Route {
  readonly basePath: string
  /** Null while the distribution serves no publication. */
  readonly publicationId: string | null
  readonly relativePath: string
}

export interface RoutingTableShape {
  /**
   * The live distribution whose base path is a path-prefix of `segments` (base paths never
   * overlap, so there is at most one), with the rest as a safe relative path.
   */
  readonly route: (segments: ReadonlyArray<string>) => Effect.Effect<Route | undefined>
  /** `route` without waiting: `NOT_LOADED` until the distributions have been loaded once. */
  readonly routeNow: (segments: ReadonlyArray<string>) => Route | undefined | typeof NOT_LOADED
  /** A publication's files by relative path, its manifest included. */
  readonly publication: (id: string) => Effect.Effect<PublicationFiles, DbError>
  /** `publication` if its files are in memory already (counted as a hit), else undefined. */
  readonly cachedPublication: (id: string) => PublicationFiles | undefined
}

export const NOT_LOADED = Symbol("not loaded")

export class RoutingTable extends Context.Tag("cairn/content/RoutingTable")<RoutingTable, RoutingTableShape>() {}

/** Base path -> the publication its distribution serves. */
type Distributions = ReadonlyMap<string, string | null>

export const RoutingTableLive = Layer.scoped(
  RoutingTable,
  Effect.gen(function*() {
    const db = yield* Db
    const session = yield* Session

    // One statement, one snapshot: a base path always comes with its own distribution's revision.
    const loadDistributions = db.rows<{ base_path: string; publication_id: string | null }>(sql`
      SELECT p.base_path, r.publication_id
      FROM distribution_paths p
      JOIN names n ON n.kind = 'distribution' AND n.resource_id = p.distribution_id
      JOIN distribution_revisions r ON r.id = n.revision_id`).pipe(
        Effect.map((rows): Distributions => new Map(rows.map((r) => [r.base_path, r.publication_id])))
      )

    // Plain variables, not Refs: requests read them synchronously (see `routeNow`).
    let distributions: Distributions | undefined
    // Requests wait for the first load. It runs in the background so that building the server
    // does no I/O here, and a database that is slow at start delays content requests only.
    const loaded = yield* Deferred.make<void>()
    const reload = loadDistributions.pipe(
      Effect.flatMap((table) => Effect.sync(() => (distributions = table))),
      Effect.tapError((e) => Effect.logWarning(`content app: loading distributions failed, retrying: ${e.message}`)),
      // Keep serving the table we have until the database answers again.
      Effect.retry(Schedule.exponential(Duration.millis(100), 2).pipe(Schedule.union(Schedule.spaced(Duration.seconds(5)))))
    )

    // Subscribe before the first load: a change committed after that load has a wake-up queued.
    const wakeups = yield* PubSub.subscribe(session.wakeups)
    const followChanges = Queue.take(wakeups).pipe(
      Effect.flatMap((w) =>
        w.distributions
          // Wake-ups queued meanwhile are covered by this one reload.
          ? Queue.takeAll(wakeups).pipe(Effect.zipRight(reload))
          : Effect.void
      ),
      Effect.forever
    )
    yield* reload.pipe(
      Effect.zipRight(Deferred.succeed(loaded, undefined)),
      Effect.zipRight(followChanges),
      Effect.forkScoped
    )

    const loadPublication = (id: string) =>
      Effect.gen(function*() {
        const [p] = yield* db.rows<{ version_id: string; sha256: string; size: number }>(sql`
          SELECT p.version_id, a.sha256, a.size::float8 AS size
          FROM publications p JOIN artifacts a ON a.id = p.manifest_artifact_id WHERE p.id = ${id}`)
        // Distributions reference publications by foreign key, and publications are never deleted.
        if (!p) return yield* Effect.dieMessage(`publication ${id} does not exist`)
        const content = yield* versionContent(p.version_id).pipe(
          Effect.provideService(Db, db),
          Effect.catchTag("NotFound", (e) => Effect.die(e))
        )
        const files = new Map<string, FileEntry>()
        for (const c of content) {
          files.set(c.relative_path, { contentId: c.id, sha256: c.sha256, size: c.size, stored: c.artifact !== null })
        }
        files.set(MANIFEST_PATH, { contentId: undefined, sha256: p.sha256, size: p.size, stored: true })
        return files as PublicationFiles
      })

    // A Map iterates in insertion order: re-inserting on every hit makes the first key the least
    // recently used.
    const publications = new Map<string, PublicationFiles>()
    const remember = (id: string, files: PublicationFiles) => {
      publications.delete(id)
      publications.set(id, files)
      if (publications.size > MAX_PUBLICATIONS) publications.delete(publications.keys().next().value!)
    }
    const loading = yield* makeSingleflight<string>()

    const routeIn = (table: Distributions, segments: ReadonlyArray<string>): Route | undefined => {
      let basePath = ""
      for (let depth = 1; depth < segments.length; depth++) {
        basePath = depth === 1 ? segments[0]! : `${basePath}/${segments[depth - 1]}`
        if (!table.has(basePath)) continue
        const relativePath = relativePathOf(segments, depth)
        return relativePath === undefined ? undefined : { basePath, publicationId: table.get(basePath)!, relativePath }
      }
      return undefined
    }

    const cachedPublication = (id: string) => {
      const known = publications.get(id)
      if (known !== undefined) {
        countPublicationCache(true)
        remember(id, known)
      }
      return known
    }

    return {
      route: (segments) => Effect.map(Deferred.await(loaded), () => routeIn(distributions!, segments)),
      routeNow: (segments) => (distributions === undefined ? NOT_LOADED : routeIn(distributions, segments)),
      publication: (id) =>
        Effect.suspend(() => {
          const known = cachedPublication(id)
          if (known !== undefined) return Effect.succeed(known)
          countPublicationCache(false)
          return loading(id, Effect.tap(loadPublication(id), (files) => Effect.sync(() => remember(id, files))))
        }),
      cachedPublication
    }
  })
)
