/**
 * A pg-boss process for bench:throughput: works the queue `noop` with a no-op handler. A job whose
 * data has `t` prints `L <i> <now>` when its handler starts, for latency.
 *
 *   BOSS_MODE=default  pg-boss's defaults (work(): 1 job per fetch, polling every 2 s)
 *   BOSS_MODE=fast     its fastest documented worker settings: pollingIntervalSeconds 0.5 (the
 *                      minimum it accepts) and batchSize 100 (jobs handed to the handler per fetch)
 */
import PgBoss from "pg-boss"

const nowMs = () => performance.timeOrigin + performance.now()
const fast = process.env.BOSS_MODE === "fast"

const main = async () => {
  const boss = new PgBoss({ connectionString: process.env.DATABASE_URL!, ...(fast ? { max: 10 } : {}) })
  boss.on("error", (e) => console.error(`pg-boss: ${e.message}`))
  await boss.start()
  await boss.work<{ t?: number; i?: number }>("noop", fast ? { batchSize: 100, pollingIntervalSeconds: 0.5 } : {}, async (jobs) => {
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
