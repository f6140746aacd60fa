/**
 * Project names and distribution file names.
 *
 * - Names: PEP 508's rule for a valid project name, and PEP 503's normalisation (runs of `-`, `_`
 *   and `.` become one `-`, lowercase), which is how a project is looked up and compared:
 *   `Cairn_Test.Pkg`, `cairn-test-pkg` and `CAIRN.TEST_PKG` are one project.
 * - File names: a wheel is `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl` (the binary
 *   distribution format, PEP 427); an sdist is `{name}-{version}.tar.gz` (PEP 625) or, as older
 *   uploads are, `.zip`. The rules follow `packaging.utils.parse_wheel_filename` and
 *   `parse_sdist_filename`: the version must be a PEP 440 version (PEP 440 says tools should
 *   ignore anything else, and pip does), a wheel's name part may hold only letters, digits, `.`
 *   and single `_` (its escaping turns every `-` of the name into `_`). Anything else (eggs,
 *   `.exe` installers, `.tar.bz2` sdists) is not a distribution this plugin handles.
 *
 * A legacy sdist name is ambiguous: in `foo-bar-1.0-1.tar.gz` the name may end at any `-`. Given
 * the project the file was listed under, the split is the one whose name part normalises to it
 * (what pip does); without it, the version is what follows the last `-` (what `packaging` does).
 *
 * Every file name is also checked to be safe to store and serve as one path segment
 * (`isSafeFilename`) before anything else is done with it.
 */
import { Data, Either } from "effect"
import { parseVersion, quoteText, type Version } from "./pep440.js"

// ---------------------------------------------------------------------------------------------
// Project names
// ---------------------------------------------------------------------------------------------

/** PEP 508: letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit. */
const VALID_NAME = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$/

export const isValidProjectName = (name: string): boolean => VALID_NAME.test(name)

/** PEP 503: `re.sub(r"[-_.]+", "-", name).lower()`. */
export const normalizeProjectName = (name: string): string => name.replace(/[-_.]+/g, "-").toLowerCase()

/** Already in PEP 503's normal form (and valid). */
export const isNormalizedProjectName = (name: string): boolean =>
  isValidProjectName(name) && normalizeProjectName(name) === name

// ---------------------------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------------------------

/** The longest file name accepted: most file systems' limit for one path segment, in bytes. */
export const MAX_FILENAME_BYTES = 255

/** C0 controls, DEL and C1 controls. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/**
 * Why `filename` is not safe as a single path segment to store and serve, or undefined when it
 * is: non-empty, at most 255 UTF-8 bytes, no `/`, `\`, control characters or lone surrogates,
 * not starting with `.` (so neither `.`, `..` nor hidden files).
 */
export const unsafeFilenameReason = (filename: string): string | undefined => {
  if (filename === "") return "empty file name"
  if (filename.includes("/") || filename.includes("\\")) return "file name contains a slash or a backslash"
  if (filename.startsWith(".")) return "file name starts with \".\""
  if (CONTROL.test(filename)) return "file name contains a control character"
  if (/[\ud800-\udfff]/u.test(filename)) return "file name is not valid Unicode"
  if (Buffer.byteLength(filename, "utf8") > MAX_FILENAME_BYTES) return `file name longer than ${MAX_FILENAME_BYTES} bytes`
  return undefined
}

export const isSafeFilename = (filename: string): boolean => unsafeFilenameReason(filename) === undefined

export type PackageType = "bdist_wheel" | "sdist"

export interface WheelTags {
  /** PEP 427's optional build tag: a number, then anything (`1`, `2abc`). */
  readonly build: { readonly number: number; readonly tag: string } | undefined
  /** Compressed tag sets expanded: `py2.py3` → ["py2", "py3"]. */
  readonly python: ReadonlyArray<string>
  readonly abi: ReadonlyArray<string>
  readonly platform: ReadonlyArray<string>
}

export interface DistributionFilename {
  readonly filename: string
  /** The project, PEP 503-normalised. */
  readonly project: string
  /** The version as the file name writes it (a wheel writes `-` as `_`, e.g. `1.0+ubuntu_1`). */
  readonly version: string
  readonly parsedVersion: Version
  readonly packagetype: PackageType
  /** Wheels only. */
  readonly wheel: WheelTags | undefined
}

export class InvalidFilename extends Data.TaggedError("InvalidFilename")<{
  readonly filename: string
  readonly reason: string
}> {
  override get message() {
    return `${quoteText(this.filename)} is not a wheel or sdist file name: ${this.reason}`
  }
}

const WHEEL_NAME_PART = /^[A-Za-z0-9._]+$/
const TAG = /^[A-Za-z0-9_]+$/
const BUILD = /^([0-9]+)(.*)$/s

