/**
 * Configuration errors stop a process at start, non-zero, with a message naming the variable.
 */
import { describe, expect, it } from "vitest"
import { spawnCairn } from "./support/processes.js"

const failsNaming = async (entry: "serve" | "worker", env: Record<string, string>, name: string) => {
  // An unreachable database: configuration is read before anything connects.
  const p = spawnCairn(entry, { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", ...env })
  const code = await p.exited
  expect(code, p.output()).not.toBe(0)
  expect(p.output()).toContain(name)
}

describe("configuration", () => {
  it("an invalid PORT stops serve, naming PORT", () => failsNaming("serve", { PORT: "abc" }, "PORT"))
  it("an out-of-range CAIRN_DOWNLOAD_CONCURRENCY stops a worker, naming it", () =>
    failsNaming("worker", { CAIRN_DOWNLOAD_CONCURRENCY: "0" }, "CAIRN_DOWNLOAD_CONCURRENCY"))
  it("an unknown CAIRN_LOG_LEVEL stops serve, naming it", () => failsNaming("serve", { CAIRN_LOG_LEVEL: "loud" }, "CAIRN_LOG_LEVEL"))
  it("a CAIRN_API_TOKENS entry with an unknown scope stops serve, naming the entry but not the token", async () => {
    // A misspelt scope must not become a token that may do everything.
    for (const tokens of ["good-token-1,secret-token-2:raed", "good-token-1,:read", "good-token-1,secret:token-2:read"]) {
      const p = spawnCairn("serve", { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", CAIRN_API_TOKENS: tokens })
      expect(await p.exited, p.output()).not.toBe(0)
      expect(p.output()).toContain("CAIRN_API_TOKENS entry 2")
      expect(p.output()).not.toContain("secret")
      expect(p.output()).not.toContain("good-token")
    }
  })
})
