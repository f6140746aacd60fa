/**
 * PEP 440 versions and version specifiers (https://peps.python.org/pep-0440/), as the python
 * plugin needs them: parse and normalise a version, order versions, and test versions against a
 * specifier set such as `>=22,<24`, `~=2.2`, `==1.*` or `===foobar`.
 *
 * Versions come from `@renovatebot/pep440` (its parser and its ordering, a port of Python's
 * `packaging`). Its specifier matching (`satisfies`) is not used: it departs from PEP 440 where it
 * matters to a package index (`==1.0+abc` matches `1.0+def`; `>1.0.post1` refuses `1.0.post2`;
 * `<1.0rc1` refuses `1.0b1`; pre-releases are allowed clause by clause instead of for the whole
 * set). The clauses are therefore parsed and evaluated here, operator by operator as the PEP
 * describes them and as `packaging` (the reference implementation pip uses) evaluates them;
 * test/python-pep440.test.ts compares the two on generated versions and specifiers.
 *
 * Two more departures from the library, both on the side of refusing:
 * - its normalised form joins local segments with "," (`1.0+abc,5`); `normalized` is built here;
 * - it keeps numbers as JavaScript numbers, so a component above 2^53 - 1 would silently compare
 *   equal to a neighbour. Such versions are refused as invalid (Python would accept them; no real
 *   project uses a 16-digit version component).
 *
 * Pre-releases. `satisfiedBy` is the clauses alone, pre-releases included. `contains` and `filter`
 * add PEP 440's "pre-releases are excluded unless asked for": a set asks for them when one of its
 * clauses other than `!=` and `==X.*` names a pre-release (`>=1.0b1`); `filter` also takes the
 * pre-releases when no final release matches ("the only available version that satisfies the
 * specifier is a pre-release").
 *
 * Pure functions; parsing answers an `Either` whose error message names the offending text.
 */
import { compare as libCompare, explain as libExplain } from "@renovatebot/pep440"
import { Data, Either } from "effect"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const MAX_QUOTED = 120

/** JSON-quoted and truncated: the text may be anything a remote or a user sent. */
export const quoteText = (s: string): string =>
  JSON.stringify(s.length > MAX_QUOTED ? `${s.slice(0, MAX_QUOTED)}…` : s)

/** Not a PEP 440 version. */
export class InvalidVersion extends Data.TaggedError("InvalidVersion")<{
  readonly value: string
  readonly reason: string
}> {
  override get message() {
    return `${quoteText(this.value)} is not a PEP 440 version: ${this.reason}`
  }
}

