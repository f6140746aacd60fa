/**
 * The simple index: writing a publication's pages (src/plugins/python/lib/simple-write.ts),
 * choosing HTML or JSON for a request, and reading a remote's pages
 * (src/plugins/python/lib/simple-read.ts); what one writes the other reads back.
 */
import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { escapedDistributionName, normalizeProjectName } from "../src/plugins/python/lib/names.js"
import {
  type IndexedFile,
  InvalidIndexPage,
  type PageResponse,
  parseProjectList,
  parseProjectPage,
  type ProjectPage,
  projectPageUrl,
  SIMPLE_ACCEPT
} from "../src/plugins/python/lib/simple-read.js"
import {
  negotiateSimpleFormat,
  packagePath,
  type PublishedProject,
  renderSimpleIndex
} from "../src/plugins/python/lib/simple-write.js"

const sha = (c: string) => c.repeat(64).slice(0, 64)
const A = sha("a")
const B = sha("b")

const pageOf = (projects: ReadonlyArray<PublishedProject>, relativePath: string): string => {
  const page = renderSimpleIndex(projects).find((p) => p.relativePath === relativePath)
  if (!page) throw new Error(`no ${relativePath}`)
  return new TextDecoder().decode(page.bytes)
}

const html = (body: string, url = "https://example.org/simple/a/"): PageResponse => ({ url, contentType: "text/html; charset=utf-8", body })
const json = (doc: unknown, url = "https://example.org/simple/a/"): PageResponse => ({
  url,
  contentType: "application/vnd.pypi.simple.v1+json",
  body: JSON.stringify(doc)
})
const files = (page: PageResponse, project = "a", requireSha256?: boolean): ProjectPage =>
  Either.getOrThrow(parseProjectPage(page, project, { requireSha256 }))
const pageError = (e: Either.Either<unknown, InvalidIndexPage>): string => {
  if (Either.isRight(e)) throw new Error("page was read")
  return e.left.message
}

const sample: ReadonlyArray<PublishedProject> = [
  {
    name: "Cairn_Test.Pkg",
    files: [
      { filename: "cairn_test_pkg-1.10-py3-none-any.whl", sha256: B, size: 20, requiresPython: "<4,>=3.8" },
      { filename: "cairn_test_pkg-1.9.tar.gz", sha256: A, size: 10, yanked: "broken <b>\"badly\"</b> & 'worse'", metadataSha256: B },
      { filename: "cairn_test_pkg-1.9-py3-none-any.whl", sha256: A, size: 11, yanked: true }
    ]
  },
  { name: "attrs", files: [{ filename: "attrs-23.1.0-py3-none-any.whl", sha256: A, size: 5 }] }
]

