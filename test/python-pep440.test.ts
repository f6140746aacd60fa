/**
 * PEP 440 versions and specifiers (src/plugins/python/lib/pep440.ts): the PEP's own examples, and
 * generated versions and specifiers compared with Python's `packaging`, the implementation pip uses.
 */
import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  compareVersions,
  normalizeVersion,
  parseSpecifierSet,
  parseVersion,
  type SpecifierSet,
  type Version
} from "../src/plugins/python/lib/pep440.js"
import { askPackaging } from "./support/python-oracle.js"

const v = (s: string): Version => Either.getOrThrow(parseVersion(s))
const spec = (s: string): SpecifierSet => Either.getOrThrow(parseSpecifierSet(s))
const specError = (s: string): string => {
  const r = parseSpecifierSet(s)
  if (Either.isRight(r)) throw new Error(`${s} parsed`)
  return r.left.message
}

describe("PEP 440 versions: the PEP's examples", () => {
  it("normalises every alternative syntax of the PEP's Normalization section", () => {
    const cases: Array<[string, string]> = [
      ["1.1RC1", "1.1rc1"],
      ["00", "0"],
      ["09000", "9000"],
      ["1.0+foo0100", "1.0+foo0100"],
      ["1.1.a1", "1.1a1"],
      ["1.1-a1", "1.1a1"],
      ["1.0a.1", "1.0a1"],
      ["1.1alpha1", "1.1a1"],
      ["1.1beta2", "1.1b2"],
      ["1.1c3", "1.1rc3"],
      ["1.1pre3", "1.1rc3"],
      ["1.1preview3", "1.1rc3"],
      ["1.2a", "1.2a0"],
      ["1.2-post2", "1.2.post2"],
      ["1.2post2", "1.2.post2"],
      ["1.2.post-2", "1.2.post2"],
      ["1.0-r4", "1.0.post4"],
      ["1.0rev4", "1.0.post4"],
      ["1.2.post", "1.2.post0"],
      ["1.0-1", "1.0.post1"],
      ["1.2-dev2", "1.2.dev2"],
      ["1.2dev2", "1.2.dev2"],
      ["1.2.dev", "1.2.dev0"],
      ["1.0+ubuntu-1", "1.0+ubuntu.1"],
      ["1.0+ubuntu_1", "1.0+ubuntu.1"],
      ["1.0+Ubuntu.007", "1.0+ubuntu.7"],
      ["v1.0", "1.0"],
      ["V1.0", "1.0"],
      ["1.0\n", "1.0"],
      [" \t1.0\r\f\v", "1.0"],
      ["1!2.0", "1!2.0"],
      ["0!2.0", "2.0"]
    ]
    for (const [input, normal] of cases) expect(normalizeVersion(input), input).toBe(normal)
  })

  it("refuses what the scheme does not allow, naming the text", () => {
    for (const bad of ["", "1.0-", "1.0.", "a1.0", "1.0+", "1.0+foo..bar", "1.0+-foo", "1,0", "1.0 .1", "one", "1.0a1a2", "1.0.post1.post2"]) {
      const r = parseVersion(bad)
      expect(Either.isLeft(r), bad).toBe(true)
      if (Either.isLeft(r)) expect(r.left.message).toContain(JSON.stringify(bad))
    }
  })

  it("refuses a number beyond 2^53 - 1 instead of comparing it wrongly", () => {
    expect(Either.isLeft(parseVersion("1.9007199254740993"))).toBe(true)
    expect(Either.isLeft(parseVersion("1.0+9007199254740993"))).toBe(true)
    expect(normalizeVersion("1.9007199254740991")).toBe("1.9007199254740991")
  })

  const sortsAs = (ordered: ReadonlyArray<string>) => {
    const shuffled = [...ordered].reverse()
    shuffled.push(shuffled.shift()!)
    expect(shuffled.map(v).sort(compareVersions).map((x) => x.text)).toEqual(ordered)
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareVersions(v(ordered[i]!), v(ordered[i + 1]!)), `${ordered[i]} < ${ordered[i + 1]}`).toBe(-1)
      expect(compareVersions(v(ordered[i + 1]!), v(ordered[i]!))).toBe(1)
    }
  }

  it("orders the summary example of every combination of suffixes", () =>
    sortsAs([
      "1.dev0", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2",
      "1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7",
      "1.0+5", "1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1"
    ]))

  it("orders the release-segment, pre-release and developmental-release examples", () => {
    sortsAs(["0.9", "0.9.1", "0.9.2", "0.9.10", "0.9.11", "1.0", "1.0.1", "1.1", "2.0", "2.0.1"])
    sortsAs(["0.9", "1.0a1", "1.0a2", "1.0b1", "1.0rc1", "1.0", "1.1a1"])
    sortsAs(["0.9", "1.0.dev1", "1.0.dev2", "1.0.dev3", "1.0.dev4", "1.0c1", "1.0c2", "1.0", "1.0.post1", "1.1.dev1"])
    sortsAs(["2012.1", "2012.2", "2012.3", "2012.15", "2013.1", "2013.2"])
  })

  it("orders epochs first", () => sortsAs(["1.0", "1.1", "2.0", "2013.10", "2014.04", "1!1.0", "1!1.1", "1!2.0"]))

  it("treats X.Y and X.Y.0 as the same release, and c as rc", () => {
    expect(compareVersions(v("1.1"), v("1.1.0"))).toBe(0)
    expect(compareVersions(v("1.1"), v("1.1.0.0"))).toBe(0)
    expect(compareVersions(v("1.0c1"), v("1.0rc1"))).toBe(0)
    expect(compareVersions(v("1.0+ABC"), v("1.0+abc"))).toBe(0)
  })

  it("sorts local labels segment by segment, numbers after letters, longer after shorter", () =>
    sortsAs(["1.0", "1.0+1e5", "1.0+a", "1.0+a.b", "1.0+a.1", "1.0+a.2", "1.0+a.10", "1.0+b", "1.0+0", "1.0+2", "1.0+10"]))
})

