/**
 * The typed client (src/client) against a real `serve` process: the promise facade (awaitFuture
 * settling, timing out and aborting; awaitGraph reporting progress; errors as CairnError; named
 * resources; uploads) and the Effect client derived from the HttpApi definition.
 */
import { FetchHttpClient } from "@effect/platform"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CairnClient, layer, makeApiClient } from "../src/client/effect.js"
import { CairnError, type CairnClient as Facade, createClient, type GraphView } from "../src/client/index.js"
import { createTestDatabase } from "./support/db.js"
import { type Server, startServer } from "./support/processes.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

let server: Server
let upstream: Upstream
let cairn: Facade
const files = makeFiles(5, { seed: 3, maxSize: 20_000 })
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

beforeAll(async () => {
  server = await startServer(await createTestDatabase())
  upstream = await startUpstream(files)
  cairn = createClient({ url: server.url })
})
afterAll(async () => {
  await server?.stop()
  await upstream?.close()
})

const sleepGraph = (ms: number, extra: Record<string, unknown> = {}) => ({ nodes: { s: { task: "debug.sleep", params: { ms, ...extra } } } })

/** The rejection of `p`, which must be a CairnError. */
const rejection = async (p: Promise<unknown>): Promise<CairnError> => {
  const e = await p.then(() => undefined, (err: unknown) => err)
  expect(e).toBeInstanceOf(CairnError)
  return e as CairnError
}