describe("writing the simple index", () => {
  it("lays out the pages and the files as the header comment says", () => {
    expect(renderSimpleIndex(sample).map((p) => [p.relativePath, p.contentType])).toEqual([
      ["simple/attrs/index.html", "application/vnd.pypi.simple.v1+html"],
      ["simple/attrs/index.json", "application/vnd.pypi.simple.v1+json"],
      ["simple/cairn-test-pkg/index.html", "application/vnd.pypi.simple.v1+html"],
      ["simple/cairn-test-pkg/index.json", "application/vnd.pypi.simple.v1+json"],
      ["simple/index.html", "application/vnd.pypi.simple.v1+html"],
      ["simple/index.json", "application/vnd.pypi.simple.v1+json"]
    ])
    expect(packagePath("Cairn_Test.Pkg", "cairn_test_pkg-1.9.tar.gz")).toBe("packages/cairn-test-pkg/cairn_test_pkg-1.9.tar.gz")
  })

  it("writes PEP 503 HTML with relative links, sha256 fragments and escaped attributes", () => {
    const root = pageOf(sample, "simple/index.html")
    expect(root).toContain(`<meta name="pypi:repository-version" content="1.1">`)
    expect(root).toContain(`<a href="attrs/">attrs</a><br>\n    <a href="cairn-test-pkg/">Cairn_Test.Pkg</a><br>`)
    const project = pageOf(sample, "simple/cairn-test-pkg/index.html")
    expect(project).toContain(
      `<a href="../../packages/cairn-test-pkg/cairn_test_pkg-1.10-py3-none-any.whl#sha256=${B}" data-requires-python="&lt;4,&gt;=3.8">` +
        `cairn_test_pkg-1.10-py3-none-any.whl</a>`
    )
    expect(project).toContain(`data-yanked="broken &lt;b&gt;&quot;badly&quot;&lt;/b&gt; &amp; &#39;worse&#39;"`)
    expect(project).toContain(`<a href="../../packages/cairn-test-pkg/cairn_test_pkg-1.9-py3-none-any.whl#sha256=${A}" data-yanked="">`)
    expect(project).toContain(`data-core-metadata="sha256=${B}" data-dist-info-metadata="sha256=${B}"`)
    // Files in file name order: 1.10 before 1.9 (code units, not versions).
    expect(project.indexOf("1.10-py3")).toBeLessThan(project.indexOf("1.9-py3"))
  })

  it("writes PEP 691 JSON (API 1.1: versions in PEP 440 order, sizes)", () => {
    expect(JSON.parse(pageOf(sample, "simple/index.json"))).toEqual({
      meta: { "api-version": "1.1" },
      projects: [{ name: "attrs" }, { name: "Cairn_Test.Pkg" }]
    })
    const doc = JSON.parse(pageOf(sample, "simple/cairn-test-pkg/index.json"))
    expect(doc.name).toBe("cairn-test-pkg")
    expect(doc.versions).toEqual(["1.9", "1.10"])
    expect(doc.files[0]).toEqual({
      filename: "cairn_test_pkg-1.10-py3-none-any.whl",
      url: "../../packages/cairn-test-pkg/cairn_test_pkg-1.10-py3-none-any.whl",
      hashes: { sha256: B },
      "requires-python": "<4,>=3.8",
      size: 20
    })
    expect(doc.files[1].yanked).toBe(true)
    expect(doc.files[2]["core-metadata"]).toEqual({ sha256: B })
  })

  it("gives the same bytes whatever the order of projects and files", () => {
    const shuffled = [...sample].reverse().map((p) => ({ ...p, files: [...p.files].reverse() }))
    const a = renderSimpleIndex(sample)
    const b = renderSimpleIndex(shuffled)
    expect(b.map((p) => p.relativePath)).toEqual(a.map((p) => p.relativePath))
    b.forEach((p, i) => expect(Buffer.from(p.bytes).equals(Buffer.from(a[i]!.bytes)), p.relativePath).toBe(true))
  })

  it("percent-encodes file names in links", () => {
    const page = pageOf([{ name: "a", files: [{ filename: "a-1.0+local-py3-none-any.whl", sha256: A, size: 1 }] }], "simple/a/index.html")
    expect(page).toContain(`href="../../packages/a/a-1.0%2Blocal-py3-none-any.whl#sha256=${A}"`)
  })

  it("throws on what a valid repository cannot hold", () => {
    const bad = (projects: ReadonlyArray<PublishedProject>) => () => renderSimpleIndex(projects)
    expect(bad([{ name: "not valid", files: [] }])).toThrow("invalid project name")
    expect(bad([{ name: "Foo", files: [] }, { name: "foo", files: [] }])).toThrow("are the same project")
    expect(bad([{ name: "a", files: [{ filename: "b-1.0.tar.gz", sha256: A, size: 1 }] }])).toThrow("project \"a\"")
    expect(bad([{ name: "a", files: [{ filename: "a-1.0.tar.gz", sha256: "ABC", size: 1 }] }])).toThrow("bad sha256")
    expect(bad([{ name: "a", files: [{ filename: "a-1.0.tar.gz", sha256: A, size: 1 }, { filename: "a-1.0.tar.gz", sha256: A, size: 1 }] }]))
      .toThrow("listed twice")
  })
})

