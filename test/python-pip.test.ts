/**
 * Proof with the real client: pip (the one python3's venv brings) installs from a static index
 * that cairn's writer laid out and a plain HTTP server serves, in PEP 503 HTML and in PEP 691
 * JSON, using the PEP 658 metadata files cairn's reader extracted; it honours the sha256
 * fragments, yanked files, Requires-Python and pre-release exclusion, and version specifiers.
 *
 * pip runs with `--isolated`, `PIP_CONFIG_FILE=/dev/null` and no PIP_* variables: this machine's
 * own pip configuration adds other indexes and a find-links folder, which would hide whether the
 * package came from the index under test. `--only-binary :all:` keeps pip from building the sdist.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fileSource, readDistribution } from "../src/plugins/python/lib/distribution.js"
import {
  type BuiltDist,
  buildDistributions,
  type DistSpec,
  serveSimpleIndex,
  type StaticIndexServer,
  writeStaticIndex
} from "./support/python-fixtures.js"
import { runProcess } from "./support/python.js"

let work: string
let venv: string
let plain: StaticIndexServer
let negotiating: StaticIndexServer
let tampered: StaticIndexServer
let tamperedJson: StaticIndexServer

/** Run without this machine's pip configuration (PIP_* variables, config files). */
const run = (cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PIP_") && k !== "PYTHONPATH"))
  return runProcess(cmd, args, { env: { ...clean, PIP_CONFIG_FILE: "/dev/null", ...env } })
}

let targets = 0
/** pip install into a fresh target directory; the installed module's __version__ (or the failure). */
const pipInstall = async (indexUrl: string, ...requirements: Array<string>) => {
  const target = path.join(work, `target-${++targets}`)
  const pip = await run(path.join(venv, "bin", "pip"), [
    "install", "--isolated", "--disable-pip-version-check", "--no-cache-dir", "--no-input", "--only-binary", ":all:",
    "--index-url", indexUrl, "--target", target, ...requirements
  ])
  if (pip.code !== 0) return { ok: false as const, output: pip.output }
  const py = await run(path.join(venv, "bin", "python"), ["-c", "import cairn_test_pkg, cairn_helper; print(cairn_test_pkg.__version__, cairn_helper.__version__)"], {
    PYTHONPATH: target
  })
  expect(py.code, py.output).toBe(0)
  const [version, helper] = py.stdout.trim().split(" ")
  return { ok: true as const, version, helper, output: pip.output }
}

/** `yanked` and `requiresPython` are what the index says (the metadata says Requires-Python too, except for 1.3). */
const specs: Array<DistSpec & { yanked?: true | string; indexRequiresPython?: string }> = [
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.0", requiresDist: ["cairn-helper"] },
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.1", requiresDist: ["Cairn.Helper>=0.2"], requiresPython: ">=3.7" },
  { kind: "sdist", name: "Cairn_Test.Pkg", version: "1.1" },
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.2", requiresDist: ["cairn-helper"], yanked: "broken <build> & \"worse\"" },
  // Only the index says it needs Python 4, so that only the data-requires-python attribute keeps pip away.
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.3", requiresDist: ["cairn-helper"], indexRequiresPython: ">=4" },
  { kind: "wheel", name: "Cairn_Test.Pkg", version: "2.0rc1", requiresDist: ["cairn-helper"] },
  { kind: "wheel", name: "cairn_helper", version: "0.1" },
  { kind: "wheel", name: "cairn_helper", version: "0.2" }
]

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-pip-"))
  venv = path.join(work, "venv")
  const [created, built] = await Promise.all([
    run("python3", ["-m", "venv", venv]),
    buildDistributions(path.join(work, "dist"), specs)
  ])
  expect(created.code, created.output).toBe(0)
  // The metadata pip will read comes from cairn's own reader.
  const files = await Promise.all(built.map(async (d: BuiltDist, i) => {
    const info = await Effect.runPromise(readDistribution(d.filename, await fileSource(d.path)))
    return { ...d, metadataBytes: info.metadataBytes, yanked: specs[i]!.yanked, requiresPython: specs[i]!.indexRequiresPython ?? info.metadata.requiresPython }
  }))
  const projects = [
    { name: "Cairn_Test.Pkg", files: files.filter((f) => f.filename.startsWith("cairn_test_pkg")) },
    { name: "cairn_helper", files: files.filter((f) => f.filename.startsWith("cairn_helper")) }
  ]
  await writeStaticIndex(path.join(work, "index"), projects)
  const wheel10 = files.find((f) => f.filename === "cairn_test_pkg-1.0-py3-none-any.whl")!
  await writeStaticIndex(path.join(work, "tampered"), projects, { sha256Override: { [wheel10.filename]: "0".repeat(64) } })
  plain = await serveSimpleIndex(path.join(work, "index"), { pages: "html" })
  negotiating = await serveSimpleIndex(path.join(work, "index"))
  tampered = await serveSimpleIndex(path.join(work, "tampered"), { pages: "html" })
  tamperedJson = await serveSimpleIndex(path.join(work, "tampered"))
})

