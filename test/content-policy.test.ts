/**
 * The path and URL policies (src/content/policy): one table of paths, each row saying what every
 * kind of path makes of it, so that a rule changed for one kind shows what it does to the others.
 */
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { basePathProblem, decodeSegments, isSafeRelativePath, relativePathProblem } from "../src/content/policy/paths.js"
import { checkRemoteUrl, checkUrl, RemoteUrlError, resolveRelative } from "../src/content/policy/urls.js"

const OK = undefined

/** [path, as a relative path, as a base path]: undefined = accepted, else the problem's message. */
const PATHS: ReadonlyArray<readonly [string, string | undefined, string | undefined]> = [
  ["a", OK, OK],
  ["a/b/c.txt", OK, OK],
  ["...", OK, OK],
  ["a.b_c~d-e", OK, OK],
  ["v1.0/x86_64", OK, OK],
  ["a b/c,d%e?f:g.txt", OK, "base_path segments may only use letters, digits and . _ ~ -"],
  ["日本/ü", OK, "base_path segments may only use letters, digits and . _ ~ -"],
  ["a/#b", OK, "base_path segments may only use letters, digits and . _ ~ -"],
  ["a/ b", OK, "base_path segments may only use letters, digits and . _ ~ -"],
  ["", "empty relative path", "base_path must have 1 to 256 characters"],
  ["x".repeat(256), OK, OK],
  ["x".repeat(257), OK, "base_path must have 1 to 256 characters"],
  ["x".repeat(1024), OK, "base_path must have 1 to 256 characters"],
  ["x".repeat(1025), "relative path longer than 1024 characters", "base_path must have 1 to 256 characters"],
  ["/a", "relative path starts with \"/\"", "base_path must be relative (no leading '/')"],
  ["/", "relative path starts with \"/\"", "base_path must be relative (no leading '/')"],
  ["a/", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have empty segments ('//' or a trailing '/')"],
  ["a//b", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have empty segments ('//' or a trailing '/')"],
  [".", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have '.' or '..' segments"],
  ["..", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have '.' or '..' segments"],
  ["a/./b", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have '.' or '..' segments"],
  ["a/../../b", "relative path has an empty, \".\" or \"..\" segment", "base_path may not have '.' or '..' segments"],
  ["a\\b", "relative path contains a backslash", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\\..\\..\\b", "relative path contains a backslash", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\u0000b", "relative path contains a control character", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\nb", "relative path contains a control character", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\u007fb", "relative path contains a control character", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\u0085b", "relative path contains a control character", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a\udc00", "relative path is not valid Unicode", "base_path segments may only use letters, digits and . _ ~ -"],
  ["#a", "relative path starts with \"#\" or whitespace", "base_path segments may only use letters, digits and . _ ~ -"],
  [" a", "relative path starts with \"#\" or whitespace", "base_path segments may only use letters, digits and . _ ~ -"],
  ["\ta", "relative path contains a control character", "base_path segments may only use letters, digits and . _ ~ -"],
  ["a%2Fb", OK, "base_path segments may only use letters, digits and . _ ~ -"]
]

/** [request path after /content/, its decoded segments or undefined when refused]. */
const REQUESTS: ReadonlyArray<readonly [string, ReadonlyArray<string> | undefined]> = [
  ["pub/main/a.txt", ["pub", "main", "a.txt"]],
  ["pub/a%20b.txt", ["pub", "a b.txt"]],
  ["pub/%E6%97%A5%E6%9C%AC", ["pub", "日本"]],
  ["pub/%252e%252e", ["pub", "%2e%2e"]],
  ["pub/%23frag", ["pub", "#frag"]],
  ["pub/a\\b", ["pub", "a\\b"]],
  ["pub/%00", ["pub", "\u0000"]],
  ["pub/%2Fetc%2Fpasswd", undefined],
  ["pub%2Fmain/a.txt", undefined],
  ["pub/%2e%2e/x", undefined],
  ["pub/%2E/x", undefined],
  ["pub/../x", undefined],
  ["pub/./x", undefined],
  ["pub//x", undefined],
  ["/pub/x", undefined],
  ["pub/x/", undefined],
  ["", undefined],
  ["pub/%", undefined],
  ["pub/%zz", undefined],
  ["pub/%FF", undefined],
  ["pub/%ED%B0%80", undefined]
]

describe("path policy", () => {
  it.each(PATHS)("%j: relative path %j, base path %j", (path, relative, base) => {
    expect(relativePathProblem(path)).toBe(relative)
    expect(isSafeRelativePath(path)).toBe(relative === undefined)
    expect(basePathProblem(path)).toBe(base)
  })

  it("every accepted base path is also an accepted relative path", () => {
    for (const [path, relative, base] of PATHS) if (base === undefined) expect(relative, path).toBe(undefined)
  })

  it.each(REQUESTS)("request path %j decodes to %j", (path, segments) => {
    expect(decodeSegments(path)).toEqual(segments)
  })
})

/** [URL, accepted, what the refusal says ("" when accepted)]. */
const URLS: ReadonlyArray<readonly [string, boolean, string]> = [
  ["https://example.com/repo/PULP_MANIFEST", true, ""],
  ["http://127.0.0.1:8080/r/", true, ""],
  ["HTTP://EXAMPLE.COM/x", true, ""],
  ["file:///etc/passwd", false, "remote URL must be http: or https:, not file: (file:///etc/passwd)"],
  ["ftp://h/x", false, "remote URL must be http: or https:, not ftp: (ftp://h/x)"],
  ["data:text/plain,hi", false, "remote URL must be http: or https:, not data:"],
  ["javascript:alert(1)", false, "remote URL must be http: or https:, not javascript:"],
  ["not a url", false, "not a valid URL: \"not a url\""],
  ["", false, "not a valid URL: \"\""],
  ["http://u:secret@h/x", false, "remote URL must not contain credentials: http://h/x"],
  ["http://u@h/x", false, "remote URL must not contain credentials: http://h/x"]
]

describe("URL policy", () => {
  it.each(URLS)("%j accepted: %j", (url, accepted, says) => {
    const r = checkRemoteUrl(url)
    expect(Either.isRight(r)).toBe(accepted)
    if (Either.isLeft(r)) {
      expect(r.left).toBeInstanceOf(RemoteUrlError)
      expect(r.left.message).toContain(says)
      expect(r.left.message).not.toContain("secret")
      expect(r.left.url).not.toContain("secret")
    }
  })

  it("checks a parsed URL (a redirect's Location) by the same rules", () => {
    for (const [url, accepted] of URLS) {
      if (!URL.canParse(url)) continue
      expect(Either.isRight(checkUrl(new URL(url))), url).toBe(accepted)
    }
  })

  it("resolves only safe relative paths, and only under the manifest's directory", () => {
    for (const [path, relative] of PATHS) {
      const r = resolveRelative("http://h/r/PULP_MANIFEST", path)
      expect(Either.isRight(r), JSON.stringify(path)).toBe(relative === undefined)
      if (Either.isRight(r)) expect(r.right.href.startsWith("http://h/r/"), r.right.href).toBe(true)
    }
  })
})