describe("PEP 440 specifiers: the PEP's examples", () => {
  const matches = (s: string, version: string) => spec(s).satisfiedBy(v(version))

  it("version matching: given 1.1.post1, 1.1a1 and 1.1", () => {
    expect(matches("==1.1", "1.1.post1")).toBe(false)
    expect(matches("==1.1.post1", "1.1.post1")).toBe(true)
    expect(matches("==1.1.*", "1.1.post1")).toBe(true)
    expect(matches("==1.1", "1.1a1")).toBe(false)
    expect(matches("==1.1a1", "1.1a1")).toBe(true)
    expect(spec("==1.1.*").contains(v("1.1a1"))).toBe(false)
    expect(spec("==1.1.*").contains(v("1.1a1"), { prereleases: true })).toBe(true)
    for (const [s, m] of [["==1.1", true], ["==1.1.0", true], ["==1.1.dev1", false], ["==1.1a1", false], ["==1.1.post1", false], ["==1.1.*", true]] as const) {
      expect(matches(s, "1.1"), s).toBe(m)
    }
  })

  it("version exclusion: given 1.1.post1", () => {
    expect(matches("!=1.1", "1.1.post1")).toBe(true)
    expect(matches("!=1.1.post1", "1.1.post1")).toBe(false)
    expect(matches("!=1.1.*", "1.1.post1")).toBe(false)
  })

  it("prefix matching compares numbers, pads with zeros, ignores local labels", () => {
    expect(matches("==1.1.*", "1.10")).toBe(false)
    expect(matches("==1.0.*", "1")).toBe(true)
    expect(matches("==1.*", "1.0+local")).toBe(true)
    expect(matches("==1.*", "2.0")).toBe(false)
    expect(matches("==1!1.*", "1.1")).toBe(false)
    expect(matches("==1!1.*", "1!1.2")).toBe(true)
    expect(specError("==1.0.dev1.*")).toContain("prefix match takes a release only")
    expect(specError("==1.0+foo1.*")).toContain("prefix match takes a release only")
    expect(specError(">=1.*")).toContain("only allowed with == and !=")
  })

  it("local versions: a public spec ignores the candidate's label, a local spec compares it", () => {
    expect(matches("==1.0", "1.0+downstream1")).toBe(true)
    expect(matches("==1.0+abc", "1.0+abc")).toBe(true)
    expect(matches("==1.0+abc", "1.0+def")).toBe(false)
    expect(matches("==1.0+abc", "1.0")).toBe(false)
    expect(matches("!=1.0", "1.0+x")).toBe(false)
    expect(matches(">=1.0", "1.0+x")).toBe(true)
    expect(matches("<=1.0", "1.0+x")).toBe(true)
    for (const op of ["<", ">", "<=", ">=", "~="]) expect(specError(`${op}1.0+x`)).toContain("local version label")
  })

  it("exclusive ordered comparison: the PEP's >1.7, >1.7.post2 and <V examples", () => {
    expect(matches(">1.7", "1.7.1")).toBe(true)
    expect(matches(">1.7", "1.7.0.post1")).toBe(false)
    expect(matches(">1.7.post2", "1.7.1")).toBe(true)
    expect(matches(">1.7.post2", "1.7.0.post3")).toBe(true)
    expect(matches(">1.7.post2", "1.7.0")).toBe(false)
    expect(matches(">1.7", "1.7+local")).toBe(false)
    expect(matches(">1.7a1", "1.7a1+local")).toBe(false)
    expect(matches(">1.7a1", "1.7a2+local")).toBe(true)
    expect(matches("<1.7", "1.7rc1")).toBe(false)
    expect(matches("<1.7", "1.7.dev0")).toBe(false)
    expect(matches("<1.7", "1.6.9rc1")).toBe(true)
    expect(matches("<1.7rc1", "1.7b1")).toBe(true)
    expect(matches("<1.7.post1", "1.7")).toBe(true)
  })

  it("compatible release: each ~= of the PEP equals its pair of clauses", () => {
    const pairs: Array<[string, string]> = [
      ["~=2.2", ">=2.2,==2.*"],
      ["~=1.4.5", ">=1.4.5,==1.4.*"],
      ["~=2.2.post3", ">=2.2.post3,==2.*"],
      ["~=1.4.5a4", ">=1.4.5a4,==1.4.*"],
      ["~=2.2.0", ">=2.2.0,==2.2.*"],
      ["~=1.4.5.0", ">=1.4.5.0,==1.4.5.*"],
      ["~=1!2.2", ">=1!2.2,==1!2.*"]
    ]
    const candidates = ["1.4.4", "1.4.5a3", "1.4.5a4", "1.4.5", "1.4.5.1", "1.4.6", "1.5", "2.1", "2.2", "2.2.post2",
      "2.2.post3", "2.2.1", "2.3", "2.9.9", "3.0", "3.0a1", "1!2.2", "1!2.5", "1!3.0"]
    for (const [compat, pair] of pairs) {
      for (const c of candidates) expect(matches(compat, c), `${c} in ${compat}`).toBe(matches(pair, c))
    }
    expect(specError("~=1")).toContain("at least two release numbers")
  })

  it("the Examples section", () => {
    expect(matches("~=3.1", "3.1")).toBe(true)
    expect(matches("~=3.1", "3.9.9")).toBe(true)
    expect(matches("~=3.1", "4.0")).toBe(false)
    expect(matches("~=3.1.2", "3.1.2")).toBe(true)
    expect(matches("~=3.1.2", "3.1.9")).toBe(true)
    expect(matches("~=3.1.2", "3.2.0")).toBe(false)
    expect(matches("~=3.1a1", "3.1a1")).toBe(true)
    expect(matches("~=3.1a1", "3.5")).toBe(true)
    expect(matches("~=3.1a1", "4.0")).toBe(false)
    expect(spec("== 3.1").contains(v("3.1.0"))).toBe(true)
    for (const other of ["3.1rc1", "3.1.post1", "3.1.dev1", "3.1.1"]) expect(spec("== 3.1").contains(v(other)), other).toBe(false)
    for (const c of ["3.1", "3.1.5", "3.2", "3.0.9"]) expect(matches("== 3.1.*", c)).toBe(matches("~=3.1.0", c))
    expect(matches("~=3.1.0, != 3.1.3", "3.1.3")).toBe(false)
    expect(matches("~=3.1.0, != 3.1.3", "3.1.4")).toBe(true)
    expect(matches("~=3.1.0, != 3.1.3", "3.2.0")).toBe(false)
  })

  it("arbitrary equality: a case-insensitive comparison of the text, nothing else", () => {
    expect(spec("===foobar").satisfiedBy("foobar")).toBe(true)
    expect(spec("===foobar").satisfiedBy("FooBar")).toBe(true)
    expect(spec("===foobar").satisfiedBy("foobaz")).toBe(false)
    expect(matches("===1.0", "1.0")).toBe(true)
    expect(matches("===1.0", "1.0+downstream1")).toBe(false)
    expect(matches("===1.0", "1.0.0")).toBe(false)
    // A string that is not a version only meets === clauses.
    expect(spec("===foobar,>=1").satisfiedBy("foobar")).toBe(false)
    expect(spec(">=1").satisfiedBy("foobar")).toBe(false)
  })

  it("handling of pre-releases: excluded unless asked for, or the only ones that match", () => {
    const ge1 = spec(">=1.0")
    expect(ge1.asksForPrereleases).toBe(false)
    expect(ge1.contains(v("2.0a1"))).toBe(false)
    expect(ge1.contains(v("2.0a1"), { prereleases: true })).toBe(true)
    expect(ge1.satisfiedBy(v("2.0a1"))).toBe(true)
    expect(ge1.filter([v("1.0"), v("2.0a1"), v("0.9")]).map((x) => x.text)).toEqual(["1.0"])
    expect(ge1.filter([v("2.0a1"), v("0.9"), v("2.0.dev1")]).map((x) => x.text)).toEqual(["2.0a1", "2.0.dev1"])
    expect(ge1.filter([v("2.0a1")], { prereleases: false })).toEqual([])
    expect(ge1.filter([v("1.0"), v("2.0a1")], { prereleases: true }).map((x) => x.text)).toEqual(["1.0", "2.0a1"])
    // A clause naming a pre-release asks for them, for the whole set.
    const asks = spec(">=1.0b1,<3")
    expect(asks.asksForPrereleases).toBe(true)
    expect(asks.contains(v("2.0a1"))).toBe(true)
    expect(asks.filter([v("1.0"), v("2.0a1")]).map((x) => x.text)).toEqual(["1.0", "2.0a1"])
    expect(spec("<2.0a1").asksForPrereleases).toBe(true)
    expect(spec("!=1.0a1").asksForPrereleases).toBe(false)
    expect(spec("==1.*").asksForPrereleases).toBe(false)
    expect(spec("===1.0a1").asksForPrereleases).toBe(true)
    // Post-releases and final releases get no special treatment.
    expect(ge1.contains(v("1.0.post1"))).toBe(true)
    // The empty set: every version, pre-releases as the default says.
    expect(spec("").contains(v("0.0.1"))).toBe(true)
    expect(spec("  ").contains(v("1.0a1"))).toBe(false)
    expect(spec("").filter([v("1.0a1")]).length).toBe(1)
  })

  it("whitespace around operators and commas is allowed; a stray comma or operator is not", () => {
    expect(spec(" >= 1.0 ,  < 2 ").text).toBe(">=1.0,<2")
    expect(specError(">=1.0,")).toContain("empty clause")
    expect(specError("1.0")).toContain("does not start with one of")
    expect(specError("=>1.0")).toContain("does not start with one of")
    expect(specError(">=")).toContain("no version after >=")
    expect(specError(">=1.0a1a2")).toContain("not a PEP 440 version")
    expect(specError("=== 1.0 x")).toContain("whitespace")
  })
})