/** A PEP 440 version with no surrounding whitespace (which `parseVersion` would forgive). */
const strictVersion = (text: string): Version | undefined => {
  const v = Either.getOrUndefined(parseVersion(text))
  return v !== undefined && v.text === text ? v : undefined
}

const SDIST_SUFFIXES = [".tar.gz", ".zip"] as const

export interface FilenameOptions {
  /**
   * The project the file is listed under (any spelling). The file name must belong to it; for a
   * legacy sdist it decides where the name ends.
   */
  readonly project?: string | undefined
}

const parseWheel = (filename: string, expected: string | undefined): Either.Either<DistributionFilename, InvalidFilename> => {
  const fail = (reason: string) => Either.left(new InvalidFilename({ filename, reason }))
  const parts = filename.slice(0, -".whl".length).split("-")
  if (parts.length !== 5 && parts.length !== 6) {
    return fail(`a wheel name has 5 or 6 dash-separated parts ({name}-{version}(-{build})?-{python}-{abi}-{platform}.whl), this one has ${parts.length}`)
  }
  const [namePart, versionPart] = parts as [string, string]
  if (!WHEEL_NAME_PART.test(namePart) || namePart.includes("__") || !isValidProjectName(namePart)) {
    return fail(`${quoteText(namePart)} is not an escaped project name`)
  }
  const version = strictVersion(versionPart)
  if (version === undefined) return fail(`the version ${quoteText(versionPart)} is not a PEP 440 version`)
  let build: WheelTags["build"] = undefined
  if (parts.length === 6) {
    const b = BUILD.exec(parts[2]!)
    if (b === null) return fail(`the build tag ${quoteText(parts[2]!)} does not start with a digit`)
    const number = Number(b[1])
    if (!Number.isSafeInteger(number)) return fail("the build number is too large")
    build = { number, tag: b[2]! }
  }
  const tagSets = parts.slice(-3).map((t) => t.split("."))
  if (tagSets.some((set) => set.some((t) => !TAG.test(t)))) return fail(`the tags ${quoteText(parts.slice(-3).join("-"))} are not valid`)
  const project = normalizeProjectName(namePart)
  if (expected !== undefined && project !== expected) return fail(`it belongs to project ${quoteText(project)}, not ${quoteText(expected)}`)
  return Either.right({
    filename,
    project,
    version: versionPart,
    parsedVersion: version,
    packagetype: "bdist_wheel",
    wheel: { build, python: tagSets[0]!, abi: tagSets[1]!, platform: tagSets[2]! }
  })
}

const parseSdist = (
  filename: string,
  stem: string,
  expected: string | undefined
): Either.Either<DistributionFilename, InvalidFilename> => {
  const fail = (reason: string) => Either.left(new InvalidFilename({ filename, reason }))
  let cut = -1
  if (expected === undefined) {
    cut = stem.lastIndexOf("-")
    if (cut < 0) return fail("no \"-\" between the name and the version")
  } else {
    for (let i = stem.indexOf("-"); i >= 0; i = stem.indexOf("-", i + 1)) {
      if (normalizeProjectName(stem.slice(0, i)) === expected) {
        cut = i
        break
      }
    }
    if (cut < 0) return fail(`its name does not start with project ${quoteText(expected)} followed by "-"`)
  }
  const namePart = stem.slice(0, cut)
  const versionPart = stem.slice(cut + 1)
  if (!isValidProjectName(namePart)) return fail(`${quoteText(namePart)} is not a valid project name`)
  const version = strictVersion(versionPart)
  if (version === undefined) return fail(`the version ${quoteText(versionPart)} is not a PEP 440 version`)
  return Either.right({
    filename,
    project: normalizeProjectName(namePart),
    version: versionPart,
    parsedVersion: version,
    packagetype: "sdist",
    wheel: undefined
  })
}

/** Parse a wheel or sdist file name into its project, version and package type. */
export const parseDistributionFilename = (
  filename: string,
  options?: FilenameOptions
): Either.Either<DistributionFilename, InvalidFilename> => {
  const unsafe = unsafeFilenameReason(filename)
  if (unsafe !== undefined) return Either.left(new InvalidFilename({ filename, reason: unsafe }))
  const expected = options?.project === undefined ? undefined : normalizeProjectName(options.project)
  if (filename.endsWith(".whl")) return parseWheel(filename, expected)
  for (const suffix of SDIST_SUFFIXES) {
    if (filename.endsWith(suffix)) return parseSdist(filename, filename.slice(0, -suffix.length), expected)
  }
  return Either.left(new InvalidFilename({ filename, reason: "it ends neither in .whl, .tar.gz nor .zip" }))
}

/**
 * The escaped name the binary distribution format puts in wheel file names and `.dist-info`
 * directories, and PEP 625 in sdist names: normalised, with `-` written `_`.
 */
export const escapedDistributionName = (name: string): string => normalizeProjectName(name).replace(/-/g, "_")
