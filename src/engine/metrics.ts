/**
 * The process's metrics registry (prom-client), which GET /metrics renders (`src/api/metrics.ts`),
 * and the engine's instruments in it: claim-to-start latency, handler durations and runs.
 *
 * Every instrument of cairn is a prom-client instrument registered in `metricsRegistry` (never in
 * prom-client's global one, which any library may write to). Instruments are updated with plain
 * synchronous calls, from a fiber or not.
 */
import { Exit } from "effect"
import { Counter, exponentialBuckets, Histogram, Registry } from "prom-client"

export const metricsRegistry = new Registry()

const claimToStartMs = new Histogram({
  name: "cairn_claim_to_start_ms",
  help: "Milliseconds from a task becoming ready to a worker claiming it",
  // 0.5 ms to ~8 s, doubling.
  buckets: exponentialBuckets(0.5, 2, 15),
  registers: [metricsRegistry]
})

const taskDurationMs = new Histogram({
  name: "cairn_task_duration_ms",
  help: "Milliseconds a handler ran",
  labelNames: ["kind", "outcome"] as const,
  // 1 ms to ~4.4 min, doubling.
  buckets: exponentialBuckets(1, 2, 19),
  registers: [metricsRegistry]
})

const tasksRun = new Counter({
  name: "cairn_tasks_run_total",
  help: "Handlers run by this process, by kind and outcome",
  labelNames: ["kind", "outcome"] as const,
  registers: [metricsRegistry]
})

export const claimToStart = (ms: number) => claimToStartMs.observe(Math.max(0, ms))

export const taskFinished = (kind: string, ms: number, exit: Exit.Exit<unknown, unknown>) => {
  const outcome = Exit.isSuccess(exit) ? "succeeded" : Exit.isInterrupted(exit) ? "interrupted" : "failed"
  taskDurationMs.observe({ kind, outcome }, ms)
  tasksRun.inc({ kind, outcome })
}
