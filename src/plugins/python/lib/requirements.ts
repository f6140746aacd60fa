/**
 * Requirements as a python remote's `includes` and `excludes` write them, and the rule that picks
 * the files a sync keeps.
 *
 * A requirement is a project name with an optional PEP 440 specifier set, in PEP 508's syntax:
 * `attrs`, `attrs==23.1.0`, `attrs >= 22, < 24`, `attrs (>=22,<24)`. The rest of PEP 508 is refused
 * with a sentence saying why, because it means nothing for choosing files to mirror and would
 * mislead if silently dropped: extras (`attrs[tests]` selects optional dependencies, and a remote
 * follows no dependencies), environment markers (`attrs; python_version < "3.8"` — a marker is
 * about the environment of an installation, a file has none), direct references (`attrs @ URL`).
 *
 * The selection rule. A file (its project and version) is kept when
 *   - some include names its project and, if it has a specifier, the version satisfies it — or
 *     there are no includes (missing or empty): the whole index is mirrored; and
 *   - no exclude names its project with, if it has one, a specifier the version satisfies.
 * Specifiers are applied clause by clause to each version with pre-releases counted as ordinary
 * versions (`satisfiedBy`): a mirror selects what exists, it does not resolve an installation.
 * PEP 440's default exclusion of pre-releases is an installer's choice of what to install, which
 * pip makes itself against the mirror; applied here it would make `attrs>=22` in `excludes` let
 * `23.1.0rc1` through. `prereleases: false` drops every pre-release and development release.
 *
 * Files whose version is not PEP 440 never reach this rule: they are not distributions the plugin
 * handles (see names.ts), so the index reader reports them and the sync skips them.
 */
import { Data, Either } from "effect"
import { parseSpecifierSet, quoteText, type SpecifierSet, type Version } from "./pep440.js"
import { normalizeProjectName } from "./names.js"

export class InvalidRequirement extends Data.TaggedError("InvalidRequirement")<{
  readonly value: string
  readonly reason: string
}> {
  override get message() {
    return `${quoteText(this.value)} is not a requirement (a project name with an optional version specifier): ${this.reason}`
  }
}

export interface Requirement {
  /** The text as given. */
  readonly text: string
  /** The project name as written. */
  readonly name: string
  /** PEP 503-normalised. */
  readonly project: string
  /** Undefined when the requirement is the name alone (every version). */
  readonly specifier: SpecifierSet | undefined
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/
const OPERATOR_START = /^[~=!<>]/

export const parseRequirement = (text: string): Either.Either<Requirement, InvalidRequirement> => {
  const fail = (reason: string) => Either.left(new InvalidRequirement({ value: text, reason }))
  const trimmed = text.trim()
  if (trimmed === "") return fail("it is empty")
  const m = NAME.exec(trimmed)
  if (m === null) return fail("it does not start with a project name (letters, digits, \".\", \"_\" and \"-\")")
  const name = m[0]
  let rest = trimmed.slice(name.length).trim()
  if (rest.includes(";")) {
    return fail("environment markers (after \";\") choose dependencies for an environment; a remote selects files: remove the marker")
  }
  if (rest.startsWith("[")) {
    return fail("extras (\"[...]\") select optional dependencies, and a remote follows no dependencies: write the project name alone")
  }
  if (rest.startsWith("@")) return fail("a direct URL reference (\"@ ...\") names no project on an index")
  if (rest.startsWith("(")) {
    if (!rest.endsWith(")")) return fail("an opening \"(\" without a closing \")\"")
    rest = rest.slice(1, -1).trim()
    if (rest === "") return fail("empty parentheses")
  }
  if (rest === "") return Either.right({ text, name, project: normalizeProjectName(name), specifier: undefined })
  if (!OPERATOR_START.test(rest)) {
    return fail(`after the name ${quoteText(name)} comes ${quoteText(rest)}, not a version specifier such as "==1.0" or ">=1,<2"`)
  }
  const specifier = parseSpecifierSet(rest)
  if (Either.isLeft(specifier)) return fail(specifier.left.message)
  return Either.right({ text, name, project: normalizeProjectName(name), specifier: specifier.right })
}

/** The requirement names this project and the version satisfies its specifier (pre-releases included). */
export const requirementMatches = (r: Requirement, project: string, version: Version): boolean =>
  r.project === normalizeProjectName(project) && (r.specifier === undefined || r.specifier.satisfiedBy(version))

/** A bad entry of `includes` or `excludes`, with where it is. */
export class InvalidSelection extends Data.TaggedError("InvalidSelection")<{
  readonly field: "includes" | "excludes"
  readonly index: number
  readonly cause: InvalidRequirement
}> {
  override get message() {
    return `${this.field}[${this.index}]: ${this.cause.message}`
  }
}

export interface SelectionInput {
  readonly includes?: ReadonlyArray<string> | undefined
  readonly excludes?: ReadonlyArray<string> | undefined
  /** false: keep no pre-release or development release. Default true. */
  readonly prereleases?: boolean | undefined
}

export interface Selection {
  /**
   * The normalised projects the includes name, sorted, without duplicates; undefined when there
   * are no includes (every project of the index).
   */
  readonly projects: ReadonlyArray<string> | undefined
  /**
   * The project may have files to keep: the includes (if any) name it and no exclude names it
   * without a specifier. A sync need not read the page of a project for which this is false.
   */
  readonly wantsProject: (project: string) => boolean
  /** The rule of the header comment. */
  readonly keeps: (project: string, version: Version) => boolean
}

const compileList = (
  field: "includes" | "excludes",
  list: ReadonlyArray<string> | undefined
): Either.Either<Array<Requirement>, InvalidSelection> => {
  const out: Array<Requirement> = []
  for (const [index, text] of (list ?? []).entries()) {
    const r = parseRequirement(text)
    if (Either.isLeft(r)) return Either.left(new InvalidSelection({ field, index, cause: r.left }))
    out.push(r.right)
  }
  return Either.right(out)
}

export const compileSelection = (input: SelectionInput): Either.Either<Selection, InvalidSelection> =>
  Either.gen(function*() {
    const includes = yield* compileList("includes", input.includes)
    const excludes = yield* compileList("excludes", input.excludes)
    const prereleases = input.prereleases ?? true
    const projects = includes.length === 0 ? undefined : [...new Set(includes.map((r) => r.project))].sort()
    const included = projects === undefined ? undefined : new Set(projects)
    const excludedWhole = new Set(excludes.filter((r) => r.specifier === undefined).map((r) => r.project))
    const wantsProject = (project: string) => {
      const p = normalizeProjectName(project)
      return (included === undefined || included.has(p)) && !excludedWhole.has(p)
    }
    return {
      projects,
      wantsProject,
      keeps: (project: string, version: Version) =>
        (prereleases || !version.isPrerelease) &&
        (includes.length === 0 || includes.some((r) => requirementMatches(r, project, version))) &&
        !excludes.some((r) => requirementMatches(r, project, version))
    }
  })
