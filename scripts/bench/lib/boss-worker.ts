/**
 * A pg-boss process for bench:throughput: works the queue `noop` with a no-op handler. A job whose
 * data has `t` prints `L <i> <now>` when its handler starts, for latency.
 *
 *   BOSS_MODE=default  pg-boss's defaults (work(): 1 job per fetch, polling every 2 s)
 *   BOSS_MODE=fast     settings that do not limit it themselves: pollingIntervalSeconds 0.5 (the
 *                      minimum it accepts) and batchSize 5,000 (jobs fetched, handed to the handler
 *                      and completed per round trip).
 *
 * Why those: a pg-boss worker fetches up to batchSize jobs, runs the handler, completes them, and
 * then waits out the rest of the polling interval only if the round took less than the interval
 * minus 100 ms (pg-boss 10's worker loop). So one worker does at most batchSize / 0.5 s jobs per
 * second: with batchSize 100 that was 200 jobs/s per process, a cap the earlier "fastest" setting
 * put on itself. At 5,000 the cap is 10,000 jobs/s per process, and a round that takes longer than
 * 0.4 s is followed at once by the next fetch, so the interval no longer limits the drain.
 */
import PgBoss from "pg-boss"

const nowMs = () => performance.timeOrigin + performance.now()
const fast = process.env.BOSS_MODE === "fast"

const main = async () => {
  const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, ...(fast ? { max: 10 } : {}) })
  boss.on("error", (e) => console.error(`pg-boss: ${e.message}`))
  await boss.start()
  await boss.work<{ t?: number; i?: number }>("noop", fast ? { batchSize: 5000, pollingIntervalSeconds: 0.5 } : {}, async (jobs) => {
    for (const j of jobs) if (j.data?.t !== undefined) process.stdout.write(`L ${j.data.i} ${nowMs()}\n`)
  })
  process.stdout.write("READY\n")
  const stop = () => {
    boss.stop({ graceful: true, wait: true, timeout: 5000 }).then(() => process.exit(0), () => process.exit(1))
  }
  process.once("SIGTERM", stop)
  process.once("SIGINT", stop)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
