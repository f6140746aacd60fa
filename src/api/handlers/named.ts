/** Handlers of the three named-resource groups; the logic is in src/content/named.ts. */
import { HttpApiBuilder, HttpServerRequest } from "@effect/platform"
import { Effect, type Schema } from "effect"
import { versionContentByNumber } from "../../content/version-content.js"
import { getVersion, listVersions } from "../../content/versions.js"
import { submitGraph } from "../../engine/submit.js"
import { createNamed, deleteNamed, getNamed, listNamed, listRevisions, type NamedKind, updateNamed } from "../../content/named.js"
import { signContentPath } from "../../content/sign.js"
import { CairnConfig, type CairnConfigShape } from "../../config/config.js"
import { CairnApi } from "../definition.js"
import { toApi } from "../engine-errors.js"
import type { DistributionView, RemoteView, RepositoryView } from "../named-groups.js"

/** Fields a create may leave out. */
const defaults = (config: CairnConfigShape): Record<NamedKind, Record<string, unknown>> => ({
  repository: {},
  remote: { policy: "immediate", download_concurrency: config.downloadConcurrency },
  distribution: {},
  // Schedules have their own handlers (schedules.ts), which validate and default their fields.
  schedule: {}
})

/**
 * The operations every kind shares. named.ts builds views generically (RevisionView); `V` is the
 * kind's view type, which those views have by construction (revisionView selects exactly its fields).
 */
const ops = <V>(kind: NamedKind) => {
  const as = <E, R>(e: Effect.Effect<unknown, E, R>) => e as Effect.Effect<V, E, R>
  const asList = <E, R>(e: Effect.Effect<unknown, E, R>) => e as Effect.Effect<ReadonlyArray<V>, E, R>
  return {
    create: ({ payload }: { payload: { readonly name: string } }) => {
      const { name, ...fields } = payload
      return as(toApi(Effect.flatMap(CairnConfig, (config) => createNamed(kind, name, { ...defaults(config)[kind], ...fields }))))
    },
    list: () => asList(toApi(listNamed(kind))),
    get: ({ path }: { path: { readonly name: string } }) => as(toApi(getNamed(kind, path.name))),
    revisions: ({ path }: { path: { readonly name: string } }) => asList(toApi(listRevisions(kind, path.name))),
    update: ({ path, payload, headers }: { path: { readonly name: string }; payload: object; headers: { readonly "if-match"?: string | undefined } }) =>
      as(toApi(updateNamed(kind, path.name, payload as Record<string, unknown>, headers["if-match"]))),
    delete: ({ path }: { path: { readonly name: string } }) => toApi(deleteNamed(kind, path.name)).pipe(Effect.asVoid)
  }
}

const repository = ops<Schema.Schema.Type<typeof RepositoryView>>("repository")
export const RepositoriesLive = HttpApiBuilder.group(CairnApi, "repositories", (h) =>
  h.handle("create", repository.create).handle("list", repository.list).handle("get", repository.get)
    .handle("revisions", repository.revisions).handle("update", repository.update).handle("delete", repository.delete)
    .handle("versions", ({ path }) => toApi(listVersions(path.name)))
    .handle("version", ({ path }) => toApi(getVersion(path.name, path.number)))
    .handle("deleteVersion", ({ path }) =>
      toApi(Effect.gen(function*() {
        yield* getVersion(path.name, path.number)
        const g = yield* submitGraph({
          label: `delete version ${path.number} of ${path.name}`,
          nodes: { prune: { task: "repository.prune", params: { repository: path.name, versions: [path.number] } } }
        })
        return { graph: g.id, task: g.nodes.prune!.task }
      })))
    .handle("content", ({ path, urlParams }) => toApi(versionContentByNumber(path.name, path.number, urlParams))))

const remote = ops<Schema.Schema.Type<typeof RemoteView>>("remote")
export const RemotesLive = HttpApiBuilder.group(CairnApi, "remotes", (h) =>
  h.handle("create", remote.create).handle("list", remote.list).handle("get", remote.get)
    .handle("revisions", remote.revisions).handle("update", remote.update).handle("delete", remote.delete))

/** A Host header we are willing to put in front of a URL (anything else: the answer's `url` is origin-relative). */
const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/

const sign = ({ path, payload }: { path: { readonly name: string }; payload: { readonly path: string; readonly expires_in_seconds: number } }) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const signed = yield* toApi(signContentPath(path.name, payload.path, payload.expires_in_seconds, Date.now()))
    const host = request.headers["host"]
    return { url: host !== undefined && HOST.test(host) ? `http://${host}${signed.path}` : signed.path, ...signed }
  })

const distribution = ops<Schema.Schema.Type<typeof DistributionView>>("distribution")
export const DistributionsLive = HttpApiBuilder.group(CairnApi, "distributions", (h) =>
  h.handle("create", distribution.create).handle("list", distribution.list).handle("get", distribution.get)
    .handle("revisions", distribution.revisions).handle("update", distribution.update).handle("delete", distribution.delete)
    .handle("sign", sign))
