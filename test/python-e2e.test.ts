/**
 * The python content type end to end, with the real pip, through HTTP only against a real `serve`
 * process: a simple index the test generates (pure-Python wheels and an sdist made by python3,
 * pages by cairn's writer, served by a static server that answers PEP 691 JSON or PEP 503 HTML by
 * the Accept header), synced, published and distributed as one graph, then installed with
 * `pip install --index-url http://.../content/<base>/simple/` into a fresh target and imported.
 *
 * Also: includes with a version specifier (pip installs what was included and refuses the rest),
 * the PEP 691 JSON and PEP 503 HTML pages themselves, an upstream file whose bytes do not match the
 * index's sha256 (the sync fails and keeps nothing), an uploaded wheel (and a file that is not a
 * distribution), on-demand (the first request fetches from upstream), and a second repository
 * syncing from cairn's own published index.
 *
 * pip runs isolated from this machine's pip configuration (which adds other indexes): see
 * test/python-pip.test.ts.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer } from "./support/processes.js"
import { type BuiltDist, buildDistributions, type DistSpec, serveSimpleIndex, sha256Hex, type StaticIndexServer, writeStaticIndex } from "./support/python-fixtures.js"
import { runProcess } from "./support/python.js"

const bin = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "bin", "cairn.js")

/** `cairn <args>` against the test server, to its end. */
const cairn = (args: ReadonlyArray<string>) => {
  const { CAIRN_TOKEN: _, ...env } = process.env
  return runProcess(process.execPath, [bin, ...args], { env: { ...env, CAIRN_URL: server.url, NO_COLOR: "1" } })
    .then((r) => ({ code: r.code, stdout: r.stdout, stderr: r.output }))
}

let work: string
let venv: string
let dataDir: string
let server: Server
let db: pg.Client
let c: ReturnType<typeof api>
let upstream: StaticIndexServer
/** The same index, HTML pages only (no sizes), whatever the client accepts. */
let htmlUpstream: StaticIndexServer
let built: Array<BuiltDist>

/** Run without this machine's pip configuration (PIP_* variables, config files). */
const run = (cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PIP_") && k !== "PYTHONPATH"))
  return runProcess(cmd, args, { env: { ...clean, PIP_CONFIG_FILE: "/dev/null", ...env } })
}

let targets = 0
/** pip install into a fresh target directory, then import `module`: its __version__, or pip's failure. */
const pipInstall = async (indexUrl: string, module: string, ...requirements: Array<string>) => {
  const target = path.join(work, `target-${++targets}`)
  const pip = await run(path.join(venv, "bin", "pip"), [
    "install", "--isolated", "--disable-pip-version-check", "--no-cache-dir", "--no-input", "--only-binary", ":all:",
    "--index-url", indexUrl, "--target", target, ...requirements
  ])
  if (pip.code !== 0) return { ok: false as const, output: pip.output }
  const py = await run(path.join(venv, "bin", "python"), ["-c", `import ${module}; print(${module}.__version__)`], { PYTHONPATH: target })
  expect(py.code, py.output).toBe(0)
  return { ok: true as const, version: py.stdout.trim(), output: pip.output }
}

const specs: Array<DistSpec> = [
  // A name that needs normalising: Cairn_Test.Pkg, cairn-test-pkg, cairn_test_pkg are one project.
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.0", requiresDist: ["cairn-helper"] },
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.1", requiresDist: ["Cairn.Helper>=0.2"], requiresPython: ">=3.7" },
  { kind: "sdist", name: "Cairn_Test.Pkg", version: "1.1" },
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "2.0", requiresDist: ["cairn-helper"] },
  { kind: "wheel", name: "cairn_helper", version: "0.1" },
  { kind: "wheel", name: "cairn_helper", version: "0.2" }
]

