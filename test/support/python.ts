/** Running python3 from tests. */
import { spawn } from "node:child_process"

/** Run `python3 -c script args...` with `input` on stdin; its stdout, or an error with its stderr. */
export const runPython = (script: string, input: string, args: ReadonlyArray<string> = []): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn("python3", ["-c", script, ...args], { stdio: ["pipe", "pipe", "pipe"] })
    let out = ""
    let err = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (err += d))
    child.on("error", reject)
    child.on("close", (code) => code === 0 ? resolve(out) : reject(new Error(`python3 exited with ${code}: ${err}`)))
    child.stdin.end(input)
  })
