/**
 * The model behind `cairn dag` (src/dag/model.ts: which tasks of other graphs matter, the
 * edges with the outputs they carry, blocker and cause chains), reused in the browser: this is the
 * one file of the console that names where that model lives.
 *
 * `modelOf` builds it from a live graph view: the graph itself comes from the page's long-poll,
 * and the few other tasks and futures the model asks for are fetched through the API. Settled
 * tasks and futures never change, so they are kept; unsettled ones are kept for a moment, so that
 * a graph that changes every second does not refetch the same blockers every second.
 */
import { getJson } from "./api.js"
import {
  buildModel,
  type DagModel,
  type FutureView,
  type GraphView,
  loadSnapshot,
  type RootKind,
  type Source,
  type TaskView
} from "../../src/dag/model.js"

export * from "../../src/dag/model.js"

const UNSETTLED_TTL_MS = 2000
const MAX_CACHED = 5000

interface Cached<T> {
  readonly value: T | undefined
  readonly until: number
}

const cache = new Map<string, Cached<unknown>>()

const cached = async <T>(key: string, settled: (v: T) => boolean, load: () => Promise<T | undefined>): Promise<T | undefined> => {
  const hit = cache.get(key) as Cached<T> | undefined
  if (hit && hit.until > Date.now()) return hit.value
  const value = await load()
  if (cache.size > MAX_CACHED) cache.clear()
  cache.set(key, { value, until: value !== undefined && settled(value) ? Infinity : Date.now() + UNSETTLED_TTL_MS })
  return value
}

/** undefined for a 404, like src/dag's sources. */
const orMissing = <T>(p: Promise<T>) =>
  p.catch((e: { status?: number }) => {
    if (e?.status === 404) return undefined
    throw e
  })

const isSettledTask = (t: TaskView) => t.state === "succeeded" || t.state === "failed" || t.state === "canceled"

const sourceFor = (live: GraphView): Source => ({
  name: "this cairn server",
  getGraph: (id) => (id === live.id ? Promise.resolve(live) : orMissing(getJson<GraphView>(`/graphs/${id}`))),
  getTask: (id) => cached(`t:${id}`, isSettledTask, () => orMissing(getJson<TaskView>(`/tasks/${id}`))),
  getFuture: (id) => cached(`f:${id}`, (f: FutureView) => f.state !== "pending", () => orMissing(getJson<FutureView>(`/futures/${id}`))),
  close: async () => undefined
})

/** The model of a live graph view, rooted at the graph or at one of its tasks. */
export const modelOf = async (live: GraphView, root: { kind: RootKind; id: string } = { kind: "graph", id: live.id }): Promise<DagModel> => {
  const snapshot = await loadSnapshot(sourceFor(live), live.id, { depth: 6 })
  return buildModel({ ...snapshot, root })
}