const created = async (p: string, body: unknown) => {
  const r = await c.post(p, body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body
}

/** Submit a graph and await every node's output; failed ones come back as they are. */
const graph = async (nodes: Record<string, unknown>) => {
  const g = await c.post("/api/v1/graphs", { nodes })
  expect(g.status, JSON.stringify(g.body)).toBe(201)
  const out: Record<string, any> = {}
  for (const [name, node] of Object.entries(g.body.nodes as Record<string, { outputs: Record<string, string> }>)) {
    out[name] = await c.settled(Object.values(node.outputs)[0]!, 120_000)
  }
  return out
}

const syncPublishDistribute = async (repository: string, remote: string, distribution: string) => {
  const out = await graph({
    sync: { task: "python.sync", params: { repository, remote } },
    publish: { task: "python.publish", params: { version: { $ref: "sync.version" } } },
    distribute: { task: "distribution.set", params: { distribution, publication: { $ref: "publish.publication" } } }
  })
  for (const [name, f] of Object.entries(out)) expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
  return out
}

/** A repository, a distribution at `content/<name>`, and the index URL pip is given. */
const repoAndDistribution = async (name: string) => {
  await created("/api/v1/repositories", { name, type: "python" })
  await created("/api/v1/distributions", { name, base_path: name })
  return `${server.url}/content/${name}/simple/`
}

const versionsOf = async (repository: string) => (await c.get(`/api/v1/repositories/${repository}/versions`)).body.map((v: any) => v.number)

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-python-e2e-"))
  venv = path.join(work, "venv")
  dataDir = path.join(work, "data")
  const dbUrl = await createTestDatabase()
  const [venvMade, dists, started] = await Promise.all([
    run("python3", ["-m", "venv", venv]),
    buildDistributions(path.join(work, "dist"), specs),
    startServer(dbUrl, { CAIRN_WORKERS: "2", CAIRN_DATA_DIR: dataDir })
  ])
  expect(venvMade.code, venvMade.output).toBe(0)
  built = dists
  server = started
  c = api(server.url)
  db = new pg.Client({ connectionString: dbUrl })
  await db.connect()
  await writeStaticIndex(path.join(work, "index"), [
    {
      name: "Cairn_Test.Pkg",
      // The index says what the 1.1 wheel's metadata says: pip reads Requires-Python from the page.
      files: built.filter((d) => d.filename.startsWith("cairn_test_pkg")).map((d) => ({ ...d, requiresPython: d.filename === "cairn_test_pkg-1.1-py3-none-any.whl" ? ">=3.7" : undefined }))
    },
    { name: "cairn_helper", files: built.filter((d) => d.filename.startsWith("cairn_helper")) }
  ])
  upstream = await serveSimpleIndex(path.join(work, "index"))
  htmlUpstream = await serveSimpleIndex(path.join(work, "index"), { pages: "html" })
}, 120_000)

