/**
 * The content-type plugin seam (src/content/plugin.ts, DESIGN.md §21), in the parts that the file
 * type alone does not exercise:
 *
 * - a publication's generated files served by the content app of a real `serve` process: a
 *   directory's page at a path ending in `/`, several media types at one path negotiated by
 *   `accept` (PEP 691's simple pages are the case), each with its content-type and `vary: accept`;
 * - the migration that introduced types: existing units, repositories, remotes and publications
 *   (with their manifest) come through as the file type's;
 * - the module rule that keeps loading acyclic: nothing a plugin imports loads the registry.
 */
import { drizzle } from "drizzle-orm/node-postgres"
import { migrate } from "drizzle-orm/node-postgres/migrator"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { ulid } from "ulid"
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest"
import { negotiate } from "../src/content/app/negotiate.js"
import { contentSegments, relativePathOf } from "../src/content/app/paths.js"
import type { FileEntry } from "../src/content/app/routing-table.js"
import { migrationsFolder } from "../src/db/migrate.js"
import { declarations } from "../src/plugins/declarations.js"
import { plugins } from "../src/plugins/index.js"
import { createTestDatabase } from "./support/db.js"
import { api, type Server, startServer, until } from "./support/processes.js"

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex")

describe("a publication's generated files, served", () => {
  let server: Server
  let db: pg.Client
  let client: ReturnType<typeof api>
  const html = Buffer.from("<!DOCTYPE html><html><body><a href=\"attrs/\">attrs</a></body></html>\n")
  const json = Buffer.from(JSON.stringify({ meta: { "api-version": "1.0" }, projects: [{ name: "attrs" }] }))
  const page = Buffer.from("<!DOCTYPE html><html><body>attrs</body></html>\n")
  const unit = Buffer.from("a unit's bytes\n")

  beforeAll(async () => {
    const url = await createTestDatabase()
    server = await startServer(url)
    client = api(server.url)
    db = new pg.Client({ connectionString: url })
    await db.connect()
    // The bytes go in through the upload API, so they are in the server's artifact store.
    const upload = async (b: Buffer) => {
      const r = await client.call("POST", "/api/v1/uploads", b.toString("utf8"), { "content-type": "application/octet-stream" })
      expect(r.status, JSON.stringify(r.body)).toBe(201)
      expect(r.body.sha256).toBe(sha256(b))
      return r.body.artifact as string
    }
    const [htmlId, jsonId, pageId, unitId] = [await upload(html), await upload(json), await upload(page), await upload(unit)]
    expect((await client.post("/api/v1/repositories", { name: "gen" })).status).toBe(201)
    // A version holding one unit and a publication of it, written as `<type>.publish` writes them.
    const repo = (await db.query("SELECT resource_id FROM names WHERE kind = 'repository' AND name = 'gen'")).rows[0].resource_id as string
    const content = ulid()
    await db.query("INSERT INTO content_units (id, type, relative_path, sha256, size) VALUES ($1, 'file', 'files/a.bin', $2, $3)", [content, sha256(unit), unit.length])
    await db.query("INSERT INTO content_artifacts (content_id, artifact_id) VALUES ($1, $2)", [content, unitId])
    const version = ulid()
    await db.query("INSERT INTO repository_versions (id, repository_id, number, content_count) VALUES ($1, $2, 1, 1)", [version, repo])
    await db.query("INSERT INTO repository_content (repository_id, content_id, added_in) VALUES ($1, $2, 1)", [repo, content])
    const publication = ulid()
    await db.query("INSERT INTO publications (id, version_id) VALUES ($1, $2)", [publication, version])
    const files: Array<[string, string, number, string]> = [
      ["simple/", "text/html; charset=utf-8", 0, htmlId],
      ["simple/", "application/vnd.pypi.simple.v1+json", 1, jsonId],
      ["simple/attrs/", "text/html; charset=utf-8", 2, pageId]
    ]
    for (const [p, m, n, a] of files) {
      await db.query("INSERT INTO publication_files (publication_id, relative_path, media_type, position, artifact_id) VALUES ($1, $2, $3, $4, $5)", [publication, p, m, n, a])
    }
    expect((await client.post("/api/v1/distributions", { name: "gen", base_path: "gen/index" })).status).toBe(201)
    // What distribution.set writes: a revision serving the publication, and the live path's hold.
    await db.query(`
      WITH r AS (
        INSERT INTO distribution_revisions (id, distribution_id, name, base_path, publication_id)
        SELECT $1, resource_id, name, 'gen/index', $2 FROM names WHERE kind = 'distribution' AND name = 'gen' RETURNING id, distribution_id
      ), p AS (UPDATE distribution_paths SET publication_id = $2 WHERE distribution_id = (SELECT distribution_id FROM r))
      UPDATE names SET revision_id = (SELECT id FROM r) WHERE kind = 'distribution' AND name = 'gen'`, [ulid(), publication])
    await until("the distribution to be routed", async () => (await fetch(`${server.url}/content/gen/index/files/a.bin`)).status === 200)
  }, 120_000)

  afterAll(async () => {
    await db?.end()
    await server?.stop()
  })

  const get = async (p: string, accept?: string) => {
    const res = await fetch(`${server.url}/content/gen/index/${p}`, { headers: accept === undefined ? {} : { accept } })
    return { status: res.status, type: res.headers.get("content-type"), vary: res.headers.get("vary"), etag: res.headers.get("etag"), body: Buffer.from(await res.arrayBuffer()) }
  }

  it("gives repositories and remotes a type at creation only, and tasks refuse one of another type at submission", async () => {
    const made = await client.post("/api/v1/repositories", { name: "typed", type: "file" })
    expect([made.status, made.body.type]).toEqual([201, "file"])
    expect((await client.get("/api/v1/repositories/gen")).body.type, "the default").toBe("file")
    const unknown = await client.post("/api/v1/repositories", { name: "nope", type: "nope" })
    expect([unknown.status, JSON.stringify(unknown.body)]).toEqual([400, expect.stringContaining("type must be one of file")])
    const patched = await client.call("PATCH", "/api/v1/repositories/typed", { type: "file" })
    expect(patched.status, "a PATCH cannot change the type").toBe(400)
    const remote = await client.post("/api/v1/remotes", { name: "up", url: "http://127.0.0.1:9/PULP_MANIFEST" })
    expect([remote.status, remote.body.type]).toEqual([201, "file"])
    expect((await client.call("PATCH", "/api/v1/remotes/up", { type: "file" })).status).toBe(400)

    // A repository and a remote of a type this build has no plugin for (as a newer build could
    // write): the file type's tasks refuse them, naming the param.
    await db.query("INSERT INTO content_types (type) VALUES ('other') ON CONFLICT DO NOTHING")
    for (const [kind, table, name] of [["repository", "repository_revisions", "typed"], ["remote", "remote_revisions", "up"]]) {
      const revision = ulid()
      await db.query(`
        WITH r AS (
          INSERT INTO ${table} SELECT (jsonb_populate_record(NULL::${table}, to_jsonb(t) || jsonb_build_object('id', $1::text, 'type', 'other'))).*
          FROM ${table} t WHERE t.id = (SELECT revision_id FROM names WHERE kind = $2 AND name = $3) RETURNING id
        )
        UPDATE names SET revision_id = $1 WHERE kind = $2 AND name = $3`, [revision, kind, name])
    }
    expect((await client.get("/api/v1/repositories/typed")).body.type).toBe("other")
    const sync = await client.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "typed", remote: "up" } } } })
    expect(sync.status).toBe(400)
    expect(JSON.stringify(sync.body)).toContain('params.repository: repository \\"typed\\" is a other repository, not a file one')
    expect(JSON.stringify(sync.body)).toContain('params.remote: remote \\"up\\" is a other remote, not a file one')
    const fine = await client.post("/api/v1/graphs", { nodes: { s: { task: "file.sync", params: { repository: "gen", remote: "typed-file" } } } })
    expect(JSON.stringify(fine.body), "a file repository passes that check").not.toContain("params.repository")
  })

  it("checks an uploaded entry of repository.modify against the repository type's shape at submission", async () => {
    const artifact = (await db.query("SELECT artifact_id FROM content_artifacts LIMIT 1")).rows[0].artifact_id as string
    const wrong = await client.post("/api/v1/graphs", { nodes: { m: { task: "repository.modify", params: { repository: "gen", add: [{ filename: "x-1.0-py3-none-any.whl", artifact }] } } } })
    expect(wrong.status).toBe(400)
    expect(JSON.stringify(wrong.body)).toContain("params.add.0")
    const right = await client.post("/api/v1/graphs", { nodes: { m: { task: "repository.modify", params: { repository: "gen", add: [{ relative_path: "files/b.bin", artifact }] } } } })
    expect(right.status, JSON.stringify(right.body)).toBe(201)
  })

  it("serves the units at their paths and a directory's page at its path with the trailing slash", async () => {
    const a = await get("files/a.bin")
    expect([a.status, a.type, a.vary]).toEqual([200, "application/octet-stream", null])
    expect(a.body.equals(unit)).toBe(true)
    const attrs = await get("simple/attrs/")
    expect([attrs.status, attrs.type, attrs.vary]).toEqual([200, "text/html; charset=utf-8", null])
    expect(attrs.body.equals(page)).toBe(true)
    expect((await get("simple/attrs")).status, "without the slash: another path").toBe(404)
    expect((await get("simple/attrs//")).status).toBe(404)
    expect((await get("files/a.bin/")).status).toBe(404)
  })

  it("negotiates the media types at one path by accept, and says that it did", async () => {
    const cases: Array<[string | undefined, Buffer, string]> = [
      [undefined, html, "text/html; charset=utf-8"],
      ["text/html", html, "text/html; charset=utf-8"],
      ["application/vnd.pypi.simple.v1+json", json, "application/vnd.pypi.simple.v1+json"],
      // pip's own header: JSON preferred, HTML acceptable.
      ["application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", json, "application/vnd.pypi.simple.v1+json"],
      ["application/vnd.pypi.simple.v1+json; q=0.2, text/html", html, "text/html; charset=utf-8"],
      ["application/*", json, "application/vnd.pypi.simple.v1+json"],
      ["*/*", html, "text/html; charset=utf-8"],
      ["image/png", html, "text/html; charset=utf-8"]
    ]
    for (const [accept, body, type] of cases) {
      const r = await get("simple/", accept)
      expect([r.status, r.type, r.vary], String(accept)).toEqual([200, type, "accept"])
      expect(r.body.equals(body), String(accept)).toBe(true)
      expect(r.etag, String(accept)).toBe(`"${sha256(body)}"`)
    }
  })
})

