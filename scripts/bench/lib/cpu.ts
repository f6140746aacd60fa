/**
 * CPU time actually consumed (Linux /proc), the measure that other load on a shared machine does
 * not inflate: wall-clock latencies grow when other processes compete for the cores, CPU
 * seconds per task do not.
 */
import { readFileSync, readdirSync } from "node:fs"

const TICK_MS = 10 // USER_HZ is 100 on Linux

interface Stat {
  readonly ppid: number
  /** utime + stime (ms). */
  readonly self: number
  /** cutime + cstime: waited-for children that exited (ms). */
  readonly children: number
}

const statOf = (pid: number): Stat | undefined => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command may contain spaces and parentheses: fields start after the last ')'.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ")
    return { ppid: Number(f[1]), self: (Number(f[11]) + Number(f[12])) * TICK_MS, children: (Number(f[13]) + Number(f[14])) * TICK_MS }
  } catch {
    return undefined
  }
}

/** CPU milliseconds of these processes so far (exited ones count as 0: sample before stopping them). */
export const cpuOfPids = (pids: ReadonlyArray<number>) => pids.reduce((sum, p) => sum + (statOf(p)?.self ?? 0), 0)

/**
 * CPU milliseconds of a PostgreSQL cluster so far: the postmaster, its live children (backends,
 * background workers), and the children that already exited (counted in the postmaster's cutime).
 */
export const cpuOfCluster = (postmasterPid: number | undefined): number => {
  if (postmasterPid === undefined) return NaN
  const pm = statOf(postmasterPid)
  if (!pm) return NaN
  let total = pm.self + pm.children
  for (const d of readdirSync("/proc")) {
    const pid = Number(d)
    if (!Number.isInteger(pid) || pid === postmasterPid) continue
    const s = statOf(pid)
    if (s && s.ppid === postmasterPid) total += s.self
  }
  return total
}

/** CPU of this process (the benchmark driver, e.g. the load generator). */
export const cpuOfSelf = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/**
 * CPU milliseconds of this process's children that exited and were waited for (cutime + cstime):
 * how a short-lived child's CPU (a load generator) is measured after it is gone.
 */
export const cpuOfExitedChildren = () => statOf(process.pid)?.children ?? NaN

/** Machine-wide busy share over an interval: sample() before and after, then busy(a, b). */
export const sampleMachine = () => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = (line[3] ?? 0) + (line[4] ?? 0)
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0)
  return { idle, total }
}

export const busyShare = (a: ReturnType<typeof sampleMachine>, b: ReturnType<typeof sampleMachine>) =>
  (b.total - a.total) > 0 ? 1 - (b.idle - a.idle) / (b.total - a.total) : NaN

/** CPU milliseconds of a process and its live direct children (nginx: master + workers). */
export const cpuOfProcessTree = (rootPid: number): number => {
  const root = statOf(rootPid)
  if (!root) return NaN
  let total = root.self + root.children
  for (const d of readdirSync("/proc")) {
    const pid = Number(d)
    if (!Number.isInteger(pid) || pid === rootPid) continue
    const s = statOf(pid)
    if (s && s.ppid === rootPid) total += s.self
  }
  return total
}

/** Node flags that write a V8 CPU profile of the process into `dir` when it exits (--cpu-prof). */
export const cpuProfileArgs = (dir: string | undefined): ReadonlyArray<string> => (dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [])