afterAll(async () => {
  await db?.end()
  await server?.stop()
  await upstream?.close()
  await htmlUpstream?.close()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

describe("python: sync, publish, distribute, pip install", () => {
  it("the whole index: pip installs the newest release and its dependency from cairn, and the pages are PEP 503 / PEP 691", async () => {
    await created("/api/v1/remotes", { name: "index", type: "python", url: upstream.indexUrl })
    const indexUrl = await repoAndDistribution("all")
    const out = await syncPublishDistribute("all", "index", "all")
    expect(out.sync.value.number).toBe(1)

    const r = await pipInstall(indexUrl, "cairn_test_pkg", "Cairn_Test.Pkg")
    expect(r.ok, r.output).toBe(true)
    expect(r.ok && r.version).toBe("2.0")

    // PEP 691 JSON by content negotiation, with the digests and sizes of the files, and links that resolve.
    const json = await fetch(`${indexUrl}cairn-test-pkg/`, { headers: { accept: "application/vnd.pypi.simple.v1+json" } })
    expect(json.status).toBe(200)
    expect(json.headers.get("content-type")).toBe("application/vnd.pypi.simple.v1+json")
    const doc = await json.json() as any
    expect(doc.name).toBe("cairn-test-pkg")
    expect(doc.versions).toEqual(["1.0", "1.1", "2.0"])
    const ours = built.filter((d) => d.filename.startsWith("cairn_test_pkg"))
    expect(doc.files.map((f: any) => [f.filename, f.hashes.sha256, f.size]).sort())
      .toEqual(ours.map((d) => [d.filename, d.sha256, d.size]).sort())
    expect(doc.files.find((f: any) => f.filename === "cairn_test_pkg-1.1-py3-none-any.whl")["requires-python"]).toBe(">=3.7")
    for (const f of doc.files) {
      const file = await fetch(new URL(f.url, `${indexUrl}cairn-test-pkg/`))
      expect(file.status, f.url).toBe(200)
      expect(sha256Hex(Buffer.from(await file.arrayBuffer()))).toBe(f.hashes.sha256)
    }
    const list = await (await fetch(indexUrl, { headers: { accept: "application/vnd.pypi.simple.v1+json" } })).json() as any
    expect(list.projects.map((p: any) => p.name).sort()).toEqual(["cairn-helper", "cairn-test-pkg"])

    // PEP 503 HTML otherwise, with #sha256= fragments and data-requires-python.
    const html = await fetch(`${indexUrl}cairn-test-pkg/`)
    expect(html.headers.get("content-type")).toBe("text/html")
    const text = await html.text()
    for (const d of ours) expect(text).toContain(`${d.filename}#sha256=${d.sha256}`)
    expect(text).toContain(`data-requires-python="&gt;=3.7"`)

    // The version's content, as the API lists it.
    const content = await c.get("/api/v1/repositories/all/versions/1/content")
    expect(content.status).toBe(200)
    expect(content.body.items.map((u: any) => [u.name, u.version, u.filename, u.sha256, u.size]).sort())
      .toEqual(built.map((d) => [expect.any(String), expect.any(String), d.filename, d.sha256, d.size]).sort((a, b) => a[2] < b[2] ? -1 : 1))
    expect(content.body.items.find((u: any) => u.filename === "cairn_test_pkg-1.1.tar.gz")).toMatchObject({ version: "1.1" })
  })

  it("includes with a version specifier, from an index of HTML pages: pip installs exactly what was included and refuses the rest", async () => {
    // HTML pages give digests but no sizes: an immediate sync sizes the files by their bytes.
    await created("/api/v1/remotes", { name: "only-1.0", type: "python", url: htmlUpstream.indexUrl, includes: ["cairn.test-pkg==1.0", "cairn_helper"] })
    const indexUrl = await repoAndDistribution("pinned")
    await syncPublishDistribute("pinned", "only-1.0", "pinned")
    expect(htmlUpstream.requests.filter((q) => q.path.startsWith("/simple/")).every((q) => q.contentType === "text/html")).toBe(true)
    const content = await c.get("/api/v1/repositories/pinned/versions/1/content")
    const wanted = ["cairn_helper-0.1-py3-none-any.whl", "cairn_helper-0.2-py3-none-any.whl", "cairn_test_pkg-1.0-py3-none-any.whl"]
    expect(content.body.items.map((u: any) => [u.filename, u.sha256, u.size]).sort())
      .toEqual(wanted.map((f) => built.find((d) => d.filename === f)!).map((d) => [d.filename, d.sha256, d.size]))
    const r = await pipInstall(indexUrl, "cairn_test_pkg", "cairn-test-pkg")
    expect(r.ok && r.version, r.output).toBe("1.0")
    const refused = await pipInstall(indexUrl, "cairn_test_pkg", "cairn-test-pkg==2.0")
    expect(refused.ok).toBe(false)
    expect(refused.output).toContain("No matching distribution found for cairn-test-pkg==2.0")
  })

  it("bad input is a 400 that writes nothing: a requirement that is not one, a sync into a repository of another type", async () => {
    const bad = await c.post("/api/v1/remotes", { name: "bad", type: "python", url: upstream.indexUrl, includes: ["attrs[tests]"] })
    expect(bad.status).toBe(400)
    expect(JSON.stringify(bad.body)).toContain("attrs[tests]")
    expect((await c.get("/api/v1/remotes/bad")).status).toBe(404)
    await created("/api/v1/repositories", { name: "plain-files" })
    const g = await c.post("/api/v1/graphs", { nodes: { s: { task: "python.sync", params: { repository: "plain-files", remote: "index" } } } })
    expect(g.status).toBe(400)
    expect(JSON.stringify(g.body)).toContain("is a file repository, not a python one")
  })

  it("an upstream file whose bytes do not match the index's sha256 fails the sync, and nothing is kept", async () => {
    const [bad] = await buildDistributions(path.join(work, "tampered-dist"), [{ kind: "wheel", name: "cairn-tampered", version: "1.0" }])
    await writeStaticIndex(path.join(work, "tampered"), [{ name: "cairn-tampered", files: [bad!] }], {
      sha256Override: { [bad!.filename]: "0".repeat(64) }
    })
    const tampered = await serveSimpleIndex(path.join(work, "tampered"))
    try {
      await created("/api/v1/remotes", { name: "tampered", type: "python", url: tampered.indexUrl })
      await created("/api/v1/repositories", { name: "tampered", type: "python" })
      const out = await graph({ sync: { task: "python.sync", params: { repository: "tampered", remote: "tampered" } } })
      expect(out.sync.state).toBe("failed")
      expect(out.sync.error.code).toBe("digest_mismatch")
      expect(out.sync.error.message).toContain(bad!.filename)
      expect(tampered.requests.some((q) => q.path.endsWith(bad!.filename))).toBe(true)
      expect(await versionsOf("tampered")).toEqual([0])
      const kept = await db.query("SELECT 1 FROM artifacts WHERE sha256 = ANY($1)", [[bad!.sha256, "0".repeat(64)]])
      expect(kept.rowCount).toBe(0)
      expect(fs.existsSync(path.join(dataDir, "artifacts", bad!.sha256.slice(0, 2), bad!.sha256.slice(2, 4), bad!.sha256))).toBe(false)
      expect((await db.query("SELECT 1 FROM content_units WHERE relative_path = $1", [bad!.filename])).rowCount).toBe(0)
    } finally {
      await tampered.close()
    }
  })

  it("an uploaded wheel is added with repository.modify and installs via pip; a file that is not a distribution is refused", async () => {
    const [wheel] = await buildDistributions(path.join(work, "upload"), [{ kind: "wheel", name: "Cairn.Uploaded", version: "0.5" }])
    const upload = async (bytes: Buffer) => {
      const r = await fetch(`${server.url}/api/v1/uploads`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: bytes })
      expect(r.status).toBe(201)
      return (await r.json() as any).artifact as string
    }
    const indexUrl = await repoAndDistribution("uploaded")
    const artifact = await upload(fs.readFileSync(wheel!.path))
    const out = await graph({
      modify: { task: "repository.modify", params: { repository: "uploaded", add: [{ filename: wheel!.filename, artifact }] } },
      publish: { task: "python.publish", params: { version: { $ref: "modify.version" } } },
      distribute: { task: "distribution.set", params: { distribution: "uploaded", publication: { $ref: "publish.publication" } } }
    })
    for (const [name, f] of Object.entries(out)) expect(f.state, `${name}: ${JSON.stringify(f.error)}`).toBe("resolved")
    const content = await c.get("/api/v1/repositories/uploaded/versions/1/content")
    expect(content.body.items.map((u: any) => [u.name, u.version, u.filename])).toEqual([["Cairn.Uploaded", "0.5", wheel!.filename]])
    const r = await pipInstall(indexUrl, "cairn_uploaded", "cairn-uploaded")
    expect(r.ok && r.version, r.ok ? "" : r.output).toBe("0.5")

    // Bytes that are no wheel, under a wheel's name: a 400 at submission naming why, nothing submitted.
    const junk = await upload(Buffer.from("not a zip archive at all\n"))
    const graphIds = async () => (await c.get("/api/v1/graphs?limit=1000")).body.items.map((g: { id: string }) => g.id)
    const graphsBefore = await graphIds()
    const refused = await c.post("/api/v1/graphs", {
      nodes: { modify: { task: "repository.modify", params: { repository: "uploaded", add: [{ filename: "cairn_uploaded-0.6-py3-none-any.whl", artifact: junk }] } } }
    })
    expect(refused.status).toBe(400)
    expect(refused.body.error.details.nodes.modify.join(" ")).toContain("cairn_uploaded-0.6-py3-none-any.whl")
    expect(await graphIds()).toEqual(graphsBefore)
    expect(await versionsOf("uploaded")).toEqual([1, 0])
    // A name that is no distribution's: refused at submission.
    const badName = await c.post("/api/v1/graphs", {
      nodes: { modify: { task: "repository.modify", params: { repository: "uploaded", add: [{ filename: "setup.py", artifact: junk }] } } }
    })
    expect(badName.status).toBe(400)
  })

  it("on_demand: the sync downloads nothing; pip's first request for a file fetches it from upstream", async () => {
    // Bytes nothing else in this file has, so that only the upstream can supply them.
    const [lazyWheel] = await buildDistributions(path.join(work, "lazy-dist"), [{ kind: "wheel", name: "cairn-lazy", version: "3.1" }])
    await writeStaticIndex(path.join(work, "lazy"), [{ name: "cairn-lazy", files: [lazyWheel!] }])
    const lazy = await serveSimpleIndex(path.join(work, "lazy"))
    const fileRequests = () => lazy.requests.filter((q) => q.path.endsWith(lazyWheel!.filename)).length
    try {
      await created("/api/v1/remotes", { name: "lazy", type: "python", url: lazy.indexUrl, policy: "on_demand" })
      const indexUrl = await repoAndDistribution("lazy")
      await syncPublishDistribute("lazy", "lazy", "lazy")
      expect(fileRequests()).toBe(0)
      expect((await db.query("SELECT 1 FROM artifacts WHERE sha256 = $1", [lazyWheel!.sha256])).rowCount).toBe(0)

      // The same index as HTML pages gives no sizes, and bytes not stored yet cannot be synced on
      // demand: the content app announces a file's length before it has its bytes.
      const lazyHtml = await serveSimpleIndex(path.join(work, "lazy"), { pages: "html" })
      try {
        await created("/api/v1/remotes", { name: "lazy-html", type: "python", url: lazyHtml.indexUrl, policy: "on_demand" })
        await created("/api/v1/repositories", { name: "lazy-html", type: "python" })
        const refused = await graph({ sync: { task: "python.sync", params: { repository: "lazy-html", remote: "lazy-html" } } })
        expect(refused.sync.state).toBe("failed")
        expect(refused.sync.error.code).toBe("size_unknown")
        expect(refused.sync.error.message).toContain(lazyWheel!.filename)
        expect(await versionsOf("lazy-html")).toEqual([0])
      } finally {
        await lazyHtml.close()
      }

      const r = await pipInstall(indexUrl, "cairn_lazy", "cairn-lazy")
      expect(r.ok && r.version, r.ok ? "" : r.output).toBe("3.1")
      expect(fileRequests()).toBe(1)
      expect((await db.query("SELECT 1 FROM artifacts WHERE sha256 = $1", [lazyWheel!.sha256])).rowCount).toBe(1)
      // Now from the store: the upstream is not asked again.
      const again = await pipInstall(indexUrl, "cairn_lazy", "cairn-lazy")
      expect(again.ok, again.ok ? "" : again.output).toBe(true)
      expect(fileRequests()).toBe(1)
    } finally {
      await lazy.close()
    }
  })

  it("with the CLI: a second repository syncs from cairn's own published simple index (round trip), and pip installs from it", async () => {
    const remoteUrl = `${server.url}/content/all/simple/`
    const steps = [
      ["remote", "create", "cairn-itself", remoteUrl, "--type", "python", "--include", "cairn-test-pkg>=1.1", "--include", "cairn-helper", "--exclude", "cairn-helper==0.1"],
      ["repo", "create", "copy", "--type", "python"],
      ["dist", "create", "copy", "--base-path", "copy"],
      ["sync", "copy", "--remote", "cairn-itself", "--distribute", "copy"]
    ]
    for (const args of steps) {
      const r = await cairn(args)
      expect(r.code, `cairn ${args.join(" ")}: ${r.stderr}`).toBe(0)
    }
    const listed = await cairn(["repo", "content", "copy"])
    expect(listed.code, listed.stderr).toBe(0)
    const rows = listed.stdout.trim().split("\n")
    expect(rows[0]!.split(/\s+/).slice(0, 3)).toEqual(["name", "version", "filename"])
    const wanted = ["cairn_helper-0.2-py3-none-any.whl", "cairn_test_pkg-1.1-py3-none-any.whl", "cairn_test_pkg-1.1.tar.gz", "cairn_test_pkg-2.0-py3-none-any.whl"]
    expect(rows.slice(1).map((r) => r.split(/\s+/)[2]).sort()).toEqual(wanted)
    expect(rows.find((r) => r.includes("cairn_test_pkg-1.1.tar.gz"))!.split(/\s+/).slice(0, 2)).toEqual(["cairn-test-pkg", "1.1"])
    const r = await pipInstall(`${server.url}/content/copy/simple/`, "cairn_test_pkg", "cairn-test-pkg<2")
    expect(r.ok && r.version, r.ok ? "" : r.output).toBe("1.1")
  }, 300_000) // five CLI processes (each starts tsx) on a machine shared with other runs
})
