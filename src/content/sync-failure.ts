/**
 * How a sync (src/content/sync-files.ts) and its download shards (src/content/sync-shards.ts) reach
 * their remote, and how what fails below them becomes the task's error.
 */
import { Effect } from "effect"
import { TaskFailure } from "../engine/errors.js"
import { remoteAccess } from "./remote-access.js"

/** The remote revision the sync was submitted with, as the downloader reaches it. */
export const openRemote = (revision: string) =>
  remoteAccess(revision).pipe(
    Effect.catchTag("RemoteUnavailable", (e) => new TaskFailure({ code: "remote_unavailable", message: e.message }))
  )

/** A failure below the sync (a download, the store, the database) as the task's error. */
export const syncFailure = (e: { readonly _tag: string; readonly message: string }, relativePath: string) => {
  const code = e._tag === "DigestMismatch" ? "digest_mismatch"
    : e._tag === "SizeMismatch" ? "size_mismatch"
    : e._tag === "DownloadError" ? "download_failed"
    : e._tag === "DbError" ? "db_error"
    : e._tag === "ParentGone" ? "parent_gone"
    : "storage_error"
  return new TaskFailure({ code, message: relativePath === "" ? e.message : `${relativePath}: ${e.message}` })
}
