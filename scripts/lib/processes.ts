/**
 * Child processes of tests, benchmarks and reliability scripts: start them, wait for their
 * start-up line, watch their output, stop them. The one place where cairn's `serve` and `worker`
 * are started as real processes (node with tsx's loader, exactly as `npm start` / `npm run worker`
 * run them: the child's pid is the program's pid, so a SIGKILL really kills it).
 *
 * Process groups: a child that has children of its own (the stress driver and its workers, nginx
 * and its workers) is started with `group: true`, in a process group of its own, and every signal
 * goes to the whole group, so stopping or killing it leaves nothing behind. Other children stay in
 * our group, so that a Ctrl-C at the terminal reaches them as it reaches us.
 *
 * Nothing outlives its parent by accident: when this process exits, every child still alive is
 * killed (SIGKILL, synchronously, in the `exit` hook). Scripts that want a clean stop on Ctrl-C or
 * SIGTERM call `onInterrupt`; tests leave signals to the test runner.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

export interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** What it wrote to stdout and stderr, interleaved (bounded: the last few MiB of a chatty process). */
  readonly output: () => string
  /** Calls `f` with every complete line it writes from now on, stdout and stderr; returns "stop". */
  readonly onLine: (f: (line: string) => void) => () => void
  /** Its exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>
  readonly alive: () => boolean
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code once it (and its group) is gone. */
  readonly stop: (graceMs?: number) => Promise<number | null>
  /** SIGKILL; resolves once it (and its group) is gone. */
  readonly kill9: () => Promise<void>
  /** SIGSTOP / SIGCONT. */
  readonly pause: () => void
  readonly resume: () => void
}

export interface SpawnOptions {
  /** Added to this process's environment. */
  readonly env?: Record<string, string | undefined>
  readonly cwd?: string
  /** A process group of its own; every signal goes to the group. */
  readonly group?: boolean
  /** "pipe" (default) captures the output; "inherit" writes it to ours (then `output()` is empty). */
  readonly stdio?: "pipe" | "inherit"
}

/** Output kept per process: up to KEEP * 2, then the last KEEP. */
const KEEP = 8 * 1024 * 1024

/** Children not yet gone, with how to signal each (its group, or itself). */
const live = new Map<Proc, (sig: NodeJS.Signals) => void>()

let exitHook = false
const killAllOnExit = () => {
  if (exitHook) return
  exitHook = true
  process.once("exit", () => {
    for (const kill of live.values()) kill("SIGKILL")
  })
}

export const spawnProc = (name: string, command: string, args: ReadonlyArray<string>, opts: SpawnOptions = {}): Proc => {
  const group = opts.group === true
  const child = spawn(command, args as Array<string>, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: opts.stdio === "inherit" ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
    detached: group
  })
  const signal = (sig: NodeJS.Signals) => {
    if (child.pid === undefined) return // never started
    try {
      if (group) process.kill(-child.pid!, sig)
      else child.kill(sig)
    } catch {
      // Already gone (ESRCH).
    }
  }
  /** Kill what is left of its group and wait (bounded) until the last member has been reaped. */
  const killGroup = async () => {
    if (child.pid === undefined) return
    signal("SIGKILL")
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      try {
        process.kill(-child.pid!, 0)
      } catch {
        return
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  let out = ""
  const listeners = new Set<(line: string) => void>()
  const partial = { stdout: "", stderr: "" }
  const take = (stream: "stdout" | "stderr") => (d: Buffer) => {
    const text = d.toString()
    out += text
    if (out.length > KEEP * 2) out = out.slice(-KEEP)
    if (listeners.size === 0) return
    const lines = (partial[stream] + text).split("\n")
    partial[stream] = lines.pop()!
    for (const l of lines) for (const f of listeners) f(l)
  }
  child.stdout?.on("data", take("stdout"))
  child.stderr?.on("data", take("stderr"))
  // "close", not "exit": by then everything it wrote has been read. Unless a process it left
  // behind holds its output open: then a moment after "exit".
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => resolve(code))
    child.once("exit", (code) => void setTimeout(() => resolve(code), 2000).unref())
    // A command that cannot be started (ENOENT) says why and counts as gone.
    child.once("error", (e) => {
      out += `\n${name}: ${e.message}\n`
      if (child.pid === undefined) resolve(null)
    })
  })
  const alive = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => out,
    onLine: (f) => {
      listeners.add(f)
      return () => void listeners.delete(f)
    },
    exited,
    alive,
    stop: async (graceMs = 15_000) => {
      if (alive()) {
        signal("SIGCONT")
        signal("SIGTERM")
      }
      const t = setTimeout(() => signal("SIGKILL"), graceMs)
      await exited
      clearTimeout(t)
      // Whatever the leader left behind in its group goes too (tsx's esbuild service, at least).
      if (group) await killGroup()
      return exited
    },
    kill9: async () => {
      signal("SIGKILL")
      await exited
      if (group) await killGroup()
    },
    pause: () => void (alive() && signal("SIGSTOP")),
    resume: () => void (alive() && signal("SIGCONT"))
  }
  live.set(proc, signal)
  killAllOnExit()
  void exited.then(() => live.delete(proc))
  return proc
}