afterAll(async () => {
  await Promise.all([plain?.close(), negotiating?.close(), tampered?.close(), tamperedJson?.close()])
  if (work) await fs.rm(work, { recursive: true, force: true })
})

describe("pip installs from the index cairn writes", () => {
  it("from PEP 503 HTML: the newest installable final release, its dependency, via PEP 658 metadata", async () => {
    const r = await pipInstall(plain.indexUrl, "Cairn_Test.Pkg")
    expect(r.ok, r.output).toBe(true)
    // Not 1.2 (yanked), 1.3 (Requires-Python >= 4) or 2.0rc1 (a pre-release).
    expect(r.ok && [r.version, r.helper]).toEqual(["1.1", "0.2"])
    const paths = plain.requests.map((q) => q.path)
    expect(paths).toContain("/simple/cairn-test-pkg/")
    expect(paths).toContain("/simple/cairn-helper/")
    expect(paths).toContain("/packages/cairn-test-pkg/cairn_test_pkg-1.1-py3-none-any.whl.metadata")
    expect(plain.requests.filter((q) => q.path.startsWith("/simple/")).every((q) => q.contentType === "text/html")).toBe(true)
  })

  it("from PEP 691 JSON, which pip asks for first, with a version specifier", async () => {
    const before = negotiating.requests.length
    const r = await pipInstall(negotiating.indexUrl, "cairn-test-pkg==1.0")
    expect(r.ok, r.output).toBe(true)
    expect(r.ok && r.version).toBe("1.0")
    const pages = negotiating.requests.slice(before).filter((q) => q.path === "/simple/cairn-test-pkg/")
    expect(pages.length).toBeGreaterThan(0)
    expect(pages.every((q) => q.contentType === "application/vnd.pypi.simple.v1+json")).toBe(true)
  })

  it("specifiers, pre-releases on request, a yanked release only when pinned", async () => {
    const range = await pipInstall(negotiating.indexUrl, "Cairn.Test-Pkg>=1.0,<1.1")
    expect(range.ok && range.version, range.output).toBe("1.0")
    const pre = await pipInstall(plain.indexUrl, "--pre", "Cairn_Test.Pkg")
    expect(pre.ok && pre.version, pre.output).toBe("2.0rc1")
    const pinned = await pipInstall(plain.indexUrl, "Cairn_Test.Pkg==1.2")
    expect(pinned.ok && pinned.version, pinned.output).toBe("1.2")
  })

  it("refuses a file whose sha256 (HTML fragment, JSON hashes) does not match its bytes", async () => {
    for (const server of [tampered, tamperedJson]) {
      const r = await pipInstall(server.indexUrl, "Cairn_Test.Pkg==1.0")
      expect(r.ok).toBe(false)
      expect(r.output).toContain("THESE PACKAGES DO NOT MATCH THE HASHES")
      expect(r.output).toContain("0".repeat(64))
    }
    expect(tamperedJson.requests.some((q) => q.contentType === "application/vnd.pypi.simple.v1+json")).toBe(true)
    // The same index with the right digest installs it.
    const good = await pipInstall(plain.indexUrl, "Cairn_Test.Pkg==1.0")
    expect(good.ok && good.version, good.output).toBe("1.0")
  })
})
