/**
 * Child processes of a benchmark: cairn servers and workers, competitor workers, nginx, curl.
 * Output is kept (the last 64 KiB) for error messages; `lines` lets a caller watch stdout.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  readonly output: () => string
  /** Called with every complete stdout line. */
  readonly onLine: (f: (line: string) => void) => void
  readonly exited: Promise<number | null>
  readonly alive: () => boolean
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  readonly stop: (graceMs?: number) => Promise<void>
  readonly pause: () => void
  readonly resume: () => void
}

const KEEP = 64 * 1024

// ---- interruption: Ctrl-C (or SIGTERM) stops every child and runs the registered clean-ups ------

const live = new Set<Proc>()
const cleanups: Array<() => Promise<void>> = []
let interrupted = false

/** Run `f` (stop the embedded PostgreSQL, remove temporary directories) if the run is interrupted. */
export const onInterrupt = (f: () => Promise<void>) => void cleanups.push(f)

const interrupt = async (signal: string) => {
  if (interrupted) return
  interrupted = true
  console.error(`\n${signal}: stopping ${live.size} child process(es) and cleaning up`)
  await Promise.all([...live].map((p) => p.stop(5000).catch(() => undefined)))
  for (const f of cleanups.reverse()) await f().catch(() => undefined)
  process.exit(130)
}
process.once("SIGINT", () => void interrupt("SIGINT"))
process.once("SIGTERM", () => void interrupt("SIGTERM"))

export const spawnProc = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  opts: { readonly env?: Record<string, string | undefined>; readonly cwd?: string } = {}
): Proc => {
  const child = spawn(command, args as Array<string>, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  const keep = (d: Buffer | string) => {
    out += d
    if (out.length > KEEP * 2) out = out.slice(-KEEP)
  }
  const listeners: Array<(line: string) => void> = []
  let partial = ""
  child.stdout!.on("data", (d: Buffer) => {
    keep(d)
    if (listeners.length === 0) return
    partial += d.toString()
    const lines = partial.split("\n")
    partial = lines.pop()!
    for (const l of lines) for (const f of listeners) f(l)
  })
  child.stderr!.on("data", keep)
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const alive = () => child.exitCode === null && child.signalCode === null
  const proc: Proc = {
    name,
    child,
    pid: child.pid!,
    output: () => out,
    onLine: (f) => void listeners.push(f),
    exited,
    alive,
    stop: async (graceMs = 10_000) => {
      if (!alive()) return
      child.kill("SIGCONT")
      child.kill("SIGTERM")
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs)
      await exited
      clearTimeout(t)
    },
    pause: () => void (alive() && child.kill("SIGSTOP")),
    resume: () => void (alive() && child.kill("SIGCONT"))
  }
  live.add(proc)
  void exited.then(() => live.delete(proc))
  return proc
}

/** `node --import tsx <file>`: the child's pid is the program's pid (no tsx wrapper process). */
export const spawnTs = (name: string, file: string, args: ReadonlyArray<string> = [], env: Record<string, string | undefined> = {}, nodeArgs: ReadonlyArray<string> = []) =>
  spawnProc(name, process.execPath, [...nodeArgs, "--import", "tsx", file, ...args], { env })

/** Node flags that write a V8 CPU profile of the process into `dir` when it exits (--cpu-prof). */
export const cpuProfileArgs = (dir: string | undefined): ReadonlyArray<string> => (dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [])

/** Wait (bounded) until `f` returns something other than undefined/false. */
export const until = async <A>(what: string, f: () => Promise<A | undefined | false> | A | undefined | false, timeoutMs = 60_000, everyMs = 50): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** Stop them all at once (each with its grace), not one after another. */
export const stopAll = (procs: ReadonlyArray<Proc>, graceMs?: number) => Promise.all(procs.map((p) => p.stop(graceMs)))

/** Run a command to completion; resolves with its exit code and output. */
export const runCommand = (command: string, args: ReadonlyArray<string>, opts: { readonly cwd?: string; readonly env?: Record<string, string> } = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(command, args as Array<string>, { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.once("error", reject)
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })
