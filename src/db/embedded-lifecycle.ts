/**
 * Who keeps the embedded PostgreSQL running, and who stops it (DESIGN.md §9).
 *
 * Every cairn process that uses the embedded server of a data directory *attaches* to it: a file
 * `<dataDir>/attached/<pid>` holding the process's start time (so that a recycled pid is not taken
 * for the process that wrote the file). The server runs while an attached process lives:
 *
 * - a process that exits normally detaches and, if no other attached process lives, stops the
 *   server (under the start lock, so that a process starting at that moment either attached before
 *   the decision and keeps the server, or waits and starts it again);
 * - a process killed with SIGKILL cannot do that, so each running server has a *watchdog*: a small
 *   detached process (`embedded-watchdog.ts`) that looks at the attachments once a second and stops
 *   the server, the same way, once none of them lives. A process that joins a server whose watchdog
 *   is gone (killed too) starts a new one: it adopts the orphan.
 *
 * Liveness is read from /proc (pid + start time; a zombie counts as gone), so this holds for the
 * processes of one machine (one pid namespace), which is what an embedded server listening on a
 * local address is for. Processes connected through DATABASE_URL never attach: their database is
 * someone else's to run.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as fsSync from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** A process as the files name it: its pid and its start time (clock ticks since boot; 0 where /proc is absent). */
export interface ProcessRef {
  readonly pid: number
  readonly start: number
}

/** The start time of `pid` from /proc, or undefined when it is gone or a zombie. */
const startTimeOf = (pid: number): number | undefined => {
  let stat: string
  try {
    stat = fsSync.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
    // No /proc (not Linux): a signal 0 says whether the pid exists at all.
    try {
      process.kill(pid, 0)
      return 0
    } catch {
      return undefined
    }
  }
  // Fields after the command name, which is in parentheses and may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  if (fields[0] === "Z" || fields[0] === "X") return undefined
  return Number(fields[19])
}

export const self = (): ProcessRef => ({ pid: process.pid, start: startTimeOf(process.pid) ?? 0 })

export const refOf = (pid: number): ProcessRef | undefined => {
  const start = startTimeOf(pid)
  return start === undefined ? undefined : { pid, start }
}

export const isAlive = (p: ProcessRef) => {
  const start = startTimeOf(p.pid)
  return start !== undefined && (p.start === 0 || start === 0 || start === p.start)
}

const attachedDir = (dataDir: string) => path.join(dataDir, "attached")

export const attach = async (dataDir: string) => {
  await fs.mkdir(attachedDir(dataDir), { recursive: true })
  const me = self()
  await fs.writeFile(path.join(attachedDir(dataDir), String(me.pid)), String(me.start))
}

export const detach = (dataDir: string) => fs.rm(path.join(attachedDir(dataDir), String(process.pid)), { force: true })

/** The attached processes that still live; the files of those that are gone are removed. */
export const liveAttachments = async (dataDir: string): Promise<Array<ProcessRef>> => {
  let names: Array<string>
  try {
    names = await fs.readdir(attachedDir(dataDir))
  } catch {
    return []
  }
  const live: Array<ProcessRef> = []
  for (const name of names) {
    const file = path.join(attachedDir(dataDir), name)
    const start = Number(await fs.readFile(file, "utf8").catch(() => "NaN"))
    const ref = { pid: Number(name), start }
    if (Number.isInteger(ref.pid) && Number.isFinite(start) && isAlive(ref)) live.push(ref)
    else await fs.rm(file, { force: true })
  }
  return live
}

const watchdogFile = (dataDir: string) => path.join(dataDir, "watchdog.json")

export const readWatchdog = async (dataDir: string): Promise<ProcessRef | undefined> => {
  try {
    return JSON.parse(await fs.readFile(watchdogFile(dataDir), "utf8")) as ProcessRef
  } catch {
    return undefined
  }
}

export const writeWatchdog = (dataDir: string, ref: ProcessRef) => fs.writeFile(watchdogFile(dataDir), JSON.stringify(ref))

export const clearWatchdog = async (dataDir: string, ref: ProcessRef) => {
  const current = await readWatchdog(dataDir)
  if (current?.pid === ref.pid) await fs.rm(watchdogFile(dataDir), { force: true })
}

/**
 * Ends the watchdog of `dataDir` (after the server was stopped by a process that exited): so that
 * nothing writes into the data directory once the last process is gone.
 */
export const stopWatchdog = async (dataDir: string) => {
  const w = await readWatchdog(dataDir)
  if (w === undefined) return
  if (isAlive(w)) {
    try {
      process.kill(w.pid, "SIGTERM")
    } catch {
      // gone meanwhile
    }
    for (let i = 0; i < 100 && isAlive(w); i++) await new Promise((r) => setTimeout(r, 50))
  }
  await clearWatchdog(dataDir, w)
}

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
const watchdogEntry = fileURLToPath(new URL("./embedded-watchdog.ts", import.meta.url))

/**
 * Starts a watchdog for the server of `dataDir` unless a live one exists; call under the start lock.
 * Returns true when it started one. The watchdog is detached (its own session, no stdio), so that
 * a Ctrl-C or a kill of our process group does not take it down with us.
 */
export const ensureWatchdog = async (dataDir: string): Promise<boolean> => {
  const current = await readWatchdog(dataDir)
  if (current && isAlive(current)) return false
  const child = spawn(process.execPath, ["--import", "tsx", watchdogEntry, dataDir], {
    cwd: repoRoot,
    detached: true,
    stdio: "ignore"
  })
  child.unref()
  const ref = child.pid === undefined ? undefined : refOf(child.pid)
  if (ref) await writeWatchdog(dataDir, ref)
  return ref !== undefined
}
