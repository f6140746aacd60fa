/**
 * Project names, distribution file names (src/plugins/python/lib/names.ts) and requirements with
 * the include/exclude selection rule (src/plugins/python/lib/requirements.ts).
 */
import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  escapedDistributionName,
  isNormalizedProjectName,
  isValidProjectName,
  normalizeProjectName,
  parseDistributionFilename
} from "../src/plugins/python/lib/names.js"
import { normalizeVersion, parseVersion, type Version } from "../src/plugins/python/lib/pep440.js"
import { compileSelection, parseRequirement, type Selection } from "../src/plugins/python/lib/requirements.js"
import { askPackaging } from "./support/python-oracle.js"

const v = (s: string): Version => Either.getOrThrow(parseVersion(s))

const filenameError = (f: string, project?: string): string => {
  const r = parseDistributionFilename(f, { project })
  if (Either.isRight(r)) throw new Error(`${f} parsed`)
  return r.left.message
}

const nameChar = fc.constantFrom(..."abcXYZ019._-".split(""))
const projectName = fc.tuple(fc.constantFrom(..."aZ9".split("")), fc.array(nameChar, { maxLength: 12 }), fc.constantFrom(..."bY0".split("")))
  .map(([a, mid, z]) => `${a}${mid.join("")}${z}`)

describe("project names", () => {
  it("normalises as PEP 503 says (its own examples)", () => {
    for (const n of ["friendly-bard", "Friendly-Bard", "FRIENDLY-BARD", "friendly.bard", "friendly_bard", "friendly--bard", "FrIeNdLy-._.-bArD"]) {
      expect(normalizeProjectName(n), n).toBe("friendly-bard")
    }
    expect(normalizeProjectName("Cairn_Test.Pkg")).toBe("cairn-test-pkg")
    expect(escapedDistributionName("Cairn_Test.Pkg")).toBe("cairn_test_pkg")
  })

  it("normalises as packaging's canonicalize_name does (generated names)", async () => {
    const names = fc.sample(projectName, { numRuns: 500 })
    const answers = await askPackaging({ names })
    names.forEach((n, i) => expect(normalizeProjectName(n), n).toBe(answers.names[i]))
  })

  it("accepts PEP 508 names only", () => {
    for (const ok of ["a", "A1", "zope.interface", "cairn_test-pkg", "9lives", "a.-_b"]) expect(isValidProjectName(ok), ok).toBe(true)
    for (const bad of ["", "-a", "a-", ".a", "a_", "a b", "ä", "a/b", "a+b", "a@1"]) expect(isValidProjectName(bad), bad).toBe(false)
    expect(isNormalizedProjectName("cairn-test-pkg")).toBe(true)
    expect(isNormalizedProjectName("cairn_test-pkg")).toBe(false)
    expect(isNormalizedProjectName("Cairn")).toBe(false)
  })
})