describe("choosing HTML or JSON for a request", () => {
  it("follows the Accept header as PEP 691 describes", () => {
    expect(negotiateSimpleFormat(SIMPLE_ACCEPT)).toEqual({ format: "json", contentType: "application/vnd.pypi.simple.v1+json" })
    expect(negotiateSimpleFormat(undefined)).toEqual({ format: "html", contentType: "text/html" })
    expect(negotiateSimpleFormat("text/html")).toEqual({ format: "html", contentType: "text/html" })
    expect(negotiateSimpleFormat("*/*")).toEqual({ format: "html", contentType: "text/html" })
    expect(negotiateSimpleFormat("application/vnd.pypi.simple.v1+html")).toEqual({ format: "html", contentType: "application/vnd.pypi.simple.v1+html" })
    expect(negotiateSimpleFormat("application/vnd.pypi.simple.latest+json")?.format).toBe("json")
    expect(negotiateSimpleFormat("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6")?.format).toBe("json")
    expect(negotiateSimpleFormat("application/vnd.pypi.simple.v1+json;q=0, */*;q=0.1")?.format).toBe("html")
    expect(negotiateSimpleFormat("text/*;q=0.2, application/*;q=0.3")?.contentType).toBe("application/vnd.pypi.simple.v1+html")
    expect(negotiateSimpleFormat("application/json")).toBeUndefined()
    expect(negotiateSimpleFormat("text/html;q=0")).toBeUndefined()
  })
})