describe("promise facade", () => {
  it("awaitFuture resolves with the settled future: resolved with its value, or failed with its error", async () => {
    const g = await cairn.submit({
      nodes: {
        ok: { task: "debug.sleep", params: { ms: 300, value: { answer: 42 } } },
        bad: { task: "debug.sleep", params: { ms: 100, fail: "broken" } }
      }
    })
    const [ok, bad] = await Promise.all([
      cairn.awaitFuture(g.nodes.ok!.outputs.result!, { timeout: 20_000 }),
      cairn.awaitFuture(g.nodes.bad!.outputs.result!.toLowerCase())
    ])
    expect(ok).toMatchObject({ state: "resolved", value: { answer: 42 }, producer: g.nodes.ok!.task })
    expect(bad).toMatchObject({ state: "failed", error: { code: "task_failed", message: "broken" } })
  })

  it("passes priority and retry_backoff_ms through, and shows a task waiting for its retry with retry_at", async () => {
    const g = await cairn.submit({
      nodes: { flaky: { task: "debug.sleep", params: { fail: "not yet" }, max_attempts: 2, priority: 7, retry_backoff_ms: 60_000 } }
    })
    const id = g.nodes.flaky!.task
    let t = await cairn.task(id)
    for (const deadline = Date.now() + 30_000; !t.waiting_on.some((w) => w.reason === "retry") && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 50))
      t = await cairn.task(id)
    }
    expect(t).toMatchObject({ state: "ready", attempts: 1, priority: 7, retry_backoff_ms: 60_000, error: { code: "task_failed", retrying: true } })
    expect(t.waiting_on).toEqual([{ task: id, reason: "retry", retry_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }])
    await cairn.cancelTask(id)
    expect(await cairn.task(id)).toMatchObject({ state: "canceled", attempts: 1, waiting_on: [] })
  })

  it("awaitFuture rejects with code timeout after `timeout` ms, and with code aborted when its signal aborts", async () => {
    // The future settles only when the test cancels it (ten minutes away otherwise): a wait that
    // ignored its timeout or its signal would not come back within the bounds below, which are
    // far from that and far from the 400 and 300 ms asked for, so that a loaded machine cannot
    // reach them.
    const g = await cairn.submit(sleepGraph(600_000))
    const future = g.nodes.s!.outputs.result!
    const t0 = Date.now()
    const timedOut = await rejection(cairn.awaitFuture(future, { timeout: 400 }))
    expect(timedOut.code).toBe("timeout")
    expect(timedOut.message).toBe(`future ${future} did not settle within 400ms`)
    expect(Date.now() - t0).toBeLessThan(60_000)

    const controller = new AbortController()
    setTimeout(() => controller.abort(), 300)
    const t1 = Date.now()
    const aborted = await rejection(cairn.awaitFuture(future, { signal: controller.signal }))
    expect(aborted.code).toBe("aborted")
    expect(Date.now() - t1).toBeLessThan(60_000)
    // Only the waiting stopped: the future is still pending.
    expect((await cairn.future(future)).state).toBe("pending")
    await cairn.cancelGraph(g.id)
  })

  it("awaitGraph reports each view while a sync runs (with files done/total) and resolves when every task has settled", async () => {
    await cairn.remotes.create({ name: "up", url: upstream.url })
    await cairn.repositories.create({ name: "files" })
    // One slow file keeps the sync running long enough for progress to be seen.
    const [slowPath] = Object.keys(files)
    upstream.faults.slow(slowPath!, 1_500)
    const g = await cairn.submit({
      nodes: {
        sync: { task: "file.sync", params: { repository: "files", remote: "up" } },
        publish: { task: "file.publish", params: { version: { $ref: "sync.version" } } }
      }
    })
    const views: Array<GraphView> = []
    const final = await cairn.awaitGraph(g.id, { onProgress: (v) => views.push(v), interval: 200, timeout: 60_000 })
    upstream.faults.clear()
    expect(final.state).toBe("succeeded")
    expect(views.length).toBeGreaterThanOrEqual(3)
    expect(views.at(-1)).toEqual(final)
    expect(views.some((v) => v.nodes.sync!.state === "running")).toBe(true)
    expect(views.some((v) => v.nodes.publish!.state === "blocked")).toBe(true)
    const progress = views.map((v) => v.nodes.sync!.progress).find((p) => p !== undefined)
    expect(progress).toMatchObject({ total: Object.keys(files).length, unit: "files" })
  })

  it("errors are CairnErrors with the contract's code and one clear message", async () => {
    const missing = await rejection(cairn.graph("01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    expect(missing).toMatchObject({ code: "not_found", status: 404 })

    const refused = await rejection(cairn.submit({ nodes: { a: { task: "no.such" }, b: { task: "debug.sleep" } } }))
    expect(refused).toMatchObject({ code: "bad_request", status: 400 })
    expect(Object.keys((refused.details as { nodes: object }).nodes)).toEqual(["a"])
    expect(refused.message).toMatch(/^the graph is invalid: .*\(a: unknown task kind "no\.such"/)

    const malformed = await rejection(cairn.submit({ nodes: {}, extra: true } as never))
    expect(malformed).toMatchObject({ code: "bad_request" })
    expect(malformed.message).toMatch(/extra: is unexpected/)

    // A port nothing listens on. Not one the test frees itself: another process's listen(0) (a
    // server of a test file running alongside) can take it before the client tries it. A
    // privileged port is never handed out by listen(0), and fetch refuses port 1 outright.
    const port = 2
    const down = await rejection(createClient({ url: `http://127.0.0.1:${port}` }).workers())
    expect(down.code).toBe("unreachable")
    expect(down.message).toBe(
      `cannot reach the cairn server at http://127.0.0.1:${port} (ECONNREFUSED); start it with \`cairn serve\` or set CAIRN_URL`
    )
  })

  it("named resources: create, get, update with if-match (412 once the name moved on), revisions, delete", async () => {
    const first = await cairn.repositories.create({ name: "docs", description: "v1" })
    const second = await cairn.repositories.update("docs", { description: "v2" }, first.revision)
    expect(second.description).toBe("v2")
    const stale = await rejection(cairn.repositories.update("docs", { description: "v3" }, first.revision))
    expect(stale.code).toBe("precondition_failed")
    expect((await cairn.repositories.get("docs")).revision).toBe(second.revision)
    expect((await cairn.repositories.revisions("docs")).map((r) => r.revision)).toEqual([second.revision, first.revision])
    expect((await cairn.repositories.versions("docs")).map((v) => v.number)).toEqual([0])
    // Retention and deleting a version: a second version is cut, version 0 is released.
    expect((await cairn.repositories.update("docs", { retain_versions: 5 })).retain_versions).toBe(5)
    await cairn.remotes.create({ name: "docs-up", url: upstream.url })
    const sync = await cairn.submit({ nodes: { s: { task: "file.sync", params: { repository: "docs", remote: "docs-up" } } } })
    expect((await cairn.awaitFuture(sync.nodes.s!.outputs.version!, { timeout: 60_000 })).state).toBe("resolved")
    expect(await cairn.repositories.version("docs", 0)).toMatchObject({ number: 0, held_by: ["repository (retained)"] })
    const prune = await cairn.repositories.deleteVersion("docs", 0)
    const task = await cairn.task(prune.task)
    expect(task).toMatchObject({ graph: prune.graph, task: "repository.prune" })
    expect((await cairn.awaitFuture(task.outputs.report!, { timeout: 60_000 })).value).toEqual({ released: [0], held: [] })
    expect((await rejection(cairn.repositories.version("docs", 0))).code).toBe("not_found")
    expect((await rejection(cairn.repositories.deleteVersion("docs", 0))).code).toBe("not_found")
    await cairn.repositories.delete("docs")
    expect((await rejection(cairn.repositories.get("docs"))).code).toBe("not_found")
  })

  it("distributions: a guard given and shown without its secrets; sign answers a URL on the client's address", async () => {
    const open = await cairn.distributions.create({ name: "client-open", base_path: "client/open" })
    expect(open.guard).toBeNull()
    const tokens = await cairn.distributions.update("client-open", { guard: { type: "token", tokens: ["client-guard-token"] } })
    expect(tokens.guard).toEqual({ type: "token", token_count: 1 })
    const refused = await rejection(cairn.distributions.sign("client-open", "f.txt", 60))
    expect(refused).toMatchObject({ code: "conflict", status: 409 })

    await cairn.distributions.update("client-open", { guard: { type: "signed" } })
    const before = Math.floor(Date.now() / 1000)
    const signed = await cairn.distributions.sign("client-open", "dir/f.txt", 60)
    expect(signed.url).toBe(`${server.url}${signed.path}`)
    expect(signed.path).toMatch(/^\/content\/client\/open\/dir\/f\.txt\?expires=\d+&signature=[0-9a-f]{64}$/)
    expect(signed.expires).toBeGreaterThanOrEqual(before + 60)
    // Signed and admitted: the distribution serves nothing yet, so the content app's answer is its 404.
    expect((await fetch(signed.url)).status).toBe(404)
    expect((await fetch(`${server.url}/content/client/open/dir/f.txt`)).status).toBe(403)
  })

  it("uploads bytes and files as streams, checked against their sha256", async () => {
    const bytes = Buffer.from("hello from the client\n".repeat(500))
    const fromBytes = await cairn.upload(bytes)
    expect(fromBytes).toMatchObject({ sha256: sha(bytes), size: bytes.length })

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-client-"))
    try {
      const file = path.join(dir, "blob.bin")
      const content = Buffer.alloc(3 * 1024 * 1024, 7)
      fs.writeFileSync(file, content)
      let sent = 0
      const fromFile = await cairn.uploadFile(file, { onProgress: (n) => (sent = n) })
      expect(fromFile).toMatchObject({ sha256: sha(content), size: content.length })
      expect(sent).toBe(content.length)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("Effect client", () => {
  it("HttpApiClient.make(CairnApi) submits a graph and long-polls its future", async () => {
    const program = Effect.gen(function*() {
      const api = yield* makeApiClient({ url: server.url })
      const g = yield* api.graphs.submit({ payload: { nodes: { hi: { task: "debug.sleep", params: { value: "hi" } } } } })
      return yield* api.futures.get({ path: { id: g.nodes.hi!.outputs.result! }, urlParams: { wait: 20 } })
    })
    const f = await Effect.runPromise(program.pipe(Effect.provide(FetchHttpClient.layer)))
    expect(f).toMatchObject({ state: "resolved", value: "hi", kind: "value" })
  })

  it("CairnClient.call turns an error answer into a CairnError", async () => {
    const program = Effect.flatMap(CairnClient, (client) =>
      client.call((api) => api.tasks.get({ path: { id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" } })).pipe(Effect.flip))
    const e = await Effect.runPromise(program.pipe(Effect.provide(layer({ url: server.url }))))
    expect(e).toBeInstanceOf(CairnError)
    expect(e).toMatchObject({ code: "not_found", status: 404 })
  })
})