/** Not a PEP 440 version specifier (a comma-separated list of clauses such as `>=1.0`). */
export class InvalidSpecifier extends Data.TaggedError("InvalidSpecifier")<{
  readonly value: string
  readonly reason: string
}> {
  override get message() {
    return `${quoteText(this.value)} is not a PEP 440 version specifier: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

export type PreReleaseKind = "a" | "b" | "rc"

export interface Version {
  /** The text as given, without surrounding whitespace (`===` compares this). */
  readonly text: string
  /** PEP 440's normal form: `1.0-1` → `1.0.post1`, `V1.0RC1` → `1.0rc1`, `1.0+Ubuntu-1` → `1.0+ubuntu.1`. */
  readonly normalized: string
  /** `normalized` without the local label. */
  readonly public: string
  readonly epoch: number
  readonly release: ReadonlyArray<number>
  readonly pre: readonly [PreReleaseKind, number] | undefined
  readonly post: number | undefined
  readonly dev: number | undefined
  /** The normalised local label (`ubuntu.1`), without the `+`. */
  readonly local: string | undefined
  /** A pre-release or a development release (PEP 440 treats both as pre-releases). */
  readonly isPrerelease: boolean
  readonly isPostrelease: boolean
  readonly isDevrelease: boolean
}

/** PEP 440: leading and trailing whitespace "must be silently ignored" (space, \t, \n, \r, \f, \v). */
const trimVersionText = (s: string): string => s.replace(/^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$/g, "")

const render = (
  epoch: number,
  release: ReadonlyArray<number>,
  pre: readonly [string, number] | undefined,
  post: number | undefined,
  dev: number | undefined
): string =>
  `${epoch === 0 ? "" : `${epoch}!`}${release.join(".")}${pre ? `${pre[0]}${pre[1]}` : ""}` +
  `${post === undefined ? "" : `.post${post}`}${dev === undefined ? "" : `.dev${dev}`}`

const DIGITS = /^[0-9]+$/

/** What the library's `explain` returns (its declarations type `post` and `dev` as arrays). */
interface Explained {
  readonly epoch: number
  readonly release: ReadonlyArray<number>
  /** Letter already normalised: "a", "b" or "rc". */
  readonly pre: readonly [string, number] | null
  readonly post: number | null
  readonly dev: number | null
}

/** Parse a version (surrounding whitespace ignored). */
export const parseVersion = (input: string): Either.Either<Version, InvalidVersion> => {
  const text = trimVersionText(input)
  const fail = (reason: string) => Either.left(new InvalidVersion({ value: input, reason }))
  if (text === "") return fail("empty")
  // The library's pattern is case-insensitive and anchored; it does not trim.
  const x = libExplain(text) as unknown as Explained | null
  if (x === null) return fail("does not follow the scheme [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]")
  const pre = x.pre
  const numbers = [x.epoch, ...x.release, ...(pre ? [pre[1]] : []), ...(x.post === null ? [] : [x.post]),
    ...(x.dev === null ? [] : [x.dev])]
  // The local label is read here, not from the library, which turns segments such as "1e5" or
  // "0x1f" into numbers (they are letters-and-digits segments, compared as text).
  const plus = text.indexOf("+")
  const localParts = plus < 0 ? [] : text.slice(plus + 1).toLowerCase().split(/[-_.]/)
  if (!numbers.every(Number.isSafeInteger) || localParts.some((p) => DIGITS.test(p) && !Number.isSafeInteger(Number(p)))) {
    return fail("a number in it is larger than 2^53 - 1")
  }
  const post = x.post ?? undefined
  const dev = x.dev ?? undefined
  const preKind = pre ? ([pre[0] as PreReleaseKind, pre[1]] as const) : undefined
  const publicForm = render(x.epoch, x.release, preKind, post, dev)
  // Numeric local segments are normalised as integers ("007" → "7"), as `packaging` does.
  const local = plus < 0 ? undefined : localParts.map((p) => DIGITS.test(p) ? String(Number(p)) : p).join(".")
  return Either.right({
    text,
    normalized: local === undefined ? publicForm : `${publicForm}+${local}`,
    public: publicForm,
    epoch: x.epoch,
    release: x.release,
    pre: preKind,
    post,
    dev,
    local,
    isPrerelease: preKind !== undefined || dev !== undefined,
    isPostrelease: post !== undefined,
    isDevrelease: dev !== undefined
  })
}

export const isValidVersion = (s: string): boolean => Either.isRight(parseVersion(s))

/** The normal form of a version, or undefined if it is not one. */
export const normalizeVersion = (s: string): string | undefined =>
  Either.getOrUndefined(Either.map(parseVersion(s), (v) => v.normalized))

/**
 * PEP 440's order of local labels: segment by segment, a numeric segment (compared as a number)
 * after any letters-and-digits one (compared as text); a label that is a prefix of another sorts
 * first, and no label sorts before any label.
 */
const compareLocal = (a: string | undefined, b: string | undefined): number => {
  if (a === b) return 0
  if (a === undefined) return -1
  if (b === undefined) return 1
  const as = a.split(".")
  const bs = b.split(".")
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    const x = as[i]!
    const y = bs[i]!
    const xn = DIGITS.test(x)
    const yn = DIGITS.test(y)
    const c = xn && yn ? Number(x) - Number(y) : xn ? 1 : yn ? -1 : x < y ? -1 : x > y ? 1 : 0
    if (c !== 0) return c
  }
  return as.length - bs.length
}

/** PEP 440 order: negative when `a` sorts before `b`, 0 when they are the same version (`1.0` = `1.0.0`). */
export const compareVersions = (a: Version, b: Version): number => {
  const c = libCompare(a.public, b.public) || compareLocal(a.local, b.local)
  return c < 0 ? -1 : c > 0 ? 1 : 0
}

export const versionsEqual = (a: Version, b: Version): boolean => compareVersions(a, b) === 0

/**
 * Two version strings name the same version: PEP 440 equality when both parse (`1.0` and
 * `1.0.0`, `1.0-1` and `1.0.post1`), the exact string otherwise.
 */
export const sameVersion = (a: string, b: string): boolean => {
  const va = parseVersion(a)
  const vb = parseVersion(b)
  return Either.isRight(va) && Either.isRight(vb) ? versionsEqual(va.right, vb.right) : a === b
}

const unsafe = (s: string): Version => Either.getOrThrow(parseVersion(s))

// ---------------------------------------------------------------------------------------------
// Specifiers
// ---------------------------------------------------------------------------------------------

export type Operator = "~=" | "==" | "!=" | "<=" | ">=" | "<" | ">" | "==="

/** One clause of a specifier set. */
export type Clause =
  | { readonly operator: Exclude<Operator, "===">; readonly version: Version; readonly wildcard: false }
  /** `==X.*` / `!=X.*`: only an epoch and a release, no pre/post/dev/local. */
  | {
    readonly operator: "==" | "!="
    readonly epoch: number
    readonly release: ReadonlyArray<number>
    readonly wildcard: true
  }
  /** Arbitrary equality: a case-insensitive string comparison, no PEP 440 semantics. */
  | { readonly operator: "==="; readonly text: string; readonly wildcard: false }

const CLAUSE = /^\s*(===|~=|==|!=|<=|>=|<|>)\s*(.*?)\s*$/s
const WILDCARD = /^v?(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*)\.\*$/i

const clauseText = (c: Clause): string =>
  c.operator === "===" ? `===${c.text}` : c.wildcard
  ? `${c.operator}${c.epoch === 0 ? "" : `${c.epoch}!`}${c.release.join(".")}.*`
  : `${c.operator}${c.version.normalized}`

const parseClause = (raw: string, whole: string): Either.Either<Clause, InvalidSpecifier> => {
  const fail = (reason: string) => Either.left(new InvalidSpecifier({ value: whole, reason }))
  const m = CLAUSE.exec(raw)
  if (m === null) {
    return raw.trim() === "" ? fail("empty clause") : fail(`${quoteText(raw.trim())} does not start with one of ~= == != <= >= < > ===`)
  }
  const operator = m[1] as Operator
  const rest = m[2]!
  if (rest === "") return fail(`no version after ${operator}`)
  if (operator === "===") {
    // As in `packaging`: anything but whitespace, ";" (markers) and ")" (parenthesised requirements).
    if (/[\s;)]/.test(rest)) return fail(`${quoteText(rest)} contains whitespace, ";" or ")"`)
    return Either.right({ operator, text: rest, wildcard: false })
  }
  if (rest.endsWith(".*")) {
    if (operator !== "==" && operator !== "!=") return fail(`a ".*" prefix match is only allowed with == and != (${quoteText(raw.trim())})`)
    const w = WILDCARD.exec(rest)
    if (w === null) return fail(`${quoteText(rest)}: a ".*" prefix match takes a release only (N.N.*, no pre, post, dev or local part)`)
    const epoch = Number(w[1] ?? "0")
    const release = w[2]!.split(".").map(Number)
    if (!Number.isSafeInteger(epoch) || !release.every(Number.isSafeInteger)) return fail(`a number in ${quoteText(rest)} is larger than 2^53 - 1`)
    return Either.right({ operator, epoch, release, wildcard: true })
  }
  const parsed = parseVersion(rest)
  if (Either.isLeft(parsed)) return fail(parsed.left.message)
  const version = parsed.right
  if (version.local !== undefined && operator !== "==" && operator !== "!=") {
    return fail(`a local version label (+${version.local}) is only allowed with == and !=`)
  }
  if (operator === "~=" && version.release.length < 2) return fail(`~= needs at least two release numbers (~=${version.normalized} is not allowed)`)
  return Either.right({ operator, version, wildcard: false })
}

/** The release of `v`, padded with zeros to `n` numbers, starts with `prefix` (same epoch). */
const prefixMatch = (v: Version, epoch: number, prefix: ReadonlyArray<number>): boolean => {
  if (v.epoch !== epoch) return false
  for (let i = 0; i < prefix.length; i++) {
    if ((v.release[i] ?? 0) !== prefix[i]) return false
  }
  return true
}

const publicOf = (v: Version): Version => v.local === undefined ? v : unsafe(v.public)

/** The clause alone, pre-releases included (PEP 440's operator semantics). */
const clauseMatches = (c: Clause, v: Version): boolean => {
  if (c.operator === "===") return v.text.toLowerCase() === c.text.toLowerCase()
  if (c.wildcard) {
    const m = prefixMatch(v, c.epoch, c.release)
    return c.operator === "==" ? m : !m
  }
  const spec = c.version
  switch (c.operator) {
    case "==":
    case "!=": {
      // A public spec ignores the candidate's local label; a local spec compares it too.
      const m = compareVersions(spec.local === undefined ? publicOf(v) : v, spec) === 0
      return c.operator === "==" ? m : !m
    }
    case "<=":
      return compareVersions(publicOf(v), spec) <= 0
    case ">=":
      return compareVersions(publicOf(v), spec) >= 0
    case "<": {
      if (compareVersions(v, spec) >= 0) return false
      // "<V MUST NOT allow a pre-release of the specified version unless the specified version
      // is itself a pre-release": V.dev0 is the earliest pre-release of V.
      if (!spec.isPrerelease && v.isPrerelease) {
        return compareVersions(v, unsafe(`${spec.public}.dev0`)) < 0
      }
      return true
    }
    case ">": {
      if (compareVersions(v, spec) <= 0) return false
      // ">V MUST NOT allow a post-release of the given version unless V itself is a post release".
      if (!spec.isPostrelease && v.isPostrelease) {
        const base = unsafe(render(v.epoch, v.release, v.pre, undefined, undefined))
        if (versionsEqual(base, spec)) return false
      }
      // ">V MUST NOT match a local version of the specified version".
      if (v.local !== undefined && versionsEqual(publicOf(v), spec)) return false
      return true
    }
    case "~=":
      // ~=V.N is >=V.N, ==V.* (pre, post and dev parts of the spec ignored for the prefix).
      return compareVersions(publicOf(v), spec) >= 0 && prefixMatch(v, spec.epoch, spec.release.slice(0, -1))
  }
}

/** Whether a clause, on its own, asks for pre-releases (as `packaging` decides it). */
const clauseAsksForPrereleases = (c: Clause): boolean => {
  if (c.operator === "!=" || c.wildcard) return false
  if (c.operator === "===") {
    const v = parseVersion(c.text)
    return Either.isRight(v) && v.right.isPrerelease
  }
  return c.version.isPrerelease
}

export interface PrereleaseOption {
  /**
   * true: pre-releases are candidates like any version; false: never; undefined (default):
   * PEP 440's default (see the header comment).
   */
  readonly prereleases?: boolean | undefined
}

/** A parsed specifier set: clauses joined by "and". The empty set matches every version. */
export interface SpecifierSet {
  readonly clauses: ReadonlyArray<Clause>
  /** The normalised text (`>=1.0,<2.0`); the empty string for the empty set. */
  readonly text: string
  /** One of its clauses names a pre-release, so the set asks for pre-releases by default. */
  readonly asksForPrereleases: boolean
  /**
   * Every clause matches, pre-releases included. A string that is not a PEP 440 version only
   * matches a set made entirely of `===` clauses that it equals.
   */
  readonly satisfiedBy: (version: Version | string) => boolean
  /** `satisfiedBy`, then PEP 440's exclusion of pre-releases for a single candidate. */
  readonly contains: (version: Version, options?: PrereleaseOption) => boolean
  /**
   * The versions that satisfy the set, in the given order, with PEP 440's handling of
   * pre-releases over the whole list: excluded, unless asked for or unless no final release
   * satisfies the set.
   */
  readonly filter: <V extends Version>(versions: Iterable<V>, options?: PrereleaseOption) => Array<V>
}

const makeSet = (clauses: ReadonlyArray<Clause>): SpecifierSet => {
  const asksForPrereleases = clauses.some(clauseAsksForPrereleases)
  const satisfiedBy = (version: Version | string): boolean => {
    if (typeof version === "string") {
      const parsed = parseVersion(version)
      if (Either.isRight(parsed)) return satisfiedBy(parsed.right)
      const text = trimVersionText(version).toLowerCase()
      return clauses.every((c) => c.operator === "===" && c.text.toLowerCase() === text)
    }
    return clauses.every((c) => clauseMatches(c, version))
  }
  return {
    clauses,
    text: clauses.map(clauseText).join(","),
    asksForPrereleases,
    satisfiedBy,
    contains: (version, options) =>
      satisfiedBy(version) && (!version.isPrerelease || (options?.prereleases ?? asksForPrereleases)),
    filter: (versions, options) => {
      const matching = [...versions].filter((v) => satisfiedBy(v))
      const allow = options?.prereleases ?? (asksForPrereleases ? true : undefined)
      if (allow === true) return matching
      const finals = matching.filter((v) => !v.isPrerelease)
      return allow === false || finals.length > 0 ? finals : matching
    }
  }
}

/** The empty specifier set: every version (pre-releases as PEP 440's default says). */
export const anyVersion: SpecifierSet = makeSet([])

/**
 * Parse a specifier set: clauses separated by commas, whitespace allowed around operators and
 * commas (`">= 1.0, < 2"`). The empty (or blank) string is the empty set.
 */
export const parseSpecifierSet = (text: string): Either.Either<SpecifierSet, InvalidSpecifier> => {
  if (text.trim() === "") return Either.right(anyVersion)
  const clauses: Array<Clause> = []
  for (const raw of text.split(",")) {
    const c = parseClause(raw, text)
    if (Either.isLeft(c)) return Either.left(c.left)
    clauses.push(c.right)
  }
  return Either.right(makeSet(clauses))
}