describe("reading a remote's project page", () => {
  it("resolves relative and absolute links, and the page's <base href>", () => {
    const page = files(html(`<!DOCTYPE html><html><body>
      <a href="../../packages/a-1.0.tar.gz#sha256=${A}">a-1.0.tar.gz</a>
      <a href="https://files.example.net/x/a-1.1-py3-none-any.whl#sha256=${B.toUpperCase()}">whatever text</a>
      <a href="/abs/a-1.2.zip#sha256=${A}">a-1.2.zip</a>
      <a href="a-1.3.tar.gz#md5=0123&sha256=${B}">a-1.3</a>
    </body></html>`))
    expect(page.rejected).toEqual([])
    expect(page.files.map((f) => [f.filename, f.url, f.sha256, f.distribution.version])).toEqual([
      ["a-1.0.tar.gz", "https://example.org/packages/a-1.0.tar.gz", A, "1.0"],
      ["a-1.1-py3-none-any.whl", "https://files.example.net/x/a-1.1-py3-none-any.whl", B, "1.1"],
      ["a-1.2.zip", "https://example.org/abs/a-1.2.zip", A, "1.2"],
      ["a-1.3.tar.gz", "https://example.org/simple/a/a-1.3.tar.gz", B, "1.3"]
    ])
    const based = files(html(`<html><head><base href="https://mirror.example.com/pkgs/"></head><body>
      <a href="a-1.0.tar.gz#sha256=${A}">a-1.0.tar.gz</a></body></html>`))
    expect(based.files[0]!.url).toBe("https://mirror.example.com/pkgs/a-1.0.tar.gz")
  })

  it("reads data-requires-python, data-yanked and the core metadata attributes (PEP 714's name first)", () => {
    const page = files(html(`
      <a href="a-1.0.tar.gz#sha256=${A}" data-requires-python="&gt;=3.8,&lt;4" data-yanked="">x</a>
      <a href="a-1.1.tar.gz#sha256=${A}" data-yanked="bad &amp; broken" data-dist-info-metadata="sha256=${B}">x</a>
      <a href="a-1.2.tar.gz#sha256=${A}" data-core-metadata="sha256=${A}" data-dist-info-metadata="sha256=${B}">x</a>
      <a href="a-1.3.tar.gz#sha256=${A}" data-dist-info-metadata="true">x</a>`))
    expect(page.files.map((f) => [f.requiresPython, f.yanked, f.coreMetadata])).toEqual([
      [">=3.8,<4", true, undefined],
      [undefined, "bad & broken", { sha256: B }],
      [undefined, undefined, { sha256: A }],
      [undefined, undefined, { sha256: undefined }]
    ])
  })

  it("rejects unsafe, foreign and unverifiable entries, saying why, and keeps the rest", () => {
    const page = files(html(`
      <a href="a-1.0.tar.gz#sha256=${A}">ok</a>
      <a href="file:///etc/a-2.0.tar.gz#sha256=${A}">file</a>
      <a href="javascript:alert(1)">js</a>
      <a href="..%2F..%2Fa-3.0.tar.gz#sha256=${A}">encoded slashes</a>
      <a href="x/%2e%2e#sha256=${A}">dots</a>
      <a href=".a-7.0.tar.gz#sha256=${A}">hidden</a>
      <a href="b-1.0.tar.gz#sha256=${A}">other project</a>
      <a href="a-1.0-py2.7.egg#sha256=${A}">egg</a>
      <a href="a-4.0.tar.gz">no hash</a>
      <a href="a-4.1.tar.gz#md5=abc">md5 only</a>
      <a href="a-4.2.tar.gz#sha256=abc">short</a>
      <a href="a-5.0.tar.gz#sha256=${A}">twice, same</a>
      <a href="mirror/a-5.0.tar.gz#sha256=${A}">twice, same</a>
      <a href="a-6.0.tar.gz#sha256=${A}">twice, different</a>
      <a href="mirror/a-6.0.tar.gz#sha256=${B}">twice, different</a>
      <a>no href</a>`))
    expect(page.files.map((f) => f.filename)).toEqual(["a-1.0.tar.gz", "a-5.0.tar.gz"])
    const reasons = Object.fromEntries(page.rejected.map((r) => [r.entry, r.reason]))
    expect(reasons[`file:///etc/a-2.0.tar.gz#sha256=${A}`]).toContain("not an http(s) URL")
    expect(reasons["javascript:alert(1)"]).toContain("not an http(s) URL")
    expect(reasons["../../a-3.0.tar.gz"]).toContain("slash")
    expect(reasons[`x/%2e%2e#sha256=${A}`]).toBe("empty file name")
    expect(reasons[".a-7.0.tar.gz"]).toContain("starts with \".\"")
    expect(reasons["b-1.0.tar.gz"]).toContain("project \"a\"")
    expect(reasons["a-1.0-py2.7.egg"]).toContain("ends neither")
    expect(reasons["a-4.0.tar.gz"]).toBe("no sha256 given")
    expect(reasons["a-4.1.tar.gz"]).toBe("no sha256 given (only md5)")
    expect(reasons["a-4.2.tar.gz"]).toContain("malformed sha256")
    expect(reasons["a-6.0.tar.gz"]).toContain("different sha256")
    expect(page.rejected.length).toBe(11)
    // Without the sha256 requirement, the files without one are kept.
    expect(files(html(`<a href="a-4.0.tar.gz">x</a>`), "a", false).files[0]!.sha256).toBeUndefined()
  })

  it("reads PEP 691 JSON pages", () => {
    const page = files(json({
      meta: { "api-version": "1.1" },
      name: "A",
      files: [
        { filename: "a-1.0.tar.gz", url: "../../p/a-1.0.tar.gz", hashes: { sha256: A, md5: "x" }, "requires-python": ">=3", size: 12, yanked: "why" },
        { filename: "a-1.1-py3-none-any.whl", url: "https://cdn.example.com/a-1.1-py3-none-any.whl#sha256=" + B, hashes: { SHA256: B }, "core-metadata": { sha256: A } },
        { filename: "a-1.2.tar.gz", url: "a-1.2.tar.gz", hashes: {}, "dist-info-metadata": true },
        { filename: "a-1.3.tar.gz", url: "a-1.3.tar.gz" },
        "nonsense"
      ]
    }))
    expect(page.format).toBe("json")
    expect(page.apiVersion).toBe("1.1")
    expect(page.files.map((f): Partial<IndexedFile> => ({ filename: f.filename, url: f.url, sha256: f.sha256, size: f.size, yanked: f.yanked, coreMetadata: f.coreMetadata })))
      .toEqual([
        { filename: "a-1.0.tar.gz", url: "https://example.org/p/a-1.0.tar.gz", sha256: A, size: 12, yanked: "why", coreMetadata: undefined },
        { filename: "a-1.1-py3-none-any.whl", url: "https://cdn.example.com/a-1.1-py3-none-any.whl", sha256: B, size: undefined, yanked: undefined, coreMetadata: { sha256: A } }
      ])
    expect(page.files[0]!.requiresPython).toBe(">=3")
    expect(page.rejected).toEqual([
      { entry: "a-1.3.tar.gz", reason: "no hashes object" },
      { entry: "files[4]", reason: "not an object" },
      { entry: "a-1.2.tar.gz", reason: "no sha256 given" }
    ])
  })

  it("refuses pages it cannot read", () => {
    expect(pageError(parseProjectPage({ url: "https://x/simple/a/", contentType: "application/octet-stream", body: "" }, "a")))
      .toContain("unsupported content type \"application/octet-stream\"")
    expect(pageError(parseProjectPage({ url: "https://x/simple/a/", contentType: undefined, body: "" }, "a"))).toContain("unsupported content type")
    expect(pageError(parseProjectPage(json({ meta: { "api-version": "2.0" }, files: [] }), "a"))).toContain("only 1.x")
    expect(pageError(parseProjectPage(json({ files: [] }), "a"))).toContain("no meta.api-version")
    expect(pageError(parseProjectPage(json({ meta: { "api-version": "1.0" }, name: "b", files: [] }), "a"))).toContain("project \"b\"'s")
    expect(pageError(parseProjectPage(json({ meta: { "api-version": "1.0" } }), "a"))).toContain("no files array")
    expect(pageError(parseProjectPage({ ...json({}), body: "{not json" }, "a"))).toContain("not JSON")
    expect(pageError(parseProjectPage(html(`<meta name="pypi:repository-version" content="2.0">`), "a"))).toContain("only 1.x")
    expect(pageError(parseProjectPage({ ...html(""), contentType: "text/html; charset=klingon", body: new Uint8Array([65]) }, "a")))
      .toContain("unsupported charset")
  })

  it("decodes the page with the charset its content type names", () => {
    const latin1 = Buffer.from(`<a href="a-1.0.tar.gz#sha256=${A}" data-yanked="d\u00e9fectueux">x</a>`, "latin1")
    const page = files({ url: "https://x/simple/a/", contentType: "text/html; charset=ISO-8859-1", body: latin1 })
    expect(page.files[0]!.yanked).toBe("d\u00e9fectueux")
  })
})