describe("distribution file names", () => {
  it("parses wheel names: escaped and legacy names, build tags, compressed tag sets, local versions", () => {
    const w = Either.getOrThrow(parseDistributionFilename("cairn_test_pkg-1.0-py3-none-any.whl"))
    expect(w).toMatchObject({ project: "cairn-test-pkg", version: "1.0", packagetype: "bdist_wheel" })
    expect(w.wheel).toEqual({ build: undefined, python: ["py3"], abi: ["none"], platform: ["any"] })
    expect(Either.getOrThrow(parseDistributionFilename("Cairn_Test.Pkg-1.0-py3-none-any.whl")).project).toBe("cairn-test-pkg")
    const b = Either.getOrThrow(parseDistributionFilename("foo-1.0-2abc-py2.py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"))
    expect(b.wheel).toEqual({
      build: { number: 2, tag: "abc" },
      python: ["py2", "py3"],
      abi: ["none"],
      platform: ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    })
    const local = Either.getOrThrow(parseDistributionFilename("foo-1.0+ubuntu_1-py3-none-any.whl"))
    expect(local.version).toBe("1.0+ubuntu_1")
    expect(local.parsedVersion.normalized).toBe("1.0+ubuntu.1")
  })

  it("parses sdist names (.tar.gz and .zip); a legacy name splits where the project says", () => {
    expect(Either.getOrThrow(parseDistributionFilename("cairn_test_pkg-1.0.tar.gz"))).toMatchObject({
      project: "cairn-test-pkg",
      version: "1.0",
      packagetype: "sdist",
      wheel: undefined
    })
    expect(Either.getOrThrow(parseDistributionFilename("Cairn_Test.Pkg-2.0rc1.zip")).project).toBe("cairn-test-pkg")
    // Without the project: the version follows the last "-" (packaging's rule).
    expect(Either.getOrThrow(parseDistributionFilename("foo-bar-1.0-1.tar.gz"))).toMatchObject({ project: "foo-bar-1-0", version: "1" })
    // With it: pip's rule.
    expect(Either.getOrThrow(parseDistributionFilename("foo-bar-1.0-1.tar.gz", { project: "Foo_Bar" }))).toMatchObject({
      project: "foo-bar",
      version: "1.0-1"
    })
    expect(Either.getOrThrow(parseDistributionFilename("foo-bar-1.0-1.tar.gz", { project: "Foo_Bar" })).parsedVersion.normalized).toBe("1.0.post1")
  })

  it("refuses names that are not wheels or sdists of the project, saying why", () => {
    expect(filenameError("foo-1.0-py3-none.whl")).toContain("5 or 6 dash-separated parts")
    expect(filenameError("foo__bar-1.0-py3-none-any.whl")).toContain("not an escaped project name")
    expect(filenameError("foo-1.0-x1-py3-none-any.whl")).toContain("does not start with a digit")
    expect(filenameError("foo-one-py3-none-any.whl")).toContain("not a PEP 440 version")
    expect(filenameError("foo-1.0-py3-none-any.whl", "bar")).toContain("belongs to project \"foo\", not \"bar\"")
    expect(filenameError("foo-1.0-py3-no+ne-any.whl")).toContain("tags")
    expect(filenameError("foo.tar.gz")).toContain("no \"-\"")
    expect(filenameError("foo-1.0.tar.gz", "bar")).toContain("does not start with project \"bar\"")
    expect(filenameError("foo-1.0.tar.bz2")).toContain("ends neither in .whl, .tar.gz nor .zip")
    expect(filenameError("foo-1.0-py2.7.egg")).toContain("ends neither")
    expect(filenameError("foo-1.0 .tar.gz")).toContain("not a PEP 440 version")
    expect(filenameError("foo-latest.zip")).toContain("not a PEP 440 version")
  })

  it("refuses names unsafe as one path segment before anything else", () => {
    expect(filenameError("../foo-1.0.tar.gz")).toContain("slash")
    expect(filenameError("a/foo-1.0.tar.gz")).toContain("slash")
    expect(filenameError("a\\foo-1.0.tar.gz")).toContain("slash")
    expect(filenameError(".foo-1.0.tar.gz")).toContain("starts with \".\"")
    expect(filenameError("..")).toContain("starts with \".\"")
    expect(filenameError("foo-1.0\n.tar.gz")).toContain("control character")
    expect(filenameError("")).toContain("empty")
    expect(filenameError(`${"a".repeat(250)}-1.0.tar.gz`)).toContain("longer than 255 bytes")
  })

  it("agrees with packaging's parse_wheel_filename and parse_sdist_filename", async () => {
    const samples = fc.sample(
      fc.tuple(projectName, fc.constantFrom("1.0", "2.0rc1", "1!3.1.post2", "1.0+local_1", "0.1.dev3", "bad", "1.0-1"),
        fc.constantFrom("-py3-none-any.whl", "-7-cp311-cp311-linux_x86_64.whl", ".tar.gz", ".zip", "-py3-none.whl", ".tgz")),
      { numRuns: 400 }
    ).map(([n, ver, suffix]) => `${suffix.endsWith(".whl") ? n.replace(/[-.]/g, "_").replace(/_+/g, "_") : n}-${ver}${suffix}`)
    const fixed = ["cairn_test_pkg-1.0-py3-none-any.whl", "foo__bar-1.0-py3-none-any.whl", "Cairn_Test.Pkg-1.0.tar.gz"]
    const filenames = [...fixed, ...samples]
    const answers = await askPackaging({ filenames })
    filenames.forEach((f, i) => {
      const ours = parseDistributionFilename(f)
      const theirs = answers.filenames[i]
      expect(Either.isRight(ours) ? [ours.right.project, ours.right.parsedVersion.normalized] : null, f).toEqual(theirs)
    })
  })

  it("reads back the file names of the binary distribution format and PEP 625 (generated)", () => {
    fc.assert(
      fc.property(projectName, fc.constantFrom("1.0", "2.0rc1", "1!3.1.post2", "1.0+ubuntu.1", "0.1.dev3"), (name, version) => {
        const ver = normalizeVersion(version)!
        const esc = escapedDistributionName(name)
        for (const f of [`${esc}-${ver}-py3-none-any.whl`, `${esc}-${ver}.tar.gz`]) {
          const parsed = Either.getOrThrow(parseDistributionFilename(f, { project: name }))
          expect(parsed.project).toBe(normalizeProjectName(name))
          expect(parsed.parsedVersion.normalized).toBe(ver)
        }
      })
    )
  })
})

