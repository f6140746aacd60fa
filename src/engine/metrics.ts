/**
 * In-process metrics of the engine (Effect's Metric), exported by GET /metrics together with
 * gauges read from the database at scrape time (tasks by state, workers alive).
 */
import { Effect, Exit, Metric, MetricBoundaries } from "effect"

const latencyBoundaries = MetricBoundaries.exponential({ start: 0.5, factor: 2, count: 16 })

export const claimToStartMs = Metric.histogram(
  "cairn_claim_to_start_ms",
  latencyBoundaries,
  "Milliseconds from a task becoming ready to a worker claiming it"
)

export const taskDurationMs = Metric.histogram(
  "cairn_task_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 }),
  "Milliseconds a handler ran"
)

export const tasksRun = Metric.counter("cairn_tasks_run_total", { description: "Handlers run by this process, by kind and outcome" })

export const claimToStart = (ms: number) => Effect.runSync(Metric.update(claimToStartMs, Math.max(0, ms)))

export const taskFinished = (kind: string, ms: number, exit: Exit.Exit<unknown, unknown>) => {
  const outcome = Exit.isSuccess(exit) ? "succeeded" : Exit.isInterrupted(exit) ? "interrupted" : "failed"
  Effect.runSync(Metric.update(Metric.tagged(Metric.tagged(taskDurationMs, "kind", kind), "outcome", outcome), ms))
  Effect.runSync(Metric.increment(Metric.tagged(Metric.tagged(tasksRun, "kind", kind), "outcome", outcome)))
}