describe("reading a remote's project list", () => {
  it("takes names from HTML anchors or JSON, and points every project at <index url><normalised>/", () => {
    const list = Either.getOrThrow(parseProjectList(html(`
      <a href="/elsewhere/">Cairn_Test.Pkg</a><a href="attrs/"> attrs </a><a href="x/">not valid!</a><a href="y/">ATTRS</a>`,
      "https://example.org/simple/")))
    expect(list.projects).toEqual([
      { name: "Cairn_Test.Pkg", project: "cairn-test-pkg", url: "https://example.org/simple/cairn-test-pkg/" },
      { name: "attrs", project: "attrs", url: "https://example.org/simple/attrs/" }
    ])
    expect(list.rejected).toEqual([
      { entry: "not valid!", reason: "not a valid project name" },
      { entry: "ATTRS", reason: "listed more than once" }
    ])
    const fromJson = Either.getOrThrow(parseProjectList(json({ meta: { "api-version": "1.0" }, projects: [{ name: "Foo.Bar" }, { nom: 1 }] }, "https://example.org/simple/")))
    expect(fromJson.projects).toEqual([{ name: "Foo.Bar", project: "foo-bar", url: "https://example.org/simple/foo-bar/" }])
    expect(fromJson.rejected.length).toBe(1)
    expect(projectPageUrl("https://example.org/base/simple/", "Cairn_Test.Pkg")).toBe("https://example.org/base/simple/cairn-test-pkg/")
  })
})

