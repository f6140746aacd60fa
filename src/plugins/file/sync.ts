/**
 * `file.sync`: make a new version of a repository from a remote's PULP_MANIFEST.
 *
 * Fetch and parse the manifest (a malformed line fails the task, naming the line); resolve each
 * entry's URL next to the manifest (a path escaping it fails the task). The remote revision's
 * network settings (proxy, TLS, credentials, timeouts, retries, rate limit:
 * src/content/remote-access.ts) apply to the manifest and to every file. From there it is every
 * sync's path (src/content/sync-files.ts): stored digests adopted, the others downloaded
 * (`immediate`) or left for the content app (`on_demand`), `skip_missing`, and one commit cutting
 * the version (mirror: exactly the manifest, less what is missing; otherwise added on top of the
 * latest).
 *
 * Holds `repository:<id>` exclusively: syncs and modifications of one repository run in
 * submission order.
 */
import { Effect, Either } from "effect"
import { TaskFailure } from "../../engine/errors.js"
import { defineKind } from "../../engine/kind.js"
import { fetchText, resolveRelative } from "../../content/download.js"
import { orDbFailure, REPOSITORY_VERSION, resolveNamedFields } from "../../content/kinds/common.js"
import { openRemote, SyncParams, syncEntries } from "../../content/sync-files.js"
import { parseManifest } from "./manifest.js"
import { fileUnit } from "./unit.js"

/** Manifests larger than this are refused (about 2.5 million entries). */
const MANIFEST_MAX_BYTES = 256 * 1024 * 1024

export const fileSync = defineKind({
  name: "file.sync",
  params: SyncParams,
  outputs: { version: REPOSITORY_VERSION },
  resources: (p) => ({ exclusive: [`repository:${p.repository.id}`], shared: [] }),
  prepare: (raw) => resolveNamedFields(raw, [["repository", "repository"], ["remote", "remote"]], fileUnit.type),
  handler: (p, ctx) =>
    Effect.gen(function*() {
      const remote = yield* openRemote(p.remote.revision)
      const text = yield* fetchText(remote.url, { ...remote.options, maxBytes: MANIFEST_MAX_BYTES }).pipe(
        Effect.catchTag("DownloadError", (e) => new TaskFailure({ code: "manifest_unavailable", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` })),
        Effect.catchTag("RemoteUrlError", (e) => new TaskFailure({ code: "manifest_unavailable", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` }))
      )
      const manifest = yield* Either.mapLeft(
        parseManifest(text),
        (e) => new TaskFailure({ code: "manifest_invalid", message: `PULP_MANIFEST of remote ${p.remote.name}: ${e.message}` })
      )
      const entries = []
      for (const e of manifest) {
        const u = resolveRelative(remote.url, e.relative_path)
        if (Either.isLeft(u)) return yield* new TaskFailure({ code: "manifest_invalid", message: `line ${e.line}: ${u.left.message}` })
        entries.push({ relative_path: e.relative_path, sha256: e.sha256, size: e.size, url: u.right.href })
      }
      return yield* syncEntries(fileUnit, p, ctx, remote, entries)
    }).pipe(orDbFailure)
})
