/**
 * The cairn client for code that does not use Effect: every method returns a Promise and rejects
 * with a `CairnError` (one-sentence `message`, `code`, `status`, `details`).
 *
 *   const cairn = createClient({ url: "http://127.0.0.1:8080", token: process.env.CAIRN_TOKEN })
 *   const g = await cairn.submit({ nodes: { a: { task: "debug.sleep", params: { ms: 100 } } } })
 *   const f = await cairn.awaitFuture(g.nodes.a!.outputs.result!, { timeout: 30_000 })
 *
 * It runs the Effect client (./effect.ts, derived from the HttpApi definition) underneath, so both
 * speak exactly the same contract. Uploads stream with fetch (./upload.ts).
 */
import { FetchHttpClient } from "@effect/platform"
import { Cause, Effect, Exit, type Schema } from "effect"
import type { SignedUrl as SignedUrlSchema } from "../api/named-groups.js"
import type * as S from "../api/schemas.js"
import { type ClientOptions, DEFAULT_URL, makeCairnClient } from "./effect.js"
import { CairnError } from "./errors.js"
import {
  awaitFuture,
  followGraph,
  type FutureView,
  graphChange,
  type GraphChange,
  type GraphListQuery,
  type GraphPage,
  type GraphSummary,
  type GraphSubmission,
  type GraphView,
  normalizeId,
  submitGraph,
  type SubmittedGraph,
  type TaskView
} from "./graphs.js"
import { named, type NamedGroup, type NamedOps, type ViewOf } from "./named.js"
import { uploadBytes, uploadFile, type UploadOptions, type UploadResult } from "./upload.js"

export { CairnError, type CairnErrorCode } from "./errors.js"
export { type ClientOptions, DEFAULT_URL } from "./effect.js"
export type { FutureView, GraphChange, GraphListQuery, GraphPage, GraphSubmission, GraphSummary, GraphView, SubmittedGraph, TaskView, UploadOptions, UploadResult }
export type WorkerView = Schema.Schema.Type<typeof S.WorkerView>
export type TaskPage = Schema.Schema.Type<typeof S.TaskPage>
export type TaskQuery = Schema.Schema.Type<typeof S.TaskQuery>
export type RepositoryRevision = ViewOf<"repositories">
export type RemoteRevision = ViewOf<"remotes">
export type DistributionRevision = ViewOf<"distributions">
/** A schedule's revision; `next_run` and `last_*` are on its current revision only. */
export type ScheduleRevision = ViewOf<"schedules">
export type SignedUrl = Schema.Schema.Type<typeof SignedUrlSchema>

export interface Cancelable {
  /** Stop waiting: the promise rejects with code `aborted` (the work itself goes on). */
  readonly signal?: AbortSignal | undefined
}

export interface AwaitFutureOptions extends Cancelable {
  /** Milliseconds; then the promise rejects with code `timeout`. Default: no limit. */
  readonly timeout?: number | undefined
}

export interface AwaitGraphOptions extends AwaitFutureOptions {
  /** Every view fetched while waiting (about once a second, and at each settlement). */
  readonly onProgress?: ((graph: GraphView) => void) | undefined
  /** Milliseconds between views while nothing settles; default 1000. */
  readonly interval?: number | undefined
}

type Promised<G extends NamedGroup> = {
  readonly [K in keyof NamedOps<G>]: NamedOps<G>[K] extends (...args: infer A) => Effect.Effect<infer R, CairnError>
    ? (...args: A) => Promise<R>
    : never
}

