import { defineConfig } from "vitest/config"

/**
 * `npm run test:cluster`: the cluster tests (test/cluster), which build network namespaces and so
 * need root and iproute2. They run apart from `npm test` (which needs neither) and one file at a
 * time: each file starts a whole cluster of processes, and two at once on a small machine would
 * make liveness timings meaningless.
 */
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ["default"]
  }
})