// ---------------------------------------------------------------------------------------------
// Generated cases against Python's packaging
// ---------------------------------------------------------------------------------------------

const num = fc.oneof(fc.integer({ min: 0, max: 12 }).map(String), fc.constantFrom("00", "01", "007", "10", "2013"))
const sep = fc.constantFrom("", ".", "-", "_")
const cased = (s: string) => fc.constantFrom(s, s.toUpperCase())
const opt = (a: fc.Arbitrary<string>) => fc.oneof(fc.constant(""), a)
const pre = fc.tuple(sep, fc.constantFrom("a", "b", "c", "rc", "alpha", "beta", "pre", "preview").chain(cased), sep, opt(num))
  .map(([a, l, b, n]) => `${a}${l}${n === "" ? "" : b}${n}`)
const post = fc.oneof(
  num.map((n) => `-${n}`),
  fc.tuple(sep, fc.constantFrom("post", "rev", "r").chain(cased), sep, opt(num)).map(([a, l, b, n]) => `${a}${l}${n === "" ? "" : b}${n}`)
)
const dev = fc.tuple(sep, cased("dev"), sep, opt(num)).map(([a, l, b, n]) => `${a}${l}${n === "" ? "" : b}${n}`)
const localSegment = fc.oneof(num, fc.constantFrom("abc", "ubuntu", "g1e5", "1e5", "0x1f", "Z9"))
const local = fc.array(localSegment, { minLength: 1, maxLength: 3 }).chain((segs) =>
  fc.array(fc.constantFrom(".", "-", "_"), { minLength: segs.length - 1, maxLength: segs.length - 1 })
    .map((seps) => "+" + segs.map((s, i) => i === 0 ? s : `${seps[i - 1]}${s}`).join(""))
)
const release = fc.array(num, { minLength: 1, maxLength: 4 }).map((r) => r.join("."))
/** Mostly valid versions in every spelling the PEP allows, and some near misses. */
const versionText = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(opt(fc.constantFrom("v", "V")), opt(num.map((n) => `${n}!`)), release, opt(pre), opt(post), opt(dev), opt(local))
    .map((parts) => parts.join("")) },
  { weight: 1, arbitrary: fc.tuple(release, fc.constantFrom("-", ".", "+", "..", "a1a", "+.x", " x", "!", "-dev-", ".post.1")).map(([r, s]) => `${r}${s}`) }
)

