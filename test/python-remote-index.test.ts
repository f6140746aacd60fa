/**
 * What `python.sync` reads from a remote simple index (src/plugins/python/remote-index.ts), over
 * real HTTP from a static index of real distributions: the projects and files the remote's
 * includes and excludes select, in PEP 691 JSON (with sizes) and in PEP 503 HTML (without), and
 * what happens when an included project is not there.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Either, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RemoteAccess } from "../src/content/remote-access.js"
import { compileSelection } from "../src/plugins/python/lib/requirements.js"
import { readRemoteIndex } from "../src/plugins/python/remote-index.js"
import { type BuiltDist, buildDistributions, serveSimpleIndex, type StaticIndexServer, writeStaticIndex } from "./support/python-fixtures.js"

let work: string
let built: Array<BuiltDist>
let json: StaticIndexServer
let html: StaticIndexServer

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-remote-index-"))
  built = await buildDistributions(path.join(work, "dist"), [
    { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.0" },
    { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.1", requiresPython: ">=3.7" },
    { kind: "sdist", name: "Cairn_Test.Pkg", version: "1.1" },
    { kind: "wheel", name: "Cairn_Test.Pkg", version: "2.0rc1" },
    { kind: "wheel", name: "cairn_helper", version: "0.1" }
  ])
  await writeStaticIndex(path.join(work, "index"), [
    { name: "Cairn_Test.Pkg", files: built.filter((d) => d.filename.startsWith("cairn_test_pkg")).map((d) => ({ ...d, requiresPython: d.filename.includes("1.1-py3") ? ">=3.7" : undefined })) },
    { name: "cairn_helper", files: built.filter((d) => d.filename.startsWith("cairn_helper")) }
  ])
  json = await serveSimpleIndex(path.join(work, "index"))
  html = await serveSimpleIndex(path.join(work, "index"), { pages: "html" })
}, 60_000)

afterAll(async () => {
  await Promise.all([json?.close(), html?.close()])
  if (work) await fs.rm(work, { recursive: true, force: true })
})

const remoteOf = (url: string): RemoteAccess => ({
  remoteId: "r",
  revisionId: "rr",
  name: "fixture",
  url,
  policy: "immediate",
  downloadConcurrency: 2,
  options: { timeoutMs: 10_000, retries: 0, maxRedirects: 5 }
})

const read = (server: StaticIndexServer, selection: { includes?: Array<string>; excludes?: Array<string> }, skipMissing = false) =>
  Effect.runPromiseExit(readRemoteIndex(remoteOf(server.indexUrl), Either.getOrThrow(compileSelection(selection)), { skipMissing }))

const files = async (server: StaticIndexServer, selection: { includes?: Array<string>; excludes?: Array<string> }) => {
  const exit = await read(server, selection)
  if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
  return exit.value.files.map((f) => f.file.filename).sort()
}

describe("reading a remote simple index", () => {
  it("without includes: every project of the list, each file with the index's sha256, its URL, and (JSON) its size", async () => {
    const exit = await read(json, {})
    expect(Exit.isSuccess(exit)).toBe(true)
    const index = Exit.isSuccess(exit) ? exit.value : undefined!
    expect(index.files.map((f) => f.file.filename).sort()).toEqual(built.map((d) => d.filename).sort())
    for (const d of built) {
      const f = index.files.find((x) => x.file.filename === d.filename)!
      expect([f.file.sha256, f.file.size, f.file.url]).toEqual([d.sha256, d.size, `${json.url}packages/${f.project}/${d.filename}`])
    }
    expect(index.files.find((f) => f.file.filename === "cairn_test_pkg-1.1-py3-none-any.whl")!.file.requiresPython).toBe(">=3.7")
    // pip's Accept: the server answered JSON for the list and the pages.
    expect(json.requests.filter((q) => q.path.startsWith("/simple/")).every((q) => q.contentType === "application/vnd.pypi.simple.v1+json")).toBe(true)
  })

  it("HTML pages: the same files and digests, without sizes", async () => {
    const exit = await read(html, {})
    const index = Exit.isSuccess(exit) ? exit.value : undefined!
    expect(index.files.map((f) => [f.file.filename, f.file.sha256]).sort()).toEqual(built.map((d) => [d.filename, d.sha256]).sort())
    expect(index.files.every((f) => f.file.size === undefined)).toBe(true)
  })

  it("includes and excludes with specifiers choose files by project (names normalised) and version", async () => {
    expect(await files(json, { includes: ["cairn.test-pkg==1.1"] })).toEqual(["cairn_test_pkg-1.1-py3-none-any.whl", "cairn_test_pkg-1.1.tar.gz"])
    expect(await files(html, { includes: ["CAIRN_TEST_PKG>=1.1"], excludes: ["cairn-test-pkg==1.1"] })).toEqual(["cairn_test_pkg-2.0rc1-py3-none-any.whl"])
    expect(await files(json, { excludes: ["cairn-test-pkg"] })).toEqual(["cairn_helper-0.1-py3-none-any.whl"])
    // With includes, only the included projects' pages are read (not the list).
    const before = json.requests.length
    await files(json, { includes: ["cairn-helper"] })
    expect(json.requests.slice(before).map((q) => q.path)).toEqual(["/simple/cairn-helper/"])
  })

  it("an included project the index does not have fails the read, naming it; with skip_missing it is reported", async () => {
    const exit = await read(json, { includes: ["no-such-project", "cairn-helper"] })
    expect(Exit.isFailure(exit)).toBe(true)
    expect(JSON.stringify(exit)).toContain("no project no-such-project")
    const skipped = await read(json, { includes: ["no-such-project", "cairn-helper"] }, true)
    expect(Exit.isSuccess(skipped) && skipped.value.missingProjects).toEqual(["no-such-project"])
    expect(Exit.isSuccess(skipped) && skipped.value.files.map((f) => f.file.filename)).toEqual(["cairn_helper-0.1-py3-none-any.whl"])
  })
})