describe("what the writer writes, the reader reads back (generated)", () => {
  const printable = fc.string({ unit: fc.oneof(fc.constantFrom(..."<>&\"' =;,~!"), fc.string({ minLength: 1, maxLength: 1 }), fc.constantFrom("é", "日", "😀")), maxLength: 20 })
    .filter((s) => !/[\u0000-\u001f\u007f]/.test(s))
  const nameArb = fc.tuple(fc.constantFrom("a", "Z", "9"), fc.stringMatching(/^[A-Za-z0-9._-]{0,8}$/), fc.constantFrom("b", "Y", "0"))
    .map(([x, m, y]) => `${x}${m}${y}`)
  const versionArb = fc.constantFrom("1.0", "1.0.post1", "2.0rc1", "1!1.0", "0.1.dev2", "1.0+local.7")
  const projectArb = fc.tuple(nameArb, fc.uniqueArray(fc.tuple(versionArb, fc.constantFrom("whl", "tar.gz", "zip")), { maxLength: 4, selector: ([ver, kind]) => `${ver}${kind}` }),
    fc.array(fc.record({ requiresPython: fc.option(printable, { nil: undefined }), yanked: fc.option(fc.oneof(fc.constant(true as const), printable), { nil: undefined }), metadata: fc.boolean(), digest: fc.constantFrom(A, B) }), { minLength: 4, maxLength: 4 }))
    .map(([name, dists, extras]): PublishedProject => ({
      name,
      files: dists.map(([ver, kind], i) => {
        const filename = kind === "whl" ? `${escapedDistributionName(name)}-${ver}-py3-none-any.whl` : `${escapedDistributionName(name)}-${ver}.${kind}`
        const e = extras[i]!
        return {
          filename,
          sha256: e.digest,
          size: i * 1000,
          requiresPython: e.requiresPython,
          // An empty reason is "yanked, no reason given" both ways.
          yanked: e.yanked === "" ? true : e.yanked,
          metadataSha256: e.metadata ? B : undefined
        }
      })
    }))

  it("every file, digest, flag and link, in HTML and in JSON, under any base path", () => {
    fc.assert(
      fc.property(fc.uniqueArray(projectArb, { maxLength: 4, selector: (p) => normalizeProjectName(p.name) }), fc.constantFrom("/", "/content/some%20base/"), (projects, base) => {
        const pages = renderSimpleIndex(projects)
        const origin = `https://cairn.example${base}`
        const served = (rel: string, format: "html" | "json"): PageResponse => {
          const page = pages.find((p) => p.relativePath === rel.replace(/\/$/, `/index.${format}`))!
          return { url: `${origin}${rel}`, contentType: page.contentType, body: page.bytes }
        }
        for (const format of ["html", "json"] as const) {
          const list = Either.getOrThrow(parseProjectList(served("simple/", format)))
          expect(list.rejected).toEqual([])
          expect(list.projects.map((p) => p.name).sort()).toEqual(projects.map((p) => p.name).sort())
          for (const p of projects) {
            const project = normalizeProjectName(p.name)
            const listed = list.projects.find((l) => l.project === project)!
            expect(listed.url).toBe(`${origin}simple/${project}/`)
            const page = Either.getOrThrow(parseProjectPage(served(`simple/${project}/`, format), p.name))
            expect(page.rejected).toEqual([])
            const got = [...page.files].sort((x, y) => x.filename < y.filename ? -1 : 1)
            const want = [...p.files].sort((x, y) => x.filename < y.filename ? -1 : 1)
            expect(got.map((f) => ({
              filename: f.filename,
              url: f.url,
              sha256: f.sha256,
              requiresPython: f.requiresPython,
              yanked: f.yanked,
              metadata: f.coreMetadata?.sha256,
              size: format === "json" ? f.size : undefined
            }))).toEqual(want.map((f) => ({
              filename: f.filename,
              url: new URL(packagePath(p.name, encodeURIComponent(f.filename)), origin).href,
              sha256: f.sha256,
              // An empty requires-python attribute is no requirement.
              requiresPython: f.requiresPython === "" && format === "html" ? undefined : f.requiresPython,
              yanked: f.yanked,
              metadata: f.metadataSha256,
              size: format === "json" ? f.size : undefined
            })))
          }
        }
      }),
      { numRuns: 150 }
    )
  })
})
