/**
 * What `python.sync` reads from a remote simple index (PEP 503 HTML or PEP 691 JSON, whichever the
 * server answers to pip's `Accept`): the files to keep, each with the sha256 the index gives for it.
 *
 * - With `includes`, only the pages of the projects they name are read (`<url><project>/`);
 *   without, the project list first, then every project's page.
 * - A project's files are kept by the selection rule (lib/requirements.ts): includes and excludes
 *   with PEP 440 specifiers. Entries the page reader refuses (no sha256, not a wheel or sdist of the
 *   project, an unsafe name: lib/simple-read.ts) are reported, never kept.
 * - An included project the index does not have (404 or 410) fails the sync, naming it; with
 *   `skip_missing` it is reported as missing instead.
 *
 * Pages are fetched with the remote's settings (proxy, TLS, credentials, timeouts, retries, rate
 * limit), a few at a time.
 */
import { Data, Effect, Either } from "effect"
import type { DbError } from "../../db/client.js"
import { DownloadError, fetchDocument, RemoteUrlError } from "../../content/download.js"
import type { RemoteAccess } from "../../content/remote-access.js"
import type { Selection } from "./lib/requirements.js"
import { type IndexedFile, parseProjectList, parseProjectPage, projectPageUrl, SIMPLE_ACCEPT } from "./lib/simple-read.js"

/** Index pages larger than this are refused (PyPI's largest project pages are a few MB). */
const PAGE_MAX_BYTES = 64 * 1024 * 1024
/** Project pages fetched at once. */
const PAGE_CONCURRENCY = 4

/** A file of the remote index that the selection keeps. */
export interface RemoteDistribution {
  /** The project as its page was asked for (PEP 503-normalised). */
  readonly project: string
  readonly file: IndexedFile & { readonly sha256: string }
}

export interface RemoteIndex {
  readonly files: ReadonlyArray<RemoteDistribution>
  /** Entries the index lists that cannot be used, with why ("<project>: <file>: <reason>"). */
  readonly rejected: ReadonlyArray<string>
  /** Included projects the index answered 404 or 410 for (with skip_missing). */
  readonly missingProjects: ReadonlyArray<string>
}

/** The index could not be read: `code` is the task's error code. */
export class IndexUnreadable extends Data.TaggedError("IndexUnreadable")<{
  readonly code: "index_unavailable" | "index_invalid" | "project_missing"
  readonly message: string
}> {}

const isGone = (e: unknown) => e instanceof DownloadError && e.reason === "http" && (e.status === 404 || e.status === 410)

const page = (remote: RemoteAccess, url: string) =>
  fetchDocument(url, { ...remote.options, maxBytes: PAGE_MAX_BYTES, accept: SIMPLE_ACCEPT })

const unavailable = (remote: RemoteAccess) => (e: DownloadError | RemoteUrlError) =>
  new IndexUnreadable({ code: "index_unavailable", message: `simple index of remote ${remote.name}: ${e.message}` })

/** The projects to read: those the includes name, or the index's whole project list. */
const projectsOf = (remote: RemoteAccess, selection: Selection, rejected: Array<string>) =>
  Effect.gen(function*() {
    if (selection.projects !== undefined) return selection.projects.filter(selection.wantsProject)
    const root = yield* page(remote, remote.url).pipe(
      Effect.catchTags({ DownloadError: unavailable(remote), RemoteUrlError: unavailable(remote) })
    )
    const list = yield* Either.mapLeft(parseProjectList(root, remote.url), (e) => new IndexUnreadable({ code: "index_invalid", message: e.message }))
    for (const r of list.rejected) rejected.push(`project list: ${r.entry}: ${r.reason}`)
    return list.projects.map((p) => p.project).filter(selection.wantsProject)
  })

export const readRemoteIndex = (
  remote: RemoteAccess,
  selection: Selection,
  opts: { readonly skipMissing: boolean }
): Effect.Effect<RemoteIndex, IndexUnreadable | DbError> =>
  Effect.gen(function*() {
    const rejected: Array<string> = []
    const missingProjects: Array<string> = []
    const projects = yield* projectsOf(remote, selection, rejected)
    const included = selection.projects !== undefined
    const perProject = yield* Effect.forEach(projects, (project) =>
      Effect.gen(function*() {
        const url = projectPageUrl(remote.url, project)
        const fetched = yield* page(remote, url).pipe(
          Effect.map(Either.right),
          // A project the list named and that is gone a moment later is not there either: skip it.
          Effect.catchIf((e) => isGone(e) && (opts.skipMissing || !included), () => Effect.succeed(Either.left(project))),
          Effect.catchIf(isGone, () =>
            Effect.fail(new IndexUnreadable({ code: "project_missing", message: `remote ${remote.name} has no project ${project} (${url})` }))),
          Effect.catchTags({ DownloadError: unavailable(remote), RemoteUrlError: unavailable(remote) })
        )
        if (Either.isLeft(fetched)) {
          if (included) missingProjects.push(project)
          return []
        }
        const parsed = yield* Either.mapLeft(parseProjectPage(fetched.right, project), (e) => new IndexUnreadable({ code: "index_invalid", message: e.message }))
        for (const r of parsed.rejected) rejected.push(`${project}: ${r.entry}: ${r.reason}`)
        return parsed.files
          .filter((f): f is IndexedFile & { sha256: string } => f.sha256 !== undefined)
          .filter((f) => selection.keeps(project, f.distribution.parsedVersion))
          .map((file) => ({ project, file }))
      }), { concurrency: PAGE_CONCURRENCY })
    // A page lists only its own project's files (lib/simple-read.ts), each once: file names are unique.
    return { files: perProject.flat(), rejected, missingProjects: missingProjects.sort() }
  })
