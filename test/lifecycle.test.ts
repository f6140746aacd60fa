/**
 * The lifecycle through the API of a real `serve` process (DESIGN.md §19): retention, deleting a
 * version, deleting a repository, what distributions and queued tasks hold, reclaiming with
 * orphans.cleanup (rows and bytes), demotion, history.purge, and what an old distribution revision
 * shows once its publication is gone.
 */
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"
import { startUpstream, type Upstream } from "./support/upstream.js"

let server: Server
let upstream: Upstream
let db: pg.Client
let c: ReturnType<typeof api>

beforeAll(async () => {
  const url = await createTestDatabase()
  // Three slots: a gate (a long sleep) takes one. No cache of small files' bodies: every request
  // reads the store, so that a demoted file is seen missing and fetched again.
  server = await startServer(url, { CAIRN_WORKERS: "3", CAIRN_CONTENT_CACHE_BYTES: "0" })
  upstream = await startUpstream({ "a.txt": "a1\n", "b.txt": "b1\n", "shared.txt": "shared\n" })
  db = new pg.Client({ connectionString: url })
  await db.connect()
  c = api(server.url)
  expect((await c.post("/api/v1/remotes", { name: "up", url: upstream.url })).status).toBe(201)
})
afterAll(async () => {
  await db?.end()
  await server?.stop()
  await upstream?.close()
})

