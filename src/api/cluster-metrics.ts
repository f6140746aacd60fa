/**
 * GET /metrics across `serve`'s processes (src/main/api-cluster.ts). A scrape lands on whichever
 * API process the kernel hands the connection to, so each answer must describe the whole server,
 * not that process: the process answering asks the primary for every other process's registry
 * (prom-client's JSON), over the cluster's IPC channel, and adds them up with prom-client's
 * aggregation (counters, histograms and per-process gauges are summed).
 *
 *   API process --gather--> primary --ask--> every other API process --answer--> primary
 *   API process <--gathered (the primary's own registry + the answers)-- primary
 *
 * A process that does not answer within GATHER_TIMEOUT_MS (starting, stopping, or stuck) is left
 * out of that scrape rather than holding it up. Outside a cluster (CAIRN_API_PROCESSES=1, a worker
 * process), there is nobody to ask.
 */
import cluster, { type Worker } from "node:cluster"
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from "prom-client"
import { metricsRegistry } from "../engine/metrics.js"

/** One process's registry as prom-client's `getMetricsAsJSON` gives it. */
export type MetricsSnapshot = Array<MetricObjectWithValues<MetricValue<string>>>

const GATHER_TIMEOUT_MS = 2_000

type Message =
  | { readonly type: "cairn:metrics:gather"; readonly id: number }
  | { readonly type: "cairn:metrics:gathered"; readonly id: number; readonly snapshots: ReadonlyArray<MetricsSnapshot> }
  | { readonly type: "cairn:metrics:ask"; readonly id: number }
  | { readonly type: "cairn:metrics:answer"; readonly id: number; readonly snapshot: MetricsSnapshot }

const isMessage = (m: unknown): m is Message =>
  typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string" &&
  (m as { type: string }).type.startsWith("cairn:metrics:")

const snapshot = () => metricsRegistry.getMetricsAsJSON() as Promise<MetricsSnapshot>

/**
 * Requests over IPC awaiting their replies by id: `request` sends with a new id and resolves with
 * the reply `reply` hands over for it, or with undefined after `timeoutMs`; a send that throws
 * rejects it.
 */
const replies = <A>() => {
  const waiting = new Map<number, (a: A) => void>()
  let next = 0
  return {
    request: (timeoutMs: number, send: (id: number) => void): Promise<A | undefined> =>
      new Promise((resolve, reject) => {
        const id = next++
        const timer = setTimeout(() => {
          waiting.delete(id)
          resolve(undefined)
        }, timeoutMs)
        waiting.set(id, (a) => {
          clearTimeout(timer)
          resolve(a)
        })
        try {
          send(id)
        } catch (e) {
          waiting.delete(id)
          clearTimeout(timer)
          reject(e)
        }
      }),
    reply: (id: number, a: A) => {
      waiting.get(id)?.(a)
      waiting.delete(id)
    }
  }
}

/** This API process's gathers, awaiting the primary's answer. */
const gathers = replies<ReadonlyArray<MetricsSnapshot>>()

/**
 * In an API process of a cluster: answer the primary's asks with this process's registry, and take
 * the results of this process's gathers. Installed once, when the process starts serving.
 */
export const answerMetricsAsks = () => {
  if (!cluster.isWorker) return
  process.on("message", (m: unknown) => {
    if (!isMessage(m)) return
    if (m.type === "cairn:metrics:ask") {
      void snapshot().then((s) => process.send?.({ type: "cairn:metrics:answer", id: m.id, snapshot: s } satisfies Message))
    } else if (m.type === "cairn:metrics:gathered") {
      gathers.reply(m.id, m.snapshots)
    }
  })
}

/** The registries of the server's other processes ([] outside a cluster, or if the primary does not answer). */
const otherProcesses = async (): Promise<ReadonlyArray<MetricsSnapshot>> => {
  if (!cluster.isWorker || process.send === undefined) return []
  const gathered = await gathers.request(GATHER_TIMEOUT_MS * 2, (id) => process.send!({ type: "cairn:metrics:gather", id } satisfies Message))
  return gathered ?? []
}

/**
 * The text of /metrics: this process's registry (its database-read families included), plus the
 * other processes' registries without `ownFamilies` (which only the answering process reads fresh).
 */
export const clusterMetricsText = async (ownFamilies: ReadonlySet<string>): Promise<string> => {
  // Taken before any await: the caller has just set its gauges (src/api/metrics.ts).
  const own = snapshot()
  const others = await otherProcesses()
  if (others.length === 0) return metricsRegistry.metrics()
  const rest = others.map((s) => s.filter((family) => !ownFamilies.has(family.name)))
  const merged: Registry = AggregatorRegistry.aggregate([await own, ...rest])
  return merged.metrics()
}

/**
 * In the primary: answer each API process's gather with the primary's own registry (its worker
 * slots' instruments) and every other live API process's answer within the timeout.
 */
export const serveMetricsGathers = (children: () => Iterable<Worker>) => {
  const asks = replies<MetricsSnapshot>()
  /** A child's registry, or undefined if it does not answer in time (or cannot be asked). */
  const ask = (child: Worker): Promise<MetricsSnapshot | undefined> =>
    asks.request(GATHER_TIMEOUT_MS, (id) => child.send({ type: "cairn:metrics:ask", id } satisfies Message)).catch(() => undefined)
  const onMessage = (from: Worker, m: unknown) => {
    if (!isMessage(m)) return
    if (m.type === "cairn:metrics:answer") {
      asks.reply(m.id, m.snapshot)
    } else if (m.type === "cairn:metrics:gather") {
      const others = [...children()].filter((c) => c !== from && c.isConnected())
      void Promise.all([snapshot(), ...others.map(ask)]).then((all) => {
        const snapshots = all.filter((s): s is MetricsSnapshot => s !== undefined)
        if (from.isConnected()) from.send({ type: "cairn:metrics:gathered", id: m.id, snapshots } satisfies Message)
      })
    }
  }
  cluster.on("message", onMessage)
  return () => void cluster.off("message", onMessage)
}