const req = (t: string) => Either.getOrThrow(parseRequirement(t))

describe("requirements", () => {
  const reqError = (t: string) => {
    const r = parseRequirement(t)
    if (Either.isRight(r)) throw new Error(`${t} parsed`)
    return r.left.message
  }

  it("reads a name with an optional specifier, in PEP 508's spellings", () => {
    expect(req("attrs")).toMatchObject({ name: "attrs", project: "attrs", specifier: undefined })
    expect(req("attrs==23.1.0").specifier?.text).toBe("==23.1.0")
    expect(req("attrs>=22,<24").specifier?.text).toBe(">=22,<24")
    expect(req("  attrs >= 22 , < 24 ").specifier?.text).toBe(">=22,<24")
    expect(req("attrs (>=22,<24)").specifier?.text).toBe(">=22,<24")
    expect(req("Foo.Bar>=1")).toMatchObject({ name: "Foo.Bar", project: "foo-bar" })
  })

  it("refuses extras, markers, URLs and malformed text with a sentence saying why", () => {
    expect(reqError("Foo.Bar[extra]>=1")).toContain("extras")
    expect(reqError("attrs; python_version < \"3.8\"")).toContain("environment markers")
    expect(reqError("attrs>=1; os_name == \"nt\"")).toContain("environment markers")
    expect(reqError("attrs @ https://example.org/attrs-1.0.tar.gz")).toContain("direct URL reference")
    expect(reqError("attrs 1.0")).toContain("not a version specifier")
    expect(reqError("attrs (>=1")).toContain("closing")
    expect(reqError("attrs ()")).toContain("empty parentheses")
    expect(reqError("")).toContain("empty")
    expect(reqError("-attrs")).toContain("does not start with a project name")
    expect(reqError("attrs>=1,")).toContain("empty clause")
    expect(reqError("attrs~=1")).toContain("at least two release numbers")
  })
})

