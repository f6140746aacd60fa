import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Namespaces and root: `npm run test:cluster` (vitest.cluster.config.ts).
    exclude: ["test/cluster/**", "**/node_modules/**"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll gives up after 1 s by default: on a loaded machine a page or a process can take
    // longer than that to show what the test waits for. The bound only turns a hang into a failure.
    expect: { poll: { timeout: 60_000 } },
    pool: "forks",
    // Two cores: test files run two at a time, each against its own database.
    maxWorkers: 2,
    reporters: ["default"]
  }
})
