/**
 * On-demand content: a unit synced with the `on_demand` policy has no stored bytes until someone
 * asks for it. The first request fetches it from its upstream URL (`content_sources`), with the
 * settings of the remote revision that synced it (../remote-access.ts: proxy, TLS, credentials,
 * timeouts, retries, rate limit), stores it (the store verifies size and digest), and links it to
 * the unit; later requests serve it from the store.
 *
 * Storing and linking follow the artifact protocol of `../artifacts.ts` (`storeArtifact`), which
 * keeps a concurrent orphan cleanup from removing the bytes between the two. Concurrent requests
 * for the same bytes in this process share one fetch (singleflight by digest); other processes may
 * fetch the same file at the same time, which costs a second download but stores it once.
 */
import { sql } from "drizzle-orm"
import { Context, Data, Effect, Layer } from "effect"
import { CairnConfig } from "../../config/config.js"
import { Db, type DbError, txRows } from "../../db/client.js"
import { adoptExisting, type ArtifactOwner, storeArtifact } from "../artifacts.js"
import { download } from "../download.js"
import { remoteAccess } from "../remote-access.js"
import { ArtifactStorage, type StorageError } from "../storage.js"
import type { FileEntry } from "./routing-table.js"
import { makeSingleflight } from "./singleflight.js"

/** The file could not be fetched from upstream, or upstream sent something else. Nothing was stored. */
export class UpstreamUnavailable extends Data.TaggedError("UpstreamUnavailable")<{ readonly message: string }> {}

export interface OnDemandShape {
  /** Make sure the bytes of `file` are stored, fetching them the first time. */
  readonly ensureStored: (file: FileEntry) => Effect.Effect<void, UpstreamUnavailable | DbError | StorageError>
}

export class OnDemand extends Context.Tag("cairn/content/OnDemand")<OnDemand, OnDemandShape>() {}

/** The content unit owns the artifact: the link a sync with the `immediate` policy writes too. */
const ownedByContent = (contentId: string): ArtifactOwner => (tx, artifactId) =>
  txRows(tx, sql`INSERT INTO content_artifacts (content_id, artifact_id) VALUES (${contentId}, ${artifactId}) ON CONFLICT DO NOTHING`)
    .pipe(Effect.asVoid)

export const OnDemandLive = Layer.scoped(
  OnDemand,
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const db = yield* Db
    const storage = yield* ArtifactStorage
    /**
     * Download from the first source that delivers the right bytes, newest remote revision first,
     * each with its remote revision's settings (proxy, TLS, credentials, timeouts, rate limit).
     */
    const fetchFrom = (file: FileEntry, sources: ReadonlyArray<{ readonly url: string; readonly remote_revision_id: string }>) =>
      Effect.firstSuccessOf(sources.map((source) =>
        remoteAccess(source.remote_revision_id).pipe(
          Effect.flatMap((remote) =>
            download(source.url, file, (body) => storage.put(body, { sha256: file.sha256, size: file.size }), remote.options)
          ),
          Effect.tapError((e) => Effect.logWarning(`content app: on-demand fetch of ${source.url} failed: ${e.message}`))
        )
      ))

    /**
     * Link the unit to its artifact, downloading the bytes unless they are stored already (another
     * process fetched them, or another unit has the same bytes).
     */
    const obtain = (file: FileEntry, contentId: string) =>
      Effect.gen(function*() {
        const owner = ownedByContent(contentId)
        if ((yield* adoptExisting(file.sha256, owner)) === undefined) {
          const sources = yield* db.rows<{ url: string; remote_revision_id: string }>(
            sql`SELECT url, remote_revision_id FROM content_sources WHERE content_id = ${contentId} ORDER BY remote_revision_id DESC`
          )
          if (sources.length === 0) {
            return yield* new UpstreamUnavailable({ message: `content ${contentId} is not stored and has no upstream source` })
          }
          yield* storeArtifact(fetchFrom(file, sources), owner)
        }
        file.stored = true
      }).pipe(
        Effect.provideService(Db, db),
        Effect.provideService(ArtifactStorage, storage),
        Effect.provideService(CairnConfig, config),
        Effect.catchTags({
          DownloadError: (e) => new UpstreamUnavailable({ message: e.message }),
          RemoteUnavailable: (e) => new UpstreamUnavailable({ message: e.message }),
          RemoteUrlError: (e) => new UpstreamUnavailable({ message: e.message }),
          DigestMismatch: (e) => new UpstreamUnavailable({ message: `upstream sent the wrong file: ${e.message}` }),
          SizeMismatch: (e) => new UpstreamUnavailable({ message: `upstream sent the wrong file: ${e.message}` }),
          TooLarge: (e) => new UpstreamUnavailable({ message: `upstream sent the wrong file: ${e.message}` }),
          SourceError: (e) => new UpstreamUnavailable({ message: e.message }),
          ArtifactGone: (e) => new UpstreamUnavailable({ message: `artifact ${e.sha256} was removed while it was being stored` }),
          // Digests come from our own rows, which were checked when they were written.
          BadDigest: (e) => Effect.die(e)
        })
      )

    const fetching = yield* makeSingleflight<string>()

    return {
      ensureStored: (file) =>
        Effect.suspend(() => {
          const contentId = file.contentId
          if (file.stored || contentId === undefined) return Effect.void
          return fetching(file.sha256, obtain(file, contentId)).pipe(
            // The flight may have been for another unit with the same bytes: this one still needs
            // its own link (the bytes are stored now, so that is one transaction, no download).
            Effect.zipRight(Effect.suspend(() => (file.stored ? Effect.void : obtain(file, contentId))))
          )
        })
    }
  })
)
