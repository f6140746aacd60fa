/**
 * Graphs and futures as Effects over `CairnClient`: submitting a graph, and waiting for work to
 * finish: a future (long-poll loop) and a whole graph (its views, as often as a display wants
 * them, until every task has settled).
 */
import { Duration, Effect, ParseResult, Schema } from "effect"
import * as S from "../api/schemas.js"
import type { CairnClientShape } from "./effect.js"
import { CairnError } from "./errors.js"

export type GraphSubmission = Schema.Schema.Type<typeof S.GraphSubmission>
export type SubmittedGraph = Schema.Schema.Type<typeof S.SubmittedGraph>
export type FutureView = Schema.Schema.Type<typeof S.FutureView>
export type GraphView = Schema.Schema.Type<typeof S.GraphView>
export type TaskView = Schema.Schema.Type<typeof S.TaskView>

/** The longest long-poll the contract allows is 60 s; 30 s keeps proxies with 60 s idle timeouts happy. */
const LONG_POLL_SECONDS = 30

export const isSettledGraph = (g: GraphView) => g.state === "succeeded" || g.state === "failed" || g.state === "canceled"
const isSettledTask = (t: TaskView) => t.state === "succeeded" || t.state === "failed" || t.state === "canceled"

/** Ids as users type them (lower case, spaces) to the ULIDs the API takes. */
export const normalizeId = (id: string) => id.trim().toUpperCase()

/**
 * Submit a graph given as any JSON value. Its outer shape is checked here first, so that a body the
 * generated client could not even encode is refused with the same kind of message the server gives
 * (the server checks the nodes themselves, and names every offending one).
 */
export const submitGraph = (client: CairnClientShape, graph: unknown): Effect.Effect<SubmittedGraph, CairnError> =>
  Schema.decodeUnknown(S.GraphSubmission)(graph).pipe(
    Effect.mapError((e) =>
      new CairnError({
        code: "bad_request",
        message: `the graph is invalid: ${
          ParseResult.ArrayFormatter.formatErrorSync(e).map((i) => `${i.path.length === 0 ? "" : `${i.path.join(".")}: `}${i.message}`).join("; ")
        }`
      })
    ),
    Effect.flatMap((payload) => client.call((api) => api.graphs.submit({ payload })))
  )

export interface AwaitFutureOptions {
  /** Give up (fail with code `timeout`) after this long; default: wait for ever. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** The future once settled (resolved, failed or canceled: all three are answers, not errors). */
export const awaitFuture = (
  client: CairnClientShape,
  futureId: string,
  opts: AwaitFutureOptions = {}
): Effect.Effect<FutureView, CairnError> => {
  const id = normalizeId(futureId)
  // One long-poll at a time: the server answers the moment the future settles.
  const poll = client.call((api) => api.futures.get({ path: { id }, urlParams: { wait: LONG_POLL_SECONDS } }))
  const loop = Effect.repeat(poll, { until: (f) => f.state !== "pending" })
  if (opts.timeout === undefined) return loop
  const timeout = Duration.decode(opts.timeout)
  return Effect.timeoutFail(loop, {
    duration: timeout,
    onTimeout: () =>
      new CairnError({ code: "timeout", message: `future ${id} did not settle within ${Duration.format(timeout)}` })
  })
}

export interface FollowGraphOptions<R> {
  /** Called with every view fetched, the last one settled. */
  readonly onUpdate?: ((graph: GraphView) => Effect.Effect<void, never, R>) | undefined
  /** How stale a view may get while nothing settles (progress, elapsed times); default 1 s. */
  readonly interval?: Duration.DurationInput | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Fetch the graph until every task has settled, handing each view to `onUpdate`. Between two
 * fetches it long-polls one output of an unsettled task (a running one first) for at most
 * `interval`, so a settlement is seen at once while progress is still refreshed on a steady beat.
 */
export const followGraph = <R = never>(
  client: CairnClientShape,
  graphId: string,
  opts: FollowGraphOptions<R> = {}
): Effect.Effect<GraphView, CairnError, R> => {
  const id = normalizeId(graphId)
  const interval = Duration.decode(opts.interval ?? Duration.seconds(1))
  const fetch = client.call((api) => api.graphs.get({ path: { id }, urlParams: {}, headers: {} }))
  const pause = (g: GraphView) => {
    const future = nextToSettle(g)
    if (future === undefined) return Effect.sleep(interval)
    return client.call((api) =>
      api.futures.get({ path: { id: future }, urlParams: { wait: Duration.toSeconds(interval) } })
    ).pipe(Effect.asVoid)
  }
  const step: Effect.Effect<GraphView, CairnError, R> = Effect.flatMap(fetch, (g) =>
    Effect.zipRight(
      opts.onUpdate?.(g) ?? Effect.void,
      isSettledGraph(g) ? Effect.succeed(g) : Effect.zipRight(pause(g), Effect.suspend(() => step))
    ))
  if (opts.timeout === undefined) return step
  const timeout = Duration.decode(opts.timeout)
  return Effect.timeoutFail(step, {
    duration: timeout,
    onTimeout: () => new CairnError({ code: "timeout", message: `graph ${id} did not finish within ${Duration.format(timeout)}` })
  })
}

/** An output future of the unsettled task most likely to settle next: running, then ready, then blocked. */
const nextToSettle = (g: GraphView): string | undefined => {
  const rank = { running: 0, ready: 1, blocked: 2 } as Record<string, number>
  const open = Object.values(g.nodes).filter((t) => !isSettledTask(t)).sort((a, b) => (rank[a.state] ?? 3) - (rank[b.state] ?? 3))
  for (const t of open) {
    const out = Object.values(t.outputs)[0]
    if (out !== undefined) return out
  }
  return undefined
}

export type GraphPage = Schema.Schema.Type<typeof S.GraphPage>
export type GraphSummary = Schema.Schema.Type<typeof S.GraphSummary>
export type GraphListQuery = Omit<Schema.Schema.Type<typeof S.GraphListQuery>, "wait">

/** What `graphChange` answers: the graph and the etag to pass to the next call. */
export interface GraphChange {
  readonly graph: GraphView
  readonly etag: string
}

/**
 * The graph as soon as it differs from the view whose etag is `etag` (at once without one), or
 * `undefined` if it did not change within `wait` seconds (0..60): one long-poll
 * (GET /graphs/{id}?wait= with if-none-match). Loop on it to follow a graph with one open request.
 */
export const graphChange = (
  client: CairnClientShape,
  graphId: string,
  etag: string | undefined,
  wait: number
): Effect.Effect<GraphChange | undefined, CairnError> =>
  client.call((api) =>
    api.graphs.get({
      path: { id: normalizeId(graphId) },
      urlParams: { wait },
      headers: etag === undefined ? {} : { "if-none-match": etag },
      withResponse: true
    }).pipe(
      Effect.map(([graph, response]): GraphChange | undefined => ({ graph, etag: response.headers["etag"] ?? "" })),
      // 304 is not a declared answer of the endpoint: the generated client reports it as a ResponseError.
      Effect.catchAll((e) => (isNotModified(e) ? Effect.succeed(undefined) : Effect.fail(e)))
    )
  )

const isNotModified = (e: unknown) => {
  const r = e as { readonly _tag?: string; readonly response?: { readonly status?: number } }
  return r._tag === "ResponseError" && r.response?.status === 304
}
