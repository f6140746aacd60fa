/**
 * A graphile-worker process for bench:throughput: runs the no-op task `noop`. A job whose payload
 * has `t` (the submitter's clock, epoch ms) prints `L <id> <now>` when it starts, for latency.
 *
 *   GW_MODE=default  graphile-worker's defaults (concurrency 1, poll 2 s, no local queue)
 *   GW_MODE=fast     its documented fastest settings (worker.graphile.org/docs/performance):
 *                    concurrentJobs 24, maxPoolSize 25, localQueue.size 500, completeJobBatchDelay 0,
 *                    failJobBatchDelay 0
 */
import { run, type Runner } from "graphile-worker"

const nowMs = () => performance.timeOrigin + performance.now()
const fast = process.env.GW_MODE === "fast"

const main = async () => {
  const runner: Runner = await run({
    connectionString: process.env.DATABASE_URL!,
    noHandleSignals: true,
    logger: undefined,
    taskList: {
      noop: async (payload) => {
        const t = (payload as { t?: number; i?: number } | null)?.t
        if (t !== undefined) process.stdout.write(`L ${(payload as { i: number }).i} ${nowMs()}\n`)
      }
    },
    ...(fast
      ? { concurrency: 24, preset: { worker: { maxPoolSize: 25, localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } }
      : {})
  })
  process.stdout.write("READY\n")
  const stop = () => {
    runner.stop().then(() => process.exit(0), () => process.exit(1))
  }
  process.once("SIGTERM", stop)
  process.once("SIGINT", stop)
  await runner.promise
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