/** `node [nodeArgs] --import tsx <file> [args]`: the child's pid is the program's pid (no tsx wrapper). */
export const spawnTs = (
  name: string,
  file: string,
  args: ReadonlyArray<string> = [],
  opts: SpawnOptions & { readonly nodeArgs?: ReadonlyArray<string> } = {}
) => spawnProc(name, process.execPath, [...(opts.nodeArgs ?? []), "--import", "tsx", file, ...args], opts)

/** `src/main/serve.ts` or `src/main/worker.ts`, configured by `env` (DATABASE_URL, CAIRN_*...). */
export const spawnCairn = (entry: "serve" | "worker", opts: SpawnOptions & { readonly name?: string; readonly nodeArgs?: ReadonlyArray<string> } = {}) =>
  spawnTs(opts.name ?? entry, `src/main/${entry}.ts`, [], opts)

/**
 * The first line of its output that `pattern` matches (its match), or a rejection when it exits
 * first or `timeoutMs` passes, with what it wrote.
 */
export const waitForLine = (p: Proc, pattern: RegExp, what: string, timeoutMs = 60_000): Promise<RegExpExecArray> =>
  new Promise((resolve, reject) => {
    let done = false
    const finish = (f: () => void) => {
      if (done) return
      done = true
      clearTimeout(timer)
      unlisten()
      f()
    }
    const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${p.output().slice(-4000)}`))), timeoutMs)
    const unlisten = p.onLine((line) => {
      const m = pattern.exec(line)
      if (m) finish(() => resolve(m))
    })
    // Complete lines written before we listened (the last piece may be a line still being written).
    for (const line of p.output().split("\n").slice(0, -1)) {
      const m = pattern.exec(line)
      if (m) return finish(() => resolve(m))
    }
    void p.exited.then((code) => finish(() => reject(new Error(`${p.name} exited (${code ?? p.child.signalCode}) before ${what}:\n${p.output().slice(-4000)}`))))
  })

export interface Server extends Proc {
  /** http://127.0.0.1:<port> */
  readonly url: string
}

/**
 * `serve` on a free port (PORT 0, HOST 127.0.0.1 unless `env` says otherwise); resolves once it has
 * logged the address it listens on.
 */
export const startServer = async (opts: SpawnOptions & { readonly name?: string; readonly nodeArgs?: ReadonlyArray<string>; readonly timeoutMs?: number } = {}): Promise<Server> => {
  const p = spawnCairn("serve", { ...opts, env: { PORT: "0", HOST: "127.0.0.1", ...opts.env } })
  try {
    const [, url] = await waitForLine(p, /cairn listening on (http:\/\/[\d.]+:\d+)/, "the server's listening line", opts.timeoutMs ?? 120_000)
    return { ...p, url: url! }
  } catch (e) {
    await p.stop(1000)
    throw e
  }
}

/** Wait (bounded) until `f` returns something other than undefined/false, trying every `everyMs`. */
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

// ---- interruption: Ctrl-C (or SIGTERM, SIGHUP) stops every child and runs the clean-ups ---------

const cleanups: Array<() => Promise<void>> = []
let handling = false

/**
 * For scripts: on SIGINT, SIGTERM or SIGHUP, stop every child (with a short grace), run the
 * registered clean-ups (last registered first: stop the database, remove temporary directories)
 * and exit 130. Each call may add a clean-up; the handlers are installed once.
 */
export const onInterrupt = (cleanup?: () => Promise<void>) => {
  if (cleanup) cleanups.push(cleanup)
  if (handling) return
  handling = true
  let interrupted = false
  const interrupt = async (sig: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    console.error(`\n${sig}: stopping ${live.size} child process(es) and cleaning up`)
    await Promise.all([...live.keys()].map((p) => p.stop(5000).catch(() => undefined)))
    for (const f of cleanups.reverse()) await f().catch(() => undefined)
    process.exit(130)
  }
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, () => void interrupt(sig))
}