const created = async (path: string, body: unknown) => {
  const r = await c.post(path, body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body
}

/** Submit a graph; its 201 body. */
const submit = async (nodes: Record<string, unknown>) => {
  const r = await c.post("/api/v1/graphs", { nodes })
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body as { id: string; nodes: Record<string, { task: string; outputs: Record<string, string> }> }
}

/** The settled future, which must have resolved. */
const resolved = async (future: string) => {
  const f = await c.settled(future)
  expect(f.state, JSON.stringify(f.error)).toBe("resolved")
  return f
}

const sync = (repository: string) => ({ task: "file.sync", params: { repository, remote: "up", mirror: true } })
const publish = (ref: string) => ({ task: "file.publish", params: { version: { $ref: ref } } })
const distribute = (distribution: string, ref: string) => ({ task: "distribution.set", params: { distribution, publication: { $ref: ref } } })

/** Sync (and optionally publish and distribute); the version number and the graph. */
const syncOnce = async (repository: string, distribution?: string) => {
  const g = await submit({
    sync: sync(repository),
    ...(distribution ? { publish: publish("sync.version"), serve: distribute(distribution, "publish.publication") } : {})
  })
  const v = await resolved(g.nodes.sync!.outputs.version!)
  if (distribution) await resolved(g.nodes.serve!.outputs.distribution!)
  return { number: v.value.number as number, graph: g }
}

const versions = async (repository: string) => {
  const r = await c.get(`/api/v1/repositories/${repository}/versions`)
  expect(r.status).toBe(200)
  return r.body as Array<{ number: number; held_by: Array<string> }>
}

const numbers = async (repository: string) => (await versions(repository)).map((v) => v.number)

const cleanup = async (params: Record<string, unknown> = {}) => {
  const g = await submit({ clean: { task: "orphans.cleanup", params: { protection_seconds: 0, ...params } } })
  return (await resolved(g.nodes.clean!.outputs.report!)).value
}

const purge = async (olderThan = 0) => {
  const g = await submit({ purge: { task: "history.purge", params: { older_than_seconds: olderThan } } })
  return (await resolved(g.nodes.purge!.outputs.report!)).value
}

const count = async (q: string, params: Array<unknown> = []) => (await db.query<{ n: number }>(q, params)).rows[0]!.n

const content = (path: string) => fetch(`${server.url}/content/${path}`).then(async (r) => ({ status: r.status, text: await r.text() }))

/**
 * A gate: a long sleep holding the exclusive key `key` (one worker slot); `behind` graphs' `held`
 * node waits for it on that key, in submission order; `open` cancels the sleep.
 */
const gate = async (key: string) => {
  const g = await submit({ gate: { task: "debug.sleep", params: { ms: 600_000 }, resources: { exclusive: [key] } } })
  await until("the gate to run", async () => (await c.get(`/api/v1/tasks/${g.nodes.gate!.task}`)).body.state === "running")
  return {
    behind: (node: Record<string, unknown>) => submit({ held: { ...node, resources: { exclusive: [key] } } }),
    open: () => c.post(`/api/v1/tasks/${g.nodes.gate!.task}/cancel`)
  }
}

describe("lifecycle", () => {
  it("retain_versions keeps the newest N; a lower one releases at once; released versions 404 and are reclaimed, rows and bytes", async () => {
    upstream.setFile("a.txt", "a-retain-0\n")
    await created("/api/v1/repositories", { name: "ret", retain_versions: 2 })
    expect((await c.get("/api/v1/repositories/ret")).body.retain_versions).toBe(2)
    const made = []
    for (let i = 1; i <= 3; i++) {
      upstream.setFile("a.txt", `a-retain-${i}\n`)
      made.push((await syncOnce("ret")).number)
    }
    expect(made).toEqual([1, 2, 3])
    expect(await numbers("ret")).toEqual([3, 2])
    expect((await versions("ret"))[0]!.held_by).toEqual(["repository (latest version)", "repository (retained)"])
    expect((await c.get("/api/v1/repositories/ret/versions/1")).status).toBe(404)
    expect((await c.get("/api/v1/repositories/ret/versions/1/content")).status).toBe(404)
    expect((await c.get("/api/v1/repositories/ret/versions/2")).body).toMatchObject({ number: 2, held_by: ["repository (retained)"] })

    // Lowering it releases at once; raising it again brings nothing back (release is final).
    expect((await c.call("PATCH", "/api/v1/repositories/ret", { retain_versions: 1 })).status).toBe(201)
    expect(await numbers("ret")).toEqual([3])
    expect((await c.call("PATCH", "/api/v1/repositories/ret", { retain_versions: null })).status).toBe(201)
    expect(await numbers("ret")).toEqual([3])
    expect((await c.call("PATCH", "/api/v1/repositories/ret", { retain_versions: 0 })).status).toBe(400)

    // The unit only released versions had (a.txt of 0..2) goes with its bytes; the rest stays.
    const unit = async (text: string) => count(
      "SELECT count(*)::int AS n FROM content_units WHERE relative_path = 'a.txt' AND sha256 = encode(sha256($1::bytea), 'hex')",
      [Buffer.from(text)]
    )
    expect(await unit("a-retain-1\n")).toBe(1)
    const report = await cleanup()
    expect(report.repository_versions).toBeGreaterThanOrEqual(3)
    expect(report.membership_rows).toBeGreaterThan(0)
    expect(await unit("a-retain-1\n")).toBe(0)
    expect(await unit("a-retain-3\n")).toBe(1)
    expect(await count("SELECT count(*)::int AS n FROM repository_versions v JOIN names n ON n.resource_id = v.repository_id WHERE n.name = 'ret'")).toBe(1)
    const list = await c.get("/api/v1/repositories/ret/versions/3/content")
    expect(list.body.items.map((i: { relative_path: string }) => i.relative_path).sort()).toEqual(["a.txt", "b.txt", "shared.txt"])
  })

  it("a served version stays (held by the distribution) until the distribution moves on; a prune of it fails in_use", async () => {
    await created("/api/v1/repositories", { name: "srv", retain_versions: 1 })
    await created("/api/v1/distributions", { name: "srv", base_path: "srv" })
    upstream.setFile("a.txt", "a-served-1\n")
    const first = await syncOnce("srv", "srv")
    upstream.setFile("a.txt", "a-served-2\n")
    const second = (await syncOnce("srv")).number
    expect(await versions("srv")).toEqual([
      expect.objectContaining({ number: second, held_by: ["repository (latest version)", "repository (retained)"] }),
      expect.objectContaining({ number: first.number, held_by: ["distribution srv"] })
    ])
    await cleanup()
    expect(await content("srv/a.txt")).toEqual({ status: 200, text: "a-served-1\n" })

    const del = await c.call("DELETE", `/api/v1/repositories/srv/versions/${first.number}`)
    expect(del.status).toBe(202)
    const task = await c.get(`/api/v1/tasks/${del.body.task}`)
    expect(task.body.graph).toBe(del.body.graph)
    const failed = await c.settled((await c.get(`/api/v1/tasks/${del.body.task}`)).body.outputs.report)
    expect(failed.state).toBe("failed")
    expect(failed.error).toMatchObject({ code: "in_use", message: expect.stringContaining("distribution srv") })
    expect(await numbers("srv")).toEqual([second, first.number])

    // The distribution moves on: the old version is released at once, reclaimed by the next cleanup.
    const moved = await submit({
      publish: { task: "file.publish", params: { version: { $ref: (await c.get(`/api/v1/repositories/srv/versions/${second}`)).body.future } } },
      serve: distribute("srv", "publish.publication")
    })
    await resolved(moved.nodes.serve!.outputs.distribution!)
    expect(await numbers("srv")).toEqual([second])
    expect(await content("srv/a.txt")).toEqual({ status: 200, text: "a-served-2\n" })
    const report = await cleanup()
    expect(report.publications).toBeGreaterThanOrEqual(1)

    // The old revision of the distribution records its publication, now released.
    const revisions = (await c.get("/api/v1/distributions/srv/revisions")).body as Array<{ publication: string | null; publication_released: boolean }>
    expect(revisions[0]!.publication_released).toBe(false)
    const old = revisions.find((r) => r.publication === first.graph.nodes.publish!.outputs.publication)
    expect(old).toMatchObject({ publication_released: true })
  })

  it("DELETE of a version: 404 for unknown ones, the latest is reported held, another is released", async () => {
    await created("/api/v1/repositories", { name: "del" })
    upstream.setFile("a.txt", "a-del-1\n")
    await syncOnce("del")
    upstream.setFile("a.txt", "a-del-2\n")
    await syncOnce("del")
    expect(await numbers("del")).toEqual([2, 1, 0])
    expect((await c.call("DELETE", "/api/v1/repositories/del/versions/7")).status).toBe(404)
    expect((await c.call("DELETE", "/api/v1/repositories/nope/versions/0")).status).toBe(404)
    const report = async (number: number) => {
      const r = await c.call("DELETE", `/api/v1/repositories/del/versions/${number}`)
      expect(r.status).toBe(202)
      const task = (await c.get(`/api/v1/tasks/${r.body.task}`)).body
      return (await resolved(task.outputs.report)).value
    }
    expect(await report(2)).toEqual({ released: [], held: [{ number: 2, by: "repository (latest version)" }] })
    expect(await report(0)).toEqual({ released: [0], held: [] })
    expect(await numbers("del")).toEqual([2, 1])
    expect((await c.call("DELETE", "/api/v1/repositories/del/versions/0")).status).toBe(404)
    // As a task: keep the newest one.
    const g = await submit({ prune: { task: "repository.prune", params: { repository: "del", keep: 1 } } })
    expect((await resolved(g.nodes.prune!.outputs.report!)).value).toEqual({ released: [1], held: [] })
    expect(await numbers("del")).toEqual([2])
    const bad = await c.post("/api/v1/graphs", { nodes: { p: { task: "repository.prune", params: { repository: "del" } } } })
    expect(bad.status).toBe(400)
    const unknown = await c.post("/api/v1/graphs", { nodes: { p: { task: "repository.prune", params: { repository: "del", versions: [1] } } } })
    expect(unknown.status).toBe(400)
    expect(JSON.stringify(unknown.body.error.details)).toContain("has no version 1")
  })

  it("queued work keeps what it references through a release, a cleanup and a repository delete, then lets go", async () => {
    await created("/api/v1/repositories", { name: "q" })
    upstream.setFile("a.txt", "a-queued-1\n")
    const v1 = await syncOnce("q")
    const v1Future = (await c.get("/api/v1/repositories/q/versions/1")).body.future as string
    // A publish of version 1, queued behind a gate; version 1 is released by its repository.
    const g = await gate("gate-q")
    const pub = await g.behind(publish(v1Future))
    const prune = await submit({ prune: { task: "repository.prune", params: { repository: "q", versions: [1] } } })
    expect((await resolved(prune.nodes.prune!.outputs.report!)).value).toEqual({
      released: [],
      held: [{ number: 1, by: `repository (latest version), task ${pub.nodes.held!.task}` }]
    })
    // A sync of the repository, queued behind the gate too; then the repository is deleted.
    upstream.setFile("a.txt", "a-queued-2\n")
    const later = await g.behind(sync("q"))
    expect((await c.call("DELETE", "/api/v1/repositories/q")).status).toBe(204)
    await cleanup()
    // Nothing they need went: the publish and the sync run and succeed.
    await g.open()
    const publication = await resolved(pub.nodes.held!.outputs.publication!)
    expect(publication.value.number).toBe(v1.number)
    const cut = await resolved(later.nodes.held!.outputs.version!)
    expect(cut.value.number).toBe(2)
    // Now nothing holds anything of it: the next cleanup reclaims the whole repository's content.
    await cleanup()
    const repo = cut.value.repository as string
    expect(await count("SELECT count(*)::int AS n FROM repository_versions WHERE repository_id = $1", [repo])).toBe(0)
    expect(await count("SELECT count(*)::int AS n FROM repository_content WHERE repository_id = $1", [repo])).toBe(0)
    expect(await count("SELECT count(*)::int AS n FROM repository_heads WHERE repository_id = $1", [repo])).toBe(0)
    expect(await count("SELECT count(*)::int AS n FROM publications WHERE id = $1", [publication.value.publication])).toBe(0)
    // A new reference to the reclaimed version is refused, naming the node.
    const refused = await c.post("/api/v1/graphs", { nodes: { late: publish(v1Future) } })
    expect(refused.status).toBe(400)
    expect(refused.body.error.details.nodes.late[0]).toMatch(/was released and has been reclaimed/)
    // history.purge then takes its revisions and its resource row.
    await purge()
    expect(await count("SELECT count(*)::int AS n FROM resources WHERE id = $1", [repo])).toBe(0)
  })

  it("history.purge deletes settled graphs (404 after), keeps those whose futures are held, and old revisions", async () => {
    await created("/api/v1/repositories", { name: "h", retain_versions: 1 })
    await created("/api/v1/distributions", { name: "h", base_path: "h" })
    upstream.setFile("a.txt", "a-history-1\n")
    const first = await syncOnce("h", "h")
    upstream.setFile("a.txt", "a-history-2\n")
    const second = await syncOnce("h", "h")
    const noise = await submit({ s: { task: "debug.sleep", params: {} } })
    await resolved(noise.nodes.s!.outputs.result!)
    expect((await c.get(`/api/v1/graphs/${noise.id}`)).status).toBe(200)

    // A long window purges nothing.
    expect(await purge(3600)).toMatchObject({ graphs: 0, tasks: 0, futures: 0 })
    await cleanup()
    const report = await purge(0)
    expect(report.graphs).toBeGreaterThanOrEqual(2)
    expect(report.revisions).toBeGreaterThanOrEqual(1)
    expect((await c.get(`/api/v1/graphs/${noise.id}`)).status).toBe(404)
    expect((await c.get(`/api/v1/tasks/${noise.nodes.s!.task}`)).status).toBe(404)
    expect((await c.get(`/api/v1/futures/${noise.nodes.s!.outputs.result}`)).status).toBe(404)
    // The first graph's version was released and its publication reclaimed: gone. The second
    // graph's version is kept and its publication served: kept, with its futures.
    expect((await c.get(`/api/v1/graphs/${first.graph.id}`)).status).toBe(404)
    expect((await c.get(`/api/v1/graphs/${second.graph.id}`)).status).toBe(200)
    expect((await c.get(`/api/v1/futures/${second.graph.nodes.publish!.outputs.publication}`)).body.state).toBe("resolved")
    // Only the current revision of the distribution is left; content is served as before.
    expect((await c.get("/api/v1/distributions/h/revisions")).body).toHaveLength(1)
    expect(await content("h/a.txt")).toEqual({ status: 200, text: "a-history-2\n" })
    const bad = await c.post("/api/v1/graphs", { nodes: { p: { task: "history.purge", params: { older_than_seconds: -1 } } } })
    expect(bad.status).toBe(400)
  })

  it("orphans.cleanup and history.purge each vacuum cairn's tables when done, so the space of what they deleted is reused", async () => {
    // Manual VACUUMs only (autovacuum counts apart): every table of the schema, including those
    // the run itself did not delete from (a settled task's task_artifacts, the tasks' updates).
    const vacuums = async () => Object.fromEntries((await db.query<{ t: string; n: number }>(
      "SELECT relname AS t, vacuum_count::int AS n FROM pg_stat_user_tables WHERE schemaname = current_schema()")).rows.map((r) => [r.t, r.n]))
    const tables = ["content_units", "artifacts", "repository_content", "task_artifacts", "tasks", "futures", "graphs"]
    const before = await vacuums()
    await cleanup()
    const afterCleanup = await vacuums()
    for (const t of tables) expect(afterCleanup[t], t).toBeGreaterThan(before[t]!)
    await purge()
    const afterPurge = await vacuums()
    for (const t of tables) expect(afterPurge[t], t).toBeGreaterThan(afterCleanup[t]!)
  })

  it("demotion drops the bytes of a repository's content a remote can serve again; the content app fetches them on the next request", async () => {
    await created("/api/v1/repositories", { name: "dem" })
    await created("/api/v1/repositories", { name: "dem-other" })
    await created("/api/v1/distributions", { name: "dem", base_path: "dem" })
    upstream.setFile("a.txt", "a-not-demoted\n")
    await syncOnce("dem-other")
    upstream.setFile("a.txt", "a-demoted\n")
    await syncOnce("dem", "dem")
    expect(await content("dem/a.txt")).toEqual({ status: 200, text: "a-demoted\n" })
    const before = upstream.requests.get("a.txt") ?? 0
    // dem-other has the same b.txt and shared.txt: those keep their bytes.
    const report = await cleanup({ reclaim: ["dem"] })
    expect(report.demoted).toBe(1)
    expect(report.artifacts).toBeGreaterThanOrEqual(1)
    expect(await count("SELECT count(*)::int AS n FROM artifacts WHERE sha256 = encode(sha256($1::bytea), 'hex')", [Buffer.from("a-demoted\n")])).toBe(0)
    // Served all the same: fetched again from the remote, once.
    expect(await content("dem/a.txt")).toEqual({ status: 200, text: "a-demoted\n" })
    expect(await content("dem/a.txt")).toEqual({ status: 200, text: "a-demoted\n" })
    expect(upstream.requests.get("a.txt")).toBe(before + 1)
    const unknown = await c.post("/api/v1/graphs", { nodes: { c: { task: "orphans.cleanup", params: { reclaim: ["nope"] } } } })
    expect(unknown.status).toBe(400)
  })
})