describe("the type migration", () => {
  it("brings existing units, repositories, remotes and publications through as the file type's", async () => {
    // A database at the last migration before types, with a little of everything.
    const admin = new pg.Client({ connectionString: inject("pgUrl") })
    await admin.connect()
    const name = `t_types_${process.pid}_${Date.now().toString(36)}`
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    const url = new URL(inject("pgUrl"))
    url.pathname = `/${name}`
    const before = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-before-types-"))
    const db = new pg.Client({ connectionString: url.toString() })
    try {
      fs.cpSync(migrationsFolder, before, { recursive: true })
      const journalFile = path.join(before, "meta", "_journal.json")
      const journal = JSON.parse(fs.readFileSync(journalFile, "utf8")) as { entries: Array<{ tag: string }> }
      const at = journal.entries.findIndex((e) => e.tag === "0026_content_types")
      expect(at).toBeGreaterThan(0)
      journal.entries = journal.entries.slice(0, at)
      fs.writeFileSync(journalFile, JSON.stringify(journal))
      await db.connect()
      await migrate(drizzle(db), { migrationsFolder: before })

      const id = () => ulid()
      const [repo, remote, repoRev, remoteRev, unit, manifest, v0, pub] = [id(), id(), id(), id(), id(), id(), id(), id()]
      await db.query("INSERT INTO resources (id, kind) VALUES ($1, 'repository'), ($2, 'remote')", [repo, remote])
      await db.query("INSERT INTO repository_revisions (id, repository_id, name) VALUES ($1, $2, 'old')", [repoRev, repo])
      await db.query("INSERT INTO remote_revisions (id, remote_id, name, url, policy, download_concurrency) VALUES ($1, $2, 'old', 'http://x/PULP_MANIFEST', 'immediate', 1)", [remoteRev, remote])
      await db.query("INSERT INTO content_units (id, relative_path, sha256, size) VALUES ($1, 'a/b.txt', $2, 1)", [unit, "a".repeat(64)])
      await db.query("INSERT INTO artifacts (id, sha256, size) VALUES ($1, $2, 3)", [manifest, "b".repeat(64)])
      await db.query("INSERT INTO repository_versions (id, repository_id, number, content_count) VALUES ($1, $2, 0, 0)", [v0, repo])
      await db.query("INSERT INTO publications (id, version_id, manifest_artifact_id) VALUES ($1, $2, $3)", [pub, v0, manifest])

      await migrate(drizzle(db), { migrationsFolder })

      const one = async (q: string, params: Array<unknown> = []) => (await db.query(q, params)).rows
      expect(await one("SELECT type, repo_key FROM content_units WHERE id = $1", [unit])).toEqual([{ type: "file", repo_key: null }])
      expect(await one("SELECT type FROM repository_revisions WHERE id = $1", [repoRev])).toEqual([{ type: "file" }])
      expect(await one("SELECT type, type_fields FROM remote_revisions WHERE id = $1", [remoteRev])).toEqual([{ type: "file", type_fields: {} }])
      expect(await one("SELECT relative_path, media_type, position, artifact_id FROM publication_files WHERE publication_id = $1", [pub]))
        .toEqual([{ relative_path: "PULP_MANIFEST", media_type: "text/plain; charset=utf-8", position: 0, artifact_id: manifest }])
      // The file type's rows and the core's (later migrations add other plugins' rows beside them).
      expect(await one("SELECT type FROM content_types")).toEqual(expect.arrayContaining([{ type: "file" }]))
      expect(await one("SELECT kind, param, holds FROM content_held_params WHERE kind NOT LIKE '%.sync' OR kind = 'file.sync' ORDER BY kind, param")).toEqual([
        { kind: "file.sync", param: "remote", holds: "remote_revision" },
        { kind: "file.sync", param: "repository", holds: "repository" },
        { kind: "repository.modify", param: "repository", holds: "repository" },
        { kind: "repository.prune", param: "repository", holds: "repository" }
      ])
      // A type no plugin registered cannot be written.
      await expect(db.query("INSERT INTO content_units (id, type, relative_path, sha256, size) VALUES ($1, 'nope', 'x', $2, 1)", [id(), "c".repeat(64)]))
        .rejects.toThrow(/content_types/)
    } finally {
      await db.end().catch(() => undefined)
      fs.rmSync(before, { recursive: true, force: true })
      const drop = new pg.Client({ connectionString: inject("pgUrl") })
      await drop.connect()
      await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => drop.end())
    }
  }, 120_000)
})