const clause = fc.oneof(
  fc.tuple(fc.constantFrom("~=", "==", "!=", "<=", ">=", "<", ">", "==="), fc.constantFrom("", " "), versionText).map(([op, s, x]) => `${op}${s}${x}`),
  fc.tuple(fc.constantFrom("==", "!=", ">="), release, opt(pre)).map(([op, r, p]) => `${op}${r}${p}.*`)
)
/**
 * `packaging` computes the prefix of a `~=` clause from its version as written, so `~=V1.0.POST1`
 * gets a wrong prefix there ("V1", and "POST1" not seen as a suffix); `~=` clauses are therefore
 * written in normal form for the comparison (their other spellings are parsed like any clause's).
 */
const compatibleInNormalForm = (clauseText: string): string => {
  const m = /^~=\s*(.*)$/s.exec(clauseText)
  return m === null ? clauseText : `~=${normalizeVersion(m[1]!) ?? m[1]}`
}
const specifierText = fc.array(clause.map(compatibleInNormalForm), { minLength: 1, maxLength: 3 }).map((cs) => cs.join(", "))

describe("PEP 440 against Python's packaging (generated)", () => {
  it("parses and normalises versions as packaging does", async () => {
    const seed = Date.now()
    const texts = fc.sample(versionText, { seed, numRuns: 1500 })
    const answers = await askPackaging({ versions: texts })
    texts.forEach((t, i) => {
      expect(normalizeVersion(t) ?? null, `${JSON.stringify(t)} (${answers.which}, seed ${seed})`).toBe(answers.versions[i])
    })
  })

  it("orders versions as packaging does", async () => {
    const seed = Date.now()
    const valid = fc.sample(versionText, { seed, numRuns: 800 }).filter((t) => normalizeVersion(t) !== undefined)
    const pairs = valid.slice(1).map((b, i) => [valid[i]!, b] as const)
    // Near neighbours too: same release, different suffixes, are where orderings go wrong.
    const near = fc.sample(fc.tuple(fc.constantFrom("1.0", "1", "1.0.0"), opt(pre), opt(post), opt(dev), opt(local)), { seed, numRuns: 600 })
      .map((p) => p.join(""))
    const nearPairs = near.slice(1).map((b, i) => [near[i]!, b] as const)
    const all = [...pairs, ...nearPairs]
    const answers = await askPackaging({ pairs: all })
    all.forEach(([a, b], i) => {
      expect(compareVersions(v(a), v(b)), `${a} vs ${b} (${answers.which}, seed ${seed})`).toBe(answers.compare[i])
    })
  })

  it("accepts the specifiers packaging accepts, and matches the versions it matches", async () => {
    const seed = Date.now()
    const specs = fc.sample(specifierText, { seed, numRuns: 700 })
    const candidates = fc.sample(fc.oneof(versionText, fc.tuple(release, opt(pre), opt(post), opt(dev), opt(local)).map((p) => p.join(""))), { seed: seed + 1, numRuns: 3000 })
      .filter((t) => normalizeVersion(t) !== undefined && !/\s/.test(t))
    const questions = specs.flatMap((s, i) => [0, 1, 2, 3].map((k) => [s, candidates[(i * 4 + k) % candidates.length]!] as const))
    // Specifiers built from each candidate hit the equal / not-equal / boundary cases.
    for (const c of candidates.slice(0, 400)) {
      for (const op of ["==", "!=", "<", ">", "<=", ">=", "~=", "==="]) {
        const base = c.replace(/\+.*$/, "")
        questions.push([compatibleInNormalForm(`${op}${base}`), c])
      }
    }
    const answers = await askPackaging({ specs: questions })
    expect(answers.major, `${answers.which} accepts what PEP 440 refuses as "legacy" specifiers: this test needs packaging >= 22 (pip install packaging)`)
      .toBeGreaterThanOrEqual(22)
    questions.forEach(([s, c], i) => {
      const parsed = parseSpecifierSet(s)
      const ours = Either.isLeft(parsed) ? null : parsed.right.satisfiedBy(v(c))
      expect(ours, `${JSON.stringify(s)} with ${c} (${answers.which}, seed ${seed})`).toBe(answers.specs[i])
    })
  })

  it("compareVersions is a total order consistent with normalisation", () => {
    fc.assert(
      fc.property(versionText, versionText, versionText, (a, b, c) => {
        const [x, y, z] = [a, b, c].map((t) => Either.getOrUndefined(parseVersion(t)))
        if (!x || !y || !z) return
        // Antisymmetry by sign (toBe(-0) would fail on Object.is for two equal versions).
        expect(Math.sign(compareVersions(x, y)) + Math.sign(compareVersions(y, x))).toBe(0)
        expect(compareVersions(x, v(x.normalized))).toBe(0)
        expect(normalizeVersion(x.normalized)).toBe(x.normalized)
        if (compareVersions(x, y) <= 0 && compareVersions(y, z) <= 0) expect(compareVersions(x, z)).toBeLessThanOrEqual(0)
      }),
      // Two spellings of one version, always: the case a random draw rarely makes.
      { numRuns: 2000, examples: [["1.0", "1.0.0", "1!0.1"]] }
    )
  })
})
