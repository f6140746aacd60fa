/**
 * The artifact store failing under a sync: the artifact directory is a small tmpfs that fills up,
 * or is remounted read-only. The sync fails with a clear storage error, no partial artifact is
 * visible, no row references a missing file, and once the fault is gone a re-run succeeds.
 *
 * Needs to mount a tmpfs: root (CI runs as root; .ci/run installs mount(8) if it is missing). Where
 * it cannot, the tests fail saying why: they never skip.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sql } from "drizzle-orm"
import { Duration, Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createNamed } from "../src/content/named.js"
import { ArtifactStorage } from "../src/content/storage.js"
import { Db } from "../src/db/client.js"
import { submitGraph } from "../src/engine/submit.js"
import { runWorker } from "../src/engine/worker.js"
import { createTestDatabase, engineLayer } from "./support/db.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-storage-faults-"))
const artifacts = path.join(dataDir, "artifacts")
fs.mkdirSync(artifacts)
const mount = (opts: string) => execFileSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", artifacts], { stdio: "pipe" })
const remount = (opts: string) => execFileSync("mount", ["-o", `remount,${opts}`, artifacts], { stdio: "pipe" })

/** Mount the small tmpfs, or say in one sentence why this machine cannot. */
const mountOrExplain = () => {
  try {
    mount("size=256k")
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer }
    const why = err.code === "ENOENT"
      ? "mount(8) is not installed; install Debian's `mount` package, as .ci/run does"
      : `${(err.stderr?.toString() || err.message).trim().split("\n")[0]}; run them as root where mounts are allowed, as CI does${process.getuid?.() === 0 ? "" : " (this process is not root)"}`
    throw new Error(`the storage fault tests must mount a tmpfs on ${artifacts} and cannot: ${why}`)
  }
}

let mounted = false
let upstream: Upstream
let rt: ManagedRuntime.ManagedRuntime<any, any>
beforeAll(async () => {
  mountOrExplain()
  mounted = true
  // About 1.2 MiB in all: more than the 256 KiB the store starts with.
  upstream = await startUpstream(makeFiles(12, { seed: 21, minSize: 60_000, maxSize: 140_000 }))
  const url = await createTestDatabase()
  rt = ManagedRuntime.make(Layer.merge(engineLayer(url, { dataDir }), Logger.minimumLogLevel(LogLevel.Error)))
  await rt.runPromise(Effect.forkDaemon(Effect.scoped(Effect.zipRight(runWorker({ slots: 2 }), Effect.never))))
})
afterAll(async () => {
  await rt?.dispose()
  await upstream?.close()
  if (mounted) execFileSync("umount", [artifacts])
  fs.rmSync(dataDir, { recursive: true, force: true })
})

/** Run one sync and wait (bounded) for its future. */
const sync = (repository: string, remote: string) =>
  Effect.gen(function*() {
    const db = yield* Db
    const g = yield* submitGraph({ nodes: { s: { task: "file.sync", params: { repository, remote } } } })
    const id = g.nodes.s!.outputs.version!
    for (let waited = 0; waited < 60_000; waited += 50) {
      const [f] = yield* db.rows<{ state: string; value: any; error: any }>(sql`SELECT state, value, error FROM futures WHERE id = ${id}`)
      if (f!.state !== "pending") return f!
      yield* Effect.sleep(Duration.millis(50))
    }
    return yield* Effect.dieMessage("the sync did not settle within 60 s")
  })

/** No row without its complete bytes, and nothing half-written visible (only tmp may hold leftovers). */
const consistent = Effect.gen(function*() {
  const db = yield* Db
  const storage = yield* ArtifactStorage
  const rows = yield* db.rows<{ sha256: string; size: string }>(sql`SELECT sha256, size FROM artifacts`)
  for (const r of rows) expect((yield* storage.stat(r.sha256))?.size, r.sha256).toBe(Number(r.size))
  const visible: Array<string> = []
  for (const a of fs.readdirSync(artifacts).filter((d) => d !== "tmp" && d !== "lost+found")) {
    for (const b of fs.readdirSync(path.join(artifacts, a))) visible.push(...fs.readdirSync(path.join(artifacts, a, b)))
  }
  for (const sha of visible) {
    // Every visible file is complete: its bytes hash to its name.
    const hash = execFileSync("sha256sum", [path.join(artifacts, sha.slice(0, 2), sha.slice(2, 4), sha)]).toString().split(" ")[0]
    expect(hash).toBe(sha)
  }
})

describe("storage faults", () => {
  it("a full disk fails the sync clearly, leaves nothing half-stored, and a re-run succeeds once there is room", async () => {
    await rt.runPromise(Effect.gen(function*() {
      yield* createNamed("remote", "full", { url: upstream.url, policy: "immediate", download_concurrency: 2 })
      yield* createNamed("repository", "full", {})
      const failed = yield* sync("full", "full")
      expect(failed.state).toBe("failed")
      expect(failed.error.code).toBe("storage_error")
      expect(failed.error.message).toMatch(/space|full|ENOSPC/i)
      yield* consistent
      remount("size=16m")
      const ok = yield* sync("full", "full")
      expect(ok.state, JSON.stringify(ok.error)).toBe("resolved")
      expect(ok.value.number).toBe(1)
      yield* consistent
    }))
  })

  it("a read-only store fails the sync clearly; after it is writable again a re-run succeeds", async () => {
    const up = await startUpstream(makeFiles(3, { seed: 77, minSize: 1000, maxSize: 2000 }))
    try {
      await rt.runPromise(Effect.gen(function*() {
        yield* createNamed("remote", "ro", { url: up.url, policy: "immediate", download_concurrency: 2 })
        yield* createNamed("repository", "ro", {})
        remount("ro")
        const failed = yield* sync("ro", "ro").pipe(Effect.ensuring(Effect.sync(() => remount("rw"))))
        expect(failed.state).toBe("failed")
        expect(failed.error.code).toBe("storage_error")
        expect(failed.error.message).toMatch(/read-only|EROFS/i)
        yield* consistent
        const ok = yield* sync("ro", "ro")
        expect(ok.state, JSON.stringify(ok.error)).toBe("resolved")
        yield* consistent
      }))
    } finally {
      await up.close()
    }
  })
})