describe("content paths and negotiation", () => {
  it("keeps a trailing slash as a directory's page, and refuses what it refused before", () => {
    expect(contentSegments("/content/b/simple/attrs/")).toEqual(["b", "simple", "attrs", ""])
    expect(relativePathOf(["b", "simple", "attrs", ""], 1)).toBe("simple/attrs/")
    expect(relativePathOf(["b", ""], 1), "the base path's own page").toBeUndefined()
    for (const bad of ["/content/b/a//", "/content/b/../", "/content/b/%2e%2e/", "/content//", "/content/b/a%2F/"]) {
      const segments = contentSegments(bad)
      expect(segments === undefined || relativePathOf(segments, 1) === undefined, bad).toBe(true)
    }
  })

  it("picks the most specific range's quality, the default on a tie or when nothing is acceptable", () => {
    const entry = (mediaType: string, variants?: ReadonlyArray<FileEntry>): FileEntry =>
      ({ contentId: undefined, sha256: mediaType, size: 1, stored: true, mediaType, ...(variants ? { variants } : {}) })
    const json = entry("application/vnd.pypi.simple.v1+json")
    const html = entry("text/html; charset=utf-8", [json])
    const pick = (accept: string | undefined) => negotiate(html, accept).mediaType
    expect(pick(undefined)).toBe("text/html; charset=utf-8")
    expect(pick("")).toBe("text/html; charset=utf-8")
    expect(pick("application/vnd.pypi.simple.v1+json")).toBe("application/vnd.pypi.simple.v1+json")
    expect(pick("text/*;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6")).toBe("application/vnd.pypi.simple.v1+json")
    expect(pick("text/*;q=0.7, application/vnd.pypi.simple.v1+json;q=0.6")).toBe("text/html; charset=utf-8")
    expect(pick("*/*, text/html;q=0")).toBe("application/vnd.pypi.simple.v1+json")
    expect(pick("text/html, application/vnd.pypi.simple.v1+json")).toBe("text/html; charset=utf-8")
    expect(pick("image/png")).toBe("text/html; charset=utf-8")
    expect(pick("application/vnd.pypi.simple.v1+json;q=0")).toBe("text/html; charset=utf-8")
    expect(pick("garbage, ;;, /")).toBe("text/html; charset=utf-8")
    const single = entry("text/plain")
    expect(negotiate(single, "application/json")).toBe(single)
  })
})

