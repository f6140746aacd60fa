/**
 * A cluster across network namespaces (support/cluster.ts): two API hosts, two worker hosts,
 * PostgreSQL and the upstream each on its own address. The scenarios run in order on one cluster.
 */
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFiles } from "../support/upstream.js"
import { type ApiHost, type Cluster, startCluster } from "./support/cluster.js"
import { get, post, settled, taskRow, until } from "./support/client.js"
import type { HostProc } from "./support/procs.js"

let cluster: Cluster
let a1: ApiHost
let a2: ApiHost
let w1: HostProc & { readonly pid: number }
let w2: HostProc & { readonly pid: number }
const files = makeFiles(24, { minSize: 1, maxSize: 96 * 1024, seed: 7 })

beforeAll(async () => {
  cluster = await startCluster({ files, logStatements: true })
  ;[a1, a2] = await Promise.all([cluster.startApi("a1"), cluster.startApi("a2")])
  ;[w1, w2] = await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")])
})

afterAll(async () => {
  await cluster?.destroy()
})

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

describe("a cluster on separate network hosts", () => {
  it("runs a sync -> publish -> distribute graph submitted to one API host on the worker hosts, and serves every file from the other", async () => {
    expect((await post(a1.url, "/api/v1/remotes", { name: "up", url: cluster.upstreamUrl })).status).toBe(201)
    expect((await post(a1.url, "/api/v1/repositories", { name: "repo" })).status).toBe(201)
    expect((await post(a1.url, "/api/v1/distributions", { name: "dist", base_path: "dist" })).status).toBe(201)
    const graph = await post(a1.url, "/api/v1/graphs", {
      label: "mirror",
      nodes: {
        sync: { task: "file.sync", params: { repository: "repo", remote: "up" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
        serve: { task: "distribution.set", params: { distribution: "dist", publication: { $ref: "publish.publication" } } }
      }
    })
    expect(graph.status).toBe(201)
    const done = await settled(a1.url, graph.body.nodes.serve.outputs.distribution)
    expect(done.error).toBeUndefined()
    expect(done.state).toBe("resolved")

    // Every task ran on a worker host (the API hosts run no worker slots).
    const workerPids = new Set([w1.pid, w2.pid])
    for (const node of ["sync", "publish", "serve"]) {
      const t = await taskRow(cluster.db, graph.body.nodes[node].task)
      expect(t.state).toBe("succeeded")
      expect(workerPids.has(t.worker_pid!)).toBe(true)
    }

    // The other API host serves every file, byte for byte.
    const manifest = await fetch(`${a2.url}/content/dist/PULP_MANIFEST`)
    expect(manifest.status).toBe(200)
    const listed = (await manifest.text()).trim().split("\n").map((l) => l.split(",")[0])
    expect(listed.sort()).toEqual([...cluster.upstreamFiles.keys()].sort())
    for (const [rel, digest] of cluster.upstreamFiles) {
      const res = await fetch(`${a2.url}/content/dist/${rel}`)
      expect(res.status).toBe(200)
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest)
    }
  })
})
