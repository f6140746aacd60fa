/**
 * The content store end to end, through HTTP only, against a real `serve` process and a fixture
 * upstream: the README's flow (remote, repository, distribution, then sync -> publish -> distribute
 * as one graph), every file downloaded through the content app and checked; on-demand serving;
 * and a round trip: a second repository syncs from cairn's own published PULP_MANIFEST; re-syncs
 * (no-op, changed upstream, mirror); a corrupted upstream file and an unsafe manifest.
 *
 * One scenario for every artifact store: test/content-e2e.test.ts runs it on the local filesystem
 * and on an S3-protocol server. `storage` gives the environment of the store (started for the
 * scenario, stopped after it).
 */
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./db.js"
import { api, type Server, startServer } from "./processes.js"
import { makeFiles, startUpstream, type Upstream } from "./upstream.js"

export interface ScenarioStorage {
  readonly name: string
  /** Start the store; the environment a cairn process needs to use it. */
  readonly start: () => Promise<Record<string, string>>
  readonly stop: () => Promise<void>
  /** Checks, after the scenario, that the artifacts are where this store keeps them. */
  readonly verify?: (files: Record<string, Buffer>) => Promise<void> | void
}

export const contentEndToEnd = (storage: ScenarioStorage) => describe(`content store end to end (${storage.name})`, () => {
let server: Server
let c: ReturnType<typeof api>
let upstream: Upstream
const files = makeFiles(20, { seed: 11, maxSize: 200_000 })
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex")

beforeAll(async () => {
  const db = await createTestDatabase()
  server = await startServer(db, { CAIRN_WORKERS: "3", ...(await storage.start()) })
  c = api(server.url)
  upstream = await startUpstream(files)
})
afterAll(async () => {
  await server?.stop()
  await upstream?.close()
  await storage.stop()
})

const created = async (path: string, body: unknown) => {
  const r = await c.post(path, body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body
}

/** Submit the three-node chain and await every output. */
const syncPublishDistribute = async (repository: string, remote: string, distribution: string) => {
  const g = await c.post("/api/v1/graphs", {
    label: `publish ${repository}`,
    nodes: {
      sync: { task: "file.sync", params: { repository, remote } },
      publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } },
      distribute: { task: "distribution.set", params: { distribution, publication: { $ref: "publish.publication" } } }
    }
  })
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const out: Record<string, any> = {}
  for (const [name, node] of Object.entries(g.body.nodes as Record<string, { outputs: Record<string, string> }>)) {
    const f = await c.settled(Object.values(node.outputs)[0]!)
    expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
    out[name] = f
  }
  return out
}

const fetchFile = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}/content/${path}`, { headers })

describe("the README flow and its variations", () => {
  it("syncs, publishes and distributes in one graph; every file comes back from the content app intact", async () => {
    await created("/api/v1/remotes", { name: "upstream", url: upstream.url })
    await created("/api/v1/repositories", { name: "files" })
    await created("/api/v1/distributions", { name: "files", base_path: "pub/files" })
    const out = await syncPublishDistribute("files", "upstream", "files")
    expect(out.sync.value.number).toBe(1)

    for (const [path, bytes] of Object.entries(files)) {
      const r = await fetchFile(`pub/files/${path}`)
      expect(r.status, path).toBe(200)
      const body = Buffer.from(await r.arrayBuffer())
      expect(sha(body), path).toBe(sha(bytes))
      expect(r.headers.get("etag")).toBe(`"${sha(bytes)}"`)
    }
    const manifest = await fetchFile("pub/files/PULP_MANIFEST")
    expect(manifest.status).toBe(200)
    const lines = (await manifest.text()).trim().split("\n").sort()
    expect(lines).toEqual(Object.entries(files).map(([p, b]) => `${p},${sha(b)},${b.length}`).sort())

    // Versions: 0 and 1, with content counts and the future that made 1.
    const versions = await c.get("/api/v1/repositories/files/versions")
    expect(versions.status).toBe(200)
    expect(versions.body.map((v: any) => [v.number, v.content_count])).toEqual([[1, 20], [0, 0]])
    expect(versions.body[0].future).toBe(out.sync.id)
    const page = await c.get("/api/v1/repositories/files/versions/1/content?limit=7")
    expect(page.body.items).toHaveLength(7)
    expect(typeof page.body.next).toBe("string")
    const rest = await c.get(`/api/v1/repositories/files/versions/1/content?after=${page.body.next}`)
    expect(rest.body.items).toHaveLength(13)
    expect(rest.body.next).toBeUndefined()

    // Range and conditional requests.
    const [first, bytes] = Object.entries(files).find(([, b]) => b.length > 100)!
    const part = await fetchFile(`pub/files/${first}`, { range: "bytes=10-19" })
    expect(part.status).toBe(206)
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20))
    const same = await fetchFile(`pub/files/${first}`, { "if-none-match": `"${sha(bytes)}"` })
    expect(same.status).toBe(304)
    expect((await fetchFile("pub/files/../files/x")).status).toBeGreaterThanOrEqual(400)
    expect((await fetchFile("pub/files/no/such/file")).status).toBe(404)
  })

  it("a second repository syncs from cairn's own published PULP_MANIFEST (round trip)", async () => {
    await created("/api/v1/remotes", { name: "cairn-itself", url: `${server.url}/content/pub/files/PULP_MANIFEST` })
    await created("/api/v1/repositories", { name: "copy" })
    await created("/api/v1/distributions", { name: "copy", base_path: "pub/copy" })
    const out = await syncPublishDistribute("copy", "cairn-itself", "copy")
    expect(out.sync.value.number).toBe(1)
    for (const [path, bytes] of Object.entries(files)) {
      const r = await fetchFile(`pub/copy/${path}`)
      expect(sha(Buffer.from(await r.arrayBuffer())), path).toBe(sha(bytes))
    }
  })

  it("on_demand: files are fetched from the remote on first request, once, then served from the store", async () => {
    const lazyFiles = makeFiles(4, { seed: 5, maxSize: 50_000 })
    const lazy = await startUpstream(lazyFiles)
    try {
      await created("/api/v1/remotes", { name: "lazy", url: lazy.url, policy: "on_demand" })
      await created("/api/v1/repositories", { name: "lazy" })
      await created("/api/v1/distributions", { name: "lazy", base_path: "pub/lazy" })
      await syncPublishDistribute("lazy", "lazy", "lazy")
      expect([...lazy.requests.keys()]).toEqual(["PULP_MANIFEST"])
      const [path, bytes] = Object.entries(lazyFiles)[0]!
      const all = await Promise.all(Array.from({ length: 8 }, () => fetchFile(`pub/lazy/${path}`)))
      for (const r of all) {
        expect(r.status).toBe(200)
        expect(sha(Buffer.from(await r.arrayBuffer()))).toBe(sha(bytes))
      }
      expect(lazy.requests.get(path)).toBe(1)
      const again = await fetchFile(`pub/lazy/${path}`)
      expect(sha(Buffer.from(await again.arrayBuffer()))).toBe(sha(bytes))
      expect(lazy.requests.get(path)).toBe(1)
    } finally {
      await lazy.close()
    }
  })

  it("a re-sync is a no-op; a changed upstream makes a version with the diff; mirror drops what upstream dropped", async () => {
    const up = await startUpstream({ "a.txt": "alpha", "b.txt": "beta", "c/d.txt": "delta" })
    try {
      await created("/api/v1/remotes", { name: "changing", url: up.url })
      await created("/api/v1/repositories", { name: "changing" })
      await created("/api/v1/distributions", { name: "changing", base_path: "pub/changing" })
      const sync = async (mirror = false) => {
        const g = await c.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "changing", remote: "changing", mirror } } } })
        const f = await c.settled(g.body.nodes.s.outputs.version)
        expect(f.state, JSON.stringify(f.error)).toBe("resolved")
        return f.value
      }
      const paths = async (n: number) =>
        (await c.get(`/api/v1/repositories/changing/versions/${n}/content`)).body.items.map((u: any) => `${u.relative_path}=${u.sha256.slice(0, 8)}`).sort()
      const v1 = await sync()
      expect(v1.number).toBe(1)
      const again = await sync()
      expect(again).toEqual(v1)
      expect((await c.get("/api/v1/repositories/changing/versions")).body).toHaveLength(2)

      up.setFile("a.txt", "ALPHA")
      up.setFile("e.txt", "epsilon")
      up.removeFile("b.txt")
      const v2 = await sync()
      expect(v2.number).toBe(2)
      expect(await paths(2)).toEqual([`a.txt=${sha("ALPHA").slice(0, 8)}`, `b.txt=${sha("beta").slice(0, 8)}`, `c/d.txt=${sha("delta").slice(0, 8)}`, `e.txt=${sha("epsilon").slice(0, 8)}`])
      expect(await paths(1)).toEqual([`a.txt=${sha("alpha").slice(0, 8)}`, `b.txt=${sha("beta").slice(0, 8)}`, `c/d.txt=${sha("delta").slice(0, 8)}`])
      const v3 = await sync(true)
      expect(v3.number).toBe(3)
      expect(await paths(3)).toEqual([`a.txt=${sha("ALPHA").slice(0, 8)}`, `c/d.txt=${sha("delta").slice(0, 8)}`, `e.txt=${sha("epsilon").slice(0, 8)}`])
    } finally {
      await up.close()
    }
  })

  it("a corrupted upstream file fails the sync (digest_mismatch, naming the file) and cuts no version", async () => {
    const up = await startUpstream({ "good.txt": "good", "bad.txt": "bad bytes" })
    up.faults.corrupt("bad.txt")
    try {
      await created("/api/v1/remotes", { name: "corrupt", url: up.url })
      await created("/api/v1/repositories", { name: "corrupt" })
      const g = await c.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "corrupt", remote: "corrupt" } } } })
      const f = await c.settled(g.body.nodes.s.outputs.version)
      expect(f.state).toBe("failed")
      expect(f.error.code).toBe("digest_mismatch")
      expect(f.error.message).toContain("bad.txt")
      expect((await c.get("/api/v1/repositories/corrupt/versions")).body.map((v: any) => v.number)).toEqual([0])
    } finally {
      await up.close()
    }
  })

  it("a manifest with ../ paths is rejected, naming the line, before anything is downloaded", async () => {
    const up = await startUpstream({ "ok.txt": "ok" })
    up.setManifestOverride(`ok.txt,${sha("ok")},2\n../../etc/passwd,${sha("x")},1\n`)
    try {
      await created("/api/v1/remotes", { name: "evil", url: up.url })
      await created("/api/v1/repositories", { name: "evil" })
      const g = await c.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "evil", remote: "evil" } } } })
      const f = await c.settled(g.body.nodes.s.outputs.version)
      expect(f.state).toBe("failed")
      expect(f.error.code).toBe("manifest_invalid")
      expect(f.error.message).toMatch(/line 2/)
      expect(up.requests.get("ok.txt")).toBeUndefined()
    } finally {
      await up.close()
    }
  })
})

if (storage.verify !== undefined) {
  it(`keeps the artifacts in the ${storage.name} store`, () => storage.verify!(files))
}
})