describe("the include/exclude selection rule", () => {
  const select = (includes?: Array<string>, excludes?: Array<string>, prereleases?: boolean): Selection =>
    Either.getOrThrow(compileSelection({ includes, excludes, prereleases }))

  it("without includes keeps everything the excludes do not name", () => {
    for (const s of [select(), select([])]) {
      expect(s.projects).toBeUndefined()
      expect(s.keeps("anything", v("0.0.1a1"))).toBe(true)
    }
    const s = select(undefined, ["attrs==23.1.0", "Django"])
    expect(s.keeps("attrs", v("23.1.0"))).toBe(false)
    expect(s.keeps("attrs", v("23.1"))).toBe(false)
    expect(s.keeps("attrs", v("23.1.1"))).toBe(true)
    expect(s.keeps("django", v("5.0"))).toBe(false)
    expect(s.wantsProject("DJANGO")).toBe(false)
    expect(s.wantsProject("attrs")).toBe(true)
  })

  it("with includes keeps the named projects' versions that satisfy a specifier, pre-releases included", () => {
    const s = select(["attrs>=22,<24", "Cairn_Test.Pkg", "attrs==21.1"], ["attrs==23.1.0"])
    expect(s.projects).toEqual(["attrs", "cairn-test-pkg"])
    expect(s.keeps("attrs", v("22.1"))).toBe(true)
    expect(s.keeps("attrs", v("23.2.0rc1"))).toBe(true)
    expect(s.keeps("attrs", v("21.1"))).toBe(true)
    expect(s.keeps("attrs", v("21.2"))).toBe(false)
    expect(s.keeps("attrs", v("24.0"))).toBe(false)
    expect(s.keeps("attrs", v("23.1.0"))).toBe(false)
    expect(s.keeps("cairn-test-pkg", v("1.0.dev1"))).toBe(true)
    expect(s.keeps("requests", v("2.0"))).toBe(false)
    expect(s.wantsProject("requests")).toBe(false)
    // An exclude with a specifier covers the pre-releases it is satisfied by.
    expect(select(["attrs"], ["attrs>=22"]).keeps("attrs", v("23.1.0rc1"))).toBe(false)
  })

  it("prereleases: false drops every pre-release and development release", () => {
    const s = select(["attrs"], undefined, false)
    expect(s.keeps("attrs", v("1.0"))).toBe(true)
    expect(s.keeps("attrs", v("1.0.post1"))).toBe(true)
    expect(s.keeps("attrs", v("1.1rc1"))).toBe(false)
    expect(s.keeps("attrs", v("1.1.dev0"))).toBe(false)
  })

  it("names the bad entry of includes or excludes", () => {
    const r = compileSelection({ includes: ["attrs"], excludes: ["ok", "attrs[tests]"] })
    expect(Either.isLeft(r) && r.left.message).toMatch(/^excludes\[1\]: "attrs\[tests\]" is not a requirement.*extras/)
  })

  it("adding an include never drops a file, adding an exclude never adds one (generated)", () => {
    const requirement = fc.tuple(fc.constantFrom("attrs", "Attrs", "django", "cairn.test-pkg"), fc.constantFrom("", ">=1", "<2", "==1.*", "!=1.5", "~=1.2", ">1.0rc1"))
      .map(([n, s]) => `${n}${s}`)
    const candidate = fc.tuple(fc.constantFrom("attrs", "django", "cairn-test-pkg", "other"), fc.constantFrom("0.9", "1.0", "1.2rc1", "1.5", "1.5+local", "2.0", "2.0.dev1"))
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 3 }), fc.array(requirement, { maxLength: 3 }), requirement, candidate, (inc, exc, extra, [p, ver]) => {
        const version = v(ver)
        const base = select(inc, exc).keeps(p, version)
        if (inc.length > 0 && base) expect(select([...inc, extra], exc).keeps(p, version)).toBe(true)
        if (!base) expect(select(inc, [...exc, extra]).keeps(p, version)).toBe(false)
        // The model: some include (or none at all) and no exclude.
        const matches = (r: string) => {
          const q = req(r)
          return q.project === normalizeProjectName(p) && (q.specifier === undefined || q.specifier.satisfiedBy(version))
        }
        expect(base).toBe((inc.length === 0 || inc.some(matches)) && !exc.some(matches))
      })
    )
  })
})
