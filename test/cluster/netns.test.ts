/**
 * The test network cleans up after itself, and after a run that could not (scripts/lib/netns.ts).
 */
import { execFileSync, spawn } from "node:child_process"
import { describe, expect, it } from "vitest"
import { createNetwork, removeLeftovers } from "../../scripts/lib/netns.js"
import { isAlive } from "../../src/db/embedded-lifecycle.js"
import { until } from "./support/client.js"
import { repoRoot } from "./support/procs.js"

const namespaces = () => execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
const links = () => execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })

describe("the namespace network", () => {
  it("deletes everything it made on destroy", async () => {
    const net = await createNetwork([{ name: "aa" }, { name: "bb", frontend: true }])
    expect(namespaces()).toContain(`${net.prefix}-aa`)
    expect(links()).toContain(`${net.prefix}bk`)
    await net.destroy()
    expect(namespaces()).not.toContain(net.prefix)
    expect(links()).not.toContain(net.prefix)
  })

  it("removes what a killed run left behind, processes in its namespaces included", async () => {
    // A run that builds a network, starts a process on one host and is then killed outright.
    const script = `
      import { createNetwork } from "./scripts/lib/netns.ts"
      import { spawn } from "node:child_process"
      const net = await createNetwork([{ name: "aa" }])
      const sleeper = spawn("ip", ["netns", "exec", net.host("aa").ns, "sleep", "600"], { stdio: "ignore", detached: true })
      console.log("ready " + net.prefix + " " + sleeper.pid)
      setInterval(() => {}, 1000)
    `
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] })
    const line = await new Promise<string>((resolve, reject) => {
      let out = ""
      child.stdout!.on("data", (d) => {
        out += d
        const m = /ready \S+ \d+/.exec(out)
        if (m) resolve(m[0])
      })
      child.once("exit", (code) => reject(new Error(`the run exited (${code}) before its network was up: ${out}`)))
    })
    const [, prefix, sleeperPid] = line.split(" ")
    child.kill("SIGKILL")
    await new Promise((r) => child.once("exit", r))
    expect(namespaces()).toContain(`${prefix}-aa`)

    await removeLeftovers()
    expect(namespaces()).not.toContain(prefix!)
    expect(links()).not.toContain(prefix!)
    // The process it had started in that namespace is gone too (killed; a zombie until reaped).
    await until("the process left in the namespace to be gone", async () => !isAlive({ pid: Number(sleeperPid), start: 0 }), 10_000)
  })
})