export const createClient = (opts: Partial<ClientOptions> = {}) => {
  const conn: ClientOptions = { url: opts.url ?? DEFAULT_URL, token: opts.token }
  // Building the generated client is synchronous: no request is made here.
  const client = Effect.runSync(makeCairnClient(conn).pipe(Effect.provide(FetchHttpClient.layer)))

  const run = async <A>(effect: Effect.Effect<A, CairnError>, o: Cancelable = {}, what = "the request"): Promise<A> => {
    const exit = await Effect.runPromiseExit(effect, o.signal === undefined ? undefined : { signal: o.signal })
    if (Exit.isSuccess(exit)) return exit.value
    if (o.signal?.aborted) throw new CairnError({ code: "aborted", message: `${what} was aborted`, cause: o.signal.reason })
    throw Cause.squash(exit.cause)
  }

  /** The Effect operations of a named group, each run as a Promise (same names, same arguments). */
  const promised = <G extends NamedGroup>(group: G): Promised<G> => {
    const ops = named(client, group) as unknown as Record<string, (...args: Array<unknown>) => Effect.Effect<unknown, CairnError>>
    return Object.fromEntries(
      Object.entries(ops).map(([k, f]) => [k, (...args: Array<unknown>) => run(f(...args))])
    ) as Promised<G>
  }
  const id = (i: string) => ({ path: { id: normalizeId(i) } })

  return {
    url: client.url,
    /** The Effect client underneath (for code that mixes both styles). */
    effect: client,

    /** Every task and output future exists when this resolves; the server names every offending node of a refused graph. */
    submit: (graph: GraphSubmission) => run(submitGraph(client, graph)),
    graph: (graphId: string) => run(client.call((api) => api.graphs.get({ ...id(graphId), urlParams: {}, headers: {} }))),
    /** Graphs newest first, with task counts; pass `next_cursor` back as `cursor`. */
    graphs: (query: GraphListQuery = {}) => run(client.call((api) => api.graphs.list({ urlParams: query, headers: {} }))),
    /**
     * The graph once it differs from the view with `etag` (at once without one), or undefined when
     * it did not within `wait` seconds (default 30): loop on it to follow a graph live.
     */
    graphChange: (graphId: string, etag?: string, o: { readonly wait?: number } & Cancelable = {}) =>
      run(graphChange(client, graphId, etag, o.wait ?? 30), o, `watching graph ${graphId}`),
    cancelGraph: (graphId: string) => run(client.call((api) => api.graphs.cancel(id(graphId)))),
    task: (taskId: string) => run(client.call((api) => api.tasks.get(id(taskId)))),
    tasks: (query: TaskQuery = {}) => run(client.call((api) => api.tasks.list({ urlParams: query }))),
    cancelTask: (taskId: string) => run(client.call((api) => api.tasks.cancel(id(taskId)))),
    /** The future now, or after up to `wait` seconds (0..60) if it is still pending. */
    future: (futureId: string, o: { readonly wait?: number } = {}) =>
      run(client.call((api) => api.futures.get({ ...id(futureId), urlParams: o.wait === undefined ? {} : { wait: o.wait } }))),
    workers: () => run(client.call((api) => api.workers.list())),

    /** Resolves with the settled future (resolved, failed or canceled); rejects only on timeout, abort or trouble. */
    awaitFuture: (futureId: string, o: AwaitFutureOptions = {}): Promise<FutureView> =>
      run(awaitFuture(client, futureId, { timeout: o.timeout }), o, `awaiting future ${futureId}`),
    /** Resolves with the graph once every task has settled (whatever its state). */
    awaitGraph: (graphId: string, o: AwaitGraphOptions = {}): Promise<GraphView> =>
      run(
        followGraph(client, graphId, {
          timeout: o.timeout,
          interval: o.interval,
          onUpdate: o.onProgress === undefined ? undefined : (g) => Effect.sync(() => o.onProgress!(g))
        }),
        o,
        `awaiting graph ${graphId}`
      ),

    repositories: {
      ...promised("repositories"),
      /** The versions something holds, newest first (released ones are gone at once). */
      versions: (name: string) => run(client.call((api) => api.repositories.versions({ path: { name } }))),
      /** One version; rejects with code not_found once it is released. */
      version: (name: string, version: number) => run(client.call((api) => api.repositories.version({ path: { name, number: version } }))),
      /**
       * Release one version: submits a repository.prune task and resolves with its graph and task
       * (await the task's `report` output for what was released and what is still held).
       */
      deleteVersion: (name: string, version: number) =>
        run(client.call((api) => api.repositories.deleteVersion({ path: { name, number: version } }))),
      /** One page of a version's content; pass `next` back as `after`. */
      content: (name: string, version: number, page: { readonly after?: string; readonly limit?: number } = {}) =>
        run(client.call((api) => api.repositories.content({ path: { name, number: version }, urlParams: page })))
    },
    remotes: promised("remotes"),
    distributions: {
      ...promised("distributions"),
      /**
       * A signed URL for `path` (relative, unencoded) of a distribution with a signed guard, valid
       * `expiresInSeconds`; `url` is on this client's server address.
       */
      sign: (name: string, path: string, expiresInSeconds: number): Promise<SignedUrl> =>
        run(Effect.map(
          client.call((api) => api.distributions.sign({ path: { name }, payload: { path, expires_in_seconds: expiresInSeconds } })),
          (signed) => ({ ...signed, url: client.url + signed.path })
        ))
    },
    /** Graphs submitted at each tick of a cron expression, once across the cluster. */
    schedules: {
      ...promised("schedules"),
      /** The ticks the schedule claimed, newest first, with their graphs; pass the last `tick` back as `before`. */
      graphs: (name: string, page: { readonly limit?: number; readonly before?: string } = {}) =>
        run(client.call((api) => api.schedules.graphs({ path: { name }, urlParams: page })))
    },

    /** Upload a file (streamed; its sha256 is computed first and checked by the server). */
    uploadFile: (path: string, o: UploadOptions = {}): Promise<UploadResult> => uploadFile(conn, path, o),
    upload: (bytes: Uint8Array, o: UploadOptions = {}): Promise<UploadResult> => uploadBytes(conn, bytes, o)
  }
}

export type CairnClient = ReturnType<typeof createClient>
