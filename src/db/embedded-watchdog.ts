/**
 * The watchdog of an embedded PostgreSQL (embedded-lifecycle.ts): started detached by the process
 * that starts (or adopts) the server of `<dataDir>`, it stops the server once no attached cairn
 * process lives, which covers the processes that were killed and could not stop it themselves.
 *
 *   node --import tsx src/db/embedded-watchdog.ts <dataDir>
 *
 * It exits when the server is stopped, when another watchdog has taken over the data directory,
 * or when the data directory is gone.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { clearWatchdog, isAlive, liveAttachments, readWatchdog, self } from "./embedded-lifecycle.js"
import { stopIfUnattached } from "./embedded.js"

const dataDir = path.resolve(process.argv[2] ?? "")
const me = self()
const log = (line: string) => {
  try {
    fs.appendFileSync(path.join(dataDir, "postgres.log"), `${new Date().toISOString()} cairn watchdog ${me.pid}: ${line}\n`)
  } catch {
    // The data directory is gone: nothing to log to, and the loop ends on its next round.
  }
}

const round = async (): Promise<boolean> => {
  if (!fs.existsSync(dataDir)) return true
  const owner = await readWatchdog(dataDir)
  // The file may still name the dead watchdog we replace: only a live other one makes us redundant.
  if (owner !== undefined && owner.pid !== me.pid && isAlive(owner)) return true
  // Cheap check first; the decision itself is taken under the start lock.
  if ((await liveAttachments(dataDir)).length > 0) return false
  return stopIfUnattached(dataDir, log)
}

const loop = async () => {
  for (;;) {
    const done = await round().catch((e) => {
      log(`round failed: ${(e as Error).message}`)
      return false
    })
    if (done) break
    await new Promise((r) => setTimeout(r, 1000))
  }
  await clearWatchdog(dataDir, me).catch(() => undefined)
}

void loop()
