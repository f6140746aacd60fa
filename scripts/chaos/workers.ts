/**
 * Worker chaos: thousands of random tasks in random DAGs over many worker processes while random
 * workers are killed with SIGKILL and restarted every few seconds; then every engine invariant is
 * checked (exactly-once settlement, propagation with root causes, FCFS per key, no overlap of
 * conflicting tasks, nothing left running). It is scripts/stress.ts with chaos on by default:
 *
 *   npx tsx scripts/chaos/workers.ts [--duration 300] [--processes 6] [--kill-every 3] [--json out.json]
 *
 * Any stress.ts option may be given and wins over these defaults. Prints PASS or FAIL last and
 * exits non-zero on FAIL. The short variant runs in `npm test` (test/stress.test.ts).
 */
import { onInterrupt, spawnTs } from "../lib/processes.js"

const defaults = ["--duration", "300", "--processes", "6", "--slots", "2", "--submitters", "3", "--kill-every", "3"]
const given = new Set(process.argv.slice(2).filter((a) => a.startsWith("--")))
const args: Array<string> = []
for (let i = 0; i < defaults.length; i += 2) if (!given.has(defaults[i]!)) args.push(defaults[i]!, defaults[i + 1]!)
args.push(...process.argv.slice(2))

// SIGTERM (or Ctrl-C) stops the stress run, which stops its workers.
onInterrupt()
const stress = spawnTs("stress", "scripts/stress.ts", args, { stdio: "inherit" })
void stress.exited.then((code) => {
  const ok = code === 0
  console.log(ok ? "PASS: every invariant held under worker chaos" : `FAIL: stress exited with ${code ?? stress.child.signalCode}`)
  process.exitCode = ok ? 0 : 1
})