describe("module loading", () => {
  /** Modules `from` loads (not type-only imports), transitively, as repository paths. */
  const reachable = (from: string): Set<string> => {
    const seen = new Set<string>()
    const todo = [from]
    while (todo.length > 0) {
      const file = todo.pop()!
      if (seen.has(file)) continue
      seen.add(file)
      const text = fs.readFileSync(file, "utf8")
      for (const m of text.matchAll(/^(import|export)\s+(?!type\b)[^;]*?from\s+"(\.[^"]+)"/gms)) {
        const target = path.normalize(path.join(path.dirname(file), m[2]!)).replace(/\.js$/, ".ts")
        if (fs.existsSync(target)) todo.push(target)
      }
    }
    return seen
  }

  it("never loads the plugin registry from a module that a plugin loads", () => {
    // The registry loads the plugins (src/plugins/index.ts); a plugin loading it back would find
    // it, or a core module on the way, half evaluated (DESIGN.md §21).
    const fromPlugins = reachable("src/plugins/index.ts")
    expect(fromPlugins.has("src/plugins/file/sync.ts"), "the walk follows imports").toBe(true)
    expect(fromPlugins.has("src/content/versions.ts"), "the walk reaches the core").toBe(true)
    expect([...fromPlugins].filter((f) => f === "src/content/registry.ts")).toEqual([])
    expect(reachable("src/content/version-content.ts").has("src/content/registry.ts"), "the check can fail").toBe(true)
  })

  it("the typed client loads the plugins' declarations, none of their server modules", () => {
    // The client imports the API's definition, which describes every type's remote fields and
    // content: from src/plugins/declarations.ts, not from the plugins (their syncs, the downloader).
    const fromClient = reachable("src/client/index.ts")
    expect(fromClient.has("src/plugins/declarations.ts"), "the walk reaches the definition's plugin list").toBe(true)
    const server = /^src\/(plugins\/[^/]+\/(index|sync)|content\/(registry|download|fetch|versions))\.ts$/
    expect([...fromClient].filter((f) => server.test(f))).toEqual([])
    expect([...reachable("src/plugins/index.ts")].some((f) => server.test(f)), "the pattern names server modules").toBe(true)
  })

  it("declares every plugin, in the plugins' order, as each plugin itself says", () => {
    expect(declarations.map((d) => d.type)).toEqual(plugins.map((p) => p.type))
    declarations.forEach((d, i) => {
      expect(plugins[i]!.remote).toBe(d.remote)
      expect(plugins[i]!.content.view).toBe(d.content.view)
    })
  })
})
