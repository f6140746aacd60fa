/**
 * wrk (Debian's package: a multi-threaded C load generator with LuaJIT) requesting random paths
 * from a list, the load generator of bench:content. It replaced autocannon, which ran in one
 * Node.js thread at ~100% CPU in every run (so it, not the server, set the pace) and whose
 * `requests.average` is a mean over one-second samples, not requests / duration.
 *
 * Every figure here comes from wrk's own totals (the Lua `done` hook): requests and bytes over the
 * measured duration in microseconds, its latency histogram, its error counts. wrk's own CPU is what
 * this process's waited-for children used while it ran (wrk is the only child that exits then).
 */
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { cpuOfExitedChildren } from "./cpu.js"
import { runCommand } from "../../lib/processes.js"

const CANDIDATES = ["/usr/bin/wrk", "/usr/local/bin/wrk"]

/** The wrk binary, or an error that says how to install it. */
export const wrkBinary = (): string => {
  const found = CANDIDATES.find((c) => existsSync(c))
  if (!found) throw new Error("wrk is not installed: bench:content needs it as its load generator; install it with `apt-get install -y wrk` (Debian package) and run the benchmark again")
  return found
}

export const wrkVersion = async () => {
  const r = await runCommand(wrkBinary(), ["--version"])
  return (r.stdout + r.stderr).split("\n")[0]!.replace(/\s+Copyright.*$/, "").trim()
}

// Each wrk thread runs this script in a Lua state of its own: it reads the path list, seeds its
// generator from the run's seed and its thread number, and requests a random path each time.
const SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local seed = tonumber(os.getenv("WRK_SEED"))
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
function init(args)
  math.randomseed(seed * 64 + thread_number)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`

export interface WrkResult {
  readonly requests: number
  readonly seconds: number
  /** requests / seconds: wrk's totals, not a mean of per-second samples. */
  readonly rps: number
  readonly bytesPerSecond: number
  /** Socket errors (connect, read, write) and timeouts. */
  readonly errors: number
  readonly timeouts: number
  /** Responses with a status >= 400. */
  readonly non2xx: number
  /** Milliseconds. */
  readonly latency: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
  /** wrk's CPU share during the run (1 = one core). */
  readonly clientCpu: number
}

export interface WrkLoad {
  readonly run: (base: string, paths: ReadonlyArray<string>, opts: { readonly connections: number; readonly seconds: number; readonly seed: number }) => Promise<WrkResult>
  readonly close: () => Promise<void>
}

/** A load generator with `threads` threads (default: one per core). */
export const makeWrk = async (threads = os.cpus().length): Promise<WrkLoad> => {
  const bin = wrkBinary()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-bench-wrk-"))
  const script = path.join(dir, "random.lua")
  await fs.writeFile(script, SCRIPT)
  let lists = 0
  return {
    run: async (base, paths, { connections, seconds, seed }) => {
      const url = new URL(base)
      const prefix = url.pathname.replace(/\/$/, "")
      const list = path.join(dir, `paths-${lists++}.txt`)
      await fs.writeFile(list, paths.map((p) => `${prefix}/${p}`).join("\n") + "\n")
      const cpu0 = cpuOfExitedChildren()
      const r = await runCommand(bin, [
        "--threads", String(Math.min(threads, connections)),
        "--connections", String(connections),
        "--duration", `${seconds}s`,
        "--timeout", "30s",
        "--script", script,
        url.origin
      ], { env: { WRK_PATHS: list, WRK_SEED: String(seed) } })
      const cpu = cpuOfExitedChildren() - cpu0
      await fs.rm(list, { force: true })
      const line = /WRK_RESULT (\{.*\})/.exec(r.stdout)
      if (r.code !== 0 || !line) throw new Error(`wrk exited ${r.code} without a result:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`)
      const w = JSON.parse(line[1]!) as Record<string, number>
      const secs = w.duration_us! / 1e6
      return {
        requests: w.requests!,
        seconds: secs,
        rps: w.requests! / secs,
        bytesPerSecond: w.bytes! / secs,
        errors: w.connect! + w.read! + w.write!,
        timeouts: w.timeout!,
        non2xx: w.status!,
        latency: { p50: w.p50_us! / 1000, p90: w.p90_us! / 1000, p99: w.p99_us! / 1000, max: w.max_us! / 1000 },
        clientCpu: cpu / (secs * 1000)
      }
    },
    close: () => fs.rm(dir, { recursive: true, force: true })
  }
}
