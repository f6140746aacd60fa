/**
 * Python's `packaging` (what pip uses) as an oracle for the PEP 440 tests: one python3 run answers
 * a batch of questions. It uses the installed `packaging` when there is one, else the copy vendored
 * in pip (every python3 here has pip; pip 23.2's is packaging 21.3, good for versions, too old for
 * specifiers: see `major`).
 */
import { runPython } from "./python.js"

const ORACLE = String.raw`
import json, sys
try:
    import packaging
    from packaging.version import Version, InvalidVersion
    from packaging.specifiers import SpecifierSet, InvalidSpecifier
    from packaging.utils import canonicalize_name, parse_wheel_filename, parse_sdist_filename
    which = "packaging " + packaging.__version__
except ImportError:
    from pip._vendor import packaging
    from pip._vendor.packaging.version import Version, InvalidVersion
    from pip._vendor.packaging.specifiers import SpecifierSet, InvalidSpecifier
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename, parse_sdist_filename
    which = "pip's packaging " + packaging.__version__

q = json.load(sys.stdin)

def version(v):
    try:
        return str(Version(v))
    except InvalidVersion:
        return None

def compare(a, b):
    va, vb = Version(a), Version(b)
    return (va > vb) - (va < vb)

def satisfied(spec, v):
    try:
        s = SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    return s.contains(v, prereleases=True)

def filename(f):
    try:
        if f.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(f)
        else:
            name, version = parse_sdist_filename(f)
        return [name, str(version)]
    except Exception:
        return None

print(json.dumps({
    "which": which,
    "major": int(packaging.__version__.split(".")[0]),
    "versions": [version(v) for v in q.get("versions", [])],
    "compare": [compare(a, b) for a, b in q.get("pairs", [])],
    "specs": [satisfied(s, v) for s, v in q.get("specs", [])],
    "names": [canonicalize_name(n) for n in q.get("names", [])],
    "filenames": [filename(f) for f in q.get("filenames", [])],
}))
`

export interface OracleQuestions {
  /** Normalise each (null: not a version). */
  readonly versions?: ReadonlyArray<string>
  /** Compare valid versions: -1, 0, 1. */
  readonly pairs?: ReadonlyArray<readonly [string, string]>
  /** SpecifierSet(spec).contains(version, prereleases=True) (null: not a specifier). */
  readonly specs?: ReadonlyArray<readonly [string, string]>
  /** canonicalize_name. */
  readonly names?: ReadonlyArray<string>
  /** parse_wheel_filename / parse_sdist_filename: [normalised name, normalised version] or null. */
  readonly filenames?: ReadonlyArray<string>
}

export interface OracleAnswers {
  readonly which: string
  /** packaging's major version: before 22 it falls back to "legacy" specifiers for what PEP 440 refuses. */
  readonly major: number
  readonly versions: ReadonlyArray<string | null>
  readonly compare: ReadonlyArray<number>
  readonly specs: ReadonlyArray<boolean | null>
  readonly names: ReadonlyArray<string>
  readonly filenames: ReadonlyArray<readonly [string, string] | null>
}

export const askPackaging = async (q: OracleQuestions): Promise<OracleAnswers> =>
  JSON.parse(await runPython(ORACLE, JSON.stringify(q))) as OracleAnswers
