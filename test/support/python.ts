/** Running python3 (and the tools of a venv) from tests. */
import { spawn } from "node:child_process"

export interface RunOptions {
  /** Written to stdin (closed either way). */
  readonly input?: string
  /** Replaces the environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
}

/** Run a program to its end: its exit code and its stdout and stderr (apart, and as one text). */
export const runProcess = (cmd: string, args: ReadonlyArray<string>, options?: RunOptions) =>
  new Promise<{ code: number | null; stdout: string; output: string }>((resolve, reject) => {
    const child = spawn(cmd, args, { env: options?.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let output = ""
    child.stdout.on("data", (d) => {
      stdout += d
      output += d
    })
    child.stderr.on("data", (d) => (output += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, output }))
    // A child that exits or closes its stdin before reading it (pip does not read it) fails the
    // write with EPIPE, which unhandled would crash the test run: its exit code and output say
    // what happened. Without input nothing is written, stdin is only closed.
    child.stdin.on("error", () => undefined)
    if (options?.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
  })

/** Run `python3 -c script args...` with `input` on stdin; its stdout, or an error with its output. */
export const runPython = async (script: string, input: string, args: ReadonlyArray<string> = []): Promise<string> => {
  const r = await runProcess("python3", ["-c", script, ...args], { input })
  if (r.code !== 0) throw new Error(`python3 exited with ${r.code}: ${r.output}`)
  return r.stdout
}
