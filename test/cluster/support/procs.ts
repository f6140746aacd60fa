/**
 * Processes on the cluster's hosts: a command run through `ip netns exec <ns>` (which execs it, so
 * the pid we hold is the program's own and SIGKILL reaches it), its output kept and readable line
 * by line, so that tests wait for what a process says instead of sleeping.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { Host } from "../../../scripts/lib/netns.js"

export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

export interface HostProc {
  readonly name: string
  readonly child: ChildProcess
  readonly output: () => string
  /** Resolves with the first line (already written or to come) that matches; rejects if it exits first or after `timeoutMs`. */
  readonly waitFor: (pattern: RegExp, what: string, timeoutMs?: number) => Promise<RegExpExecArray>
  readonly exited: Promise<number | null>
  readonly alive: () => boolean
  /** SIGTERM, then SIGKILL after `graceMs`. */
  readonly stop: (graceMs?: number) => Promise<number | null>
  readonly kill9: () => Promise<void>
}

const live = new Set<HostProc>()
process.once("exit", () => {
  for (const p of live) p.child.kill("SIGKILL")
})

export const spawnOn = (host: Host, name: string, command: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): HostProc => {
  const child = spawn(host.exec[0]!, [...host.exec.slice(1), command, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  const lines: Array<string> = []
  const listeners = new Set<(line: string) => void>()
  let partial = ""
  const take = (d: Buffer) => {
    out += d.toString()
    const parts = (partial + d.toString()).split("\n")
    partial = parts.pop()!
    for (const l of parts) {
      lines.push(l)
      for (const f of listeners) f(l)
    }
  }
  child.stdout!.on("data", take)
  child.stderr!.on("data", take)
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
  const alive = () => child.exitCode === null && child.signalCode === null
  const p: HostProc = {
    name,
    child,
    output: () => out,
    exited,
    alive,
    waitFor: (pattern, what, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const done = (f: () => void) => {
          clearTimeout(timer)
          listeners.delete(onLine)
          f()
        }
        const onLine = (l: string) => {
          const m = pattern.exec(l)
          if (m) done(() => resolve(m))
        }
        const timer = setTimeout(() => done(() => reject(new Error(`${name}: timed out after ${timeoutMs} ms waiting for ${what}\n${out.slice(-3000)}`))), timeoutMs)
        for (const l of lines) {
          const m = pattern.exec(l)
          if (m) return done(() => resolve(m))
        }
        listeners.add(onLine)
        void exited.then((code) => done(() => reject(new Error(`${name} exited (${code}) before ${what}\n${out.slice(-3000)}`))))
      }),
    stop: async (graceMs = 20_000) => {
      if (alive()) child.kill("SIGTERM")
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs)
      const code = await exited
      clearTimeout(t)
      return code
    },
    kill9: async () => {
      child.kill("SIGKILL")
      await exited
    }
  }
  live.add(p)
  void exited.then(() => live.delete(p))
  return p
}

/** `node --import tsx <file>` on a host. */
export const spawnTsOn = (host: Host, name: string, file: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  spawnOn(host, name, process.execPath, ["--import", "tsx", file, ...args], env)
