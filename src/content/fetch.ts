/**
 * Fetching one file from a remote into the store: wait for a cluster-wide download slot of the
 * remote's host (slot locks `host(<host>).slot(i)`, held only while downloading, so N downloads
 * per host at most across every worker), download with retries, verify digest and size while
 * storing, and adopt the artifact for `owner`.
 */
import { Duration, Effect } from "effect"
import { CairnConfig } from "../config/config.js"
import { Db } from "../db/client.js"
import { type ArtifactOwner, storeArtifact } from "./artifacts.js"
import { download } from "./download.js"
import { acquireSlot, releaseSlotLocks, type SlotOwner } from "./slot-locks.js"
import { ArtifactStorage } from "./storage.js"

export interface RemoteFile {
  readonly url: string
  readonly sha256: string
  readonly size: number
  readonly relativePath: string
}

/** Run `eff` holding one of the host's download slots; waits (polling with jitter) for a free one. */
export const withHostSlot = <A, E, R>(host: string, slot: SlotOwner, eff: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const db = yield* Db
    const config = yield* CairnConfig
    const name = `host(${host})`
    const take = db.transaction((tx) => acquireSlot(tx, name, config.hostDownloadSlots, slot))
    let held = yield* take
    for (let wait = 20; held === undefined; wait = Math.min(wait * 2, 500)) {
      yield* Effect.sleep(Duration.millis(wait * (0.5 + Math.random())))
      held = yield* take
    }
    const lock = held
    return yield* eff.pipe(Effect.ensuring(db.transaction((tx) => releaseSlotLocks(tx, [lock], slot)).pipe(Effect.ignore)))
  })

export const fetchArtifact = (file: RemoteFile, owner: ArtifactOwner, slot: SlotOwner) =>
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const storage = yield* ArtifactStorage
    const host = new URL(file.url).host
    const opts = {
      timeoutMs: Duration.toMillis(config.downloadTimeout),
      retries: config.downloadRetries,
      maxRedirects: 5,
      relativePath: file.relativePath
    }
    const put = download(file.url, file, (body) => storage.put(body, { sha256: file.sha256, size: file.size }), opts)
    return yield* withHostSlot(host, slot, storeArtifact(put, owner))
  })
