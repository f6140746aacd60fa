/**
 * The cluster on an object store (CAIRN_STORAGE=s3, s3rver on its own host): one worker host loses
 * its path to the object store (and only that: it still reaches PostgreSQL and the upstream).
 * Its tasks fail cleanly, naming the store; the other worker host goes on; nothing half-stored is
 * visible.
 */
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFiles } from "../support/upstream.js"
import { type ApiHost, type Cluster, startCluster } from "./support/cluster.js"
import { get, post, settled, taskRow } from "./support/client.js"
import type { HostProc } from "./support/procs.js"

let cluster: Cluster
let a1: ApiHost
let w1: HostProc & { readonly pid: number }
let w2: HostProc & { readonly pid: number }
const REPOS = 8
const moreRepos = Object.fromEntries(Array.from({ length: REPOS }, (_, i) => [`r${i}`, makeFiles(6, { minSize: 1, maxSize: 32 * 1024, seed: 100 + i })]))

describe("the object store unreachable from one worker host", () => {
  beforeAll(async () => {
    cluster = await startCluster({ files: {}, moreRepos, objectStore: true })
    a1 = await cluster.startApi("a1")
    ;[w1, w2] = await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")])
  })

  afterAll(async () => {
    await cluster?.destroy()
  })

  it("fails that host's tasks cleanly, naming the store, while the other host goes on", async () => {
    await cluster.net.block("w1", "s3")
    // Syncs of repositories with files of their own (every one must store new objects), submitted
    // together so that both workers take some; more until each worker has run at least one.
    const outcomes: Array<{ repo: string; host: "w1" | "w2"; future: any }> = []
    for (let i = 0; i < REPOS && !(outcomes.some((o) => o.host === "w1") && outcomes.some((o) => o.host === "w2")); i += 2) {
      const batch = [i, i + 1].map(async (k) => {
        const repo = `r${k}`
        expect((await post(a1.url, "/api/v1/remotes", { name: repo, url: cluster.upstreams.get(repo)!.url })).status).toBe(201)
        expect((await post(a1.url, "/api/v1/repositories", { name: repo })).status).toBe(201)
        const g = await post(a1.url, "/api/v1/graphs", { nodes: { sync: { task: "file.sync", params: { repository: repo, remote: repo } } } })
        expect(g.status).toBe(201)
        const future = await settled(a1.url, g.body.nodes.sync.outputs.version, 240_000)
        const t = await taskRow(cluster.db, g.body.nodes.sync.task)
        return { repo, host: t.worker_pid === w1.pid ? "w1" as const : "w2" as const, future }
      })
      outcomes.push(...(await Promise.all(batch)))
    }
    expect(outcomes.some((o) => o.host === "w1")).toBe(true)
    expect(outcomes.some((o) => o.host === "w2")).toBe(true)

    for (const o of outcomes.filter((o) => o.host === "w1")) {
      // Failed, not stuck: with a storage error that names the store.
      expect(o.future.state, `${o.repo} on w1: ${JSON.stringify(o.future.error ?? o.future.value)}`).toBe("failed")
      expect(o.future.error.code).toBe("storage_error")
    }
    for (const o of outcomes.filter((o) => o.host === "w2")) {
      expect(o.future.state, `${o.repo} on w2: ${JSON.stringify(o.future.error)}`).toBe("resolved")
    }
    // The cut-off host is alive and registered all along: only its tasks failed.
    expect(w1.alive()).toBe(true)
    const workers = (await cluster.db.query<{ pid: number }>(`SELECT pid FROM workers`)).rows.map((r) => r.pid)
    expect(workers).toEqual(expect.arrayContaining([w1.pid, w2.pid]))

    // Back on the store's network, it stores again; and everything the other host stored is there,
    // byte for byte, through the content app. (Publishing writes the manifest to the store, and
    // either worker may take it: so only once both reach the store.)
    await cluster.net.unblock("w1", "s3")
    for (const o of outcomes.filter((o) => o.host === "w2")) {
      expect((await post(a1.url, "/api/v1/distributions", { name: o.repo, base_path: o.repo })).status).toBe(201)
      const g = await post(a1.url, "/api/v1/graphs", {
        nodes: {
          publish: { task: "file.publish", params: { version: { $ref: o.future.id } } },
          serve: { task: "distribution.set", params: { distribution: o.repo, publication: { $ref: "publish.publication" } } }
        }
      })
      const served = await settled(a1.url, g.body.nodes.serve.outputs.distribution)
      expect(served.state, JSON.stringify(served.error)).toBe("resolved")
      for (const [rel, digest] of cluster.upstreams.get(o.repo)!.files) {
        const res = await fetch(`${a1.url}/content/${o.repo}/${rel}`)
        expect(res.status).toBe(200)
        expect(createHash("sha256").update(Buffer.from(await res.arrayBuffer())).digest("hex")).toBe(digest)
      }
    }
    expect((await get(a1.url, "/healthz")).status).toBe(200)
  })
})
