/**
 * PULP_MANIFEST parsing and formatting, and the downloader against a misbehaving fixture upstream.
 */
import { createHash } from "node:crypto"
import { Cause, Data, Effect, Either, Exit, Fiber } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import {
  checkRemoteUrl,
  download,
  DownloadError,
  type DownloadOptions,
  fetchText,
  RemoteUrlError,
  resolveRelative
} from "../src/content/download.js"
import { formatManifest, isSafeRelativePath, ManifestError, parseManifest } from "../src/content/manifest.js"
import { makeFiles, startUpstream, type Upstream } from "./support/upstream.js"

const A = "a".repeat(64)
const B = "B".repeat(64)

const parseError = (text: string): ManifestError => {
  const r = parseManifest(text)
  if (Either.isRight(r)) throw new Error(`expected a ManifestError for ${JSON.stringify(text)}`)
  expect(r.left).toBeInstanceOf(ManifestError)
  return r.left
}

describe("parseManifest", () => {
  it("skips comments and blank lines, accepts CRLF and a BOM, lowercases digests, keeps line numbers", () => {
    const text = `\ufeff# a comment\n\nfoo.txt,${A},12\r\n   \n  # indented comment\ndir/bar.bin,${B},0\n`
    expect(parseManifest(text)).toEqual(
      Either.right([
        { relative_path: "foo.txt", sha256: A, size: 12, line: 3 },
        { relative_path: "dir/bar.bin", sha256: B.toLowerCase(), size: 0, line: 6 }
      ])
    )
    expect(parseManifest("")).toEqual(Either.right([]))
  })

  it("splits on the last two commas: relative paths may contain commas", () => {
    const r = parseManifest(`a,b/c,,d.txt,${A},7\n,x,${A},1\n`)
    expect(Either.getOrThrow(r).map((e) => e.relative_path)).toEqual(["a,b/c,,d.txt", ",x"])
  })

  const malformed: Array<[string, string]> = [
    ["no commas", "sizeless"],
    ["one comma", `foo,${A}`],
    ["short digest", `foo,${"a".repeat(63)},1`],
    ["long digest", `foo,${"a".repeat(65)},1`],
    ["non-hex digest", `foo,${"g".repeat(64)},1`],
    ["empty digest", "foo,,1"],
    ["negative size", `foo,${A},-1`],
    ["fractional size", `foo,${A},1.5`],
    ["exponent size", `foo,${A},1e3`],
    ["empty size", `foo,${A},`],
    ["text size", `foo,${A},big`],
    ["unsafe integer size", `foo,${A},9007199254740993`],
    ["empty path", `,${A},1`],
    ["absolute path", `/etc/passwd,${A},1`],
    ["dot-dot segment", `a/../../b,${A},1`],
    ["bare dot-dot", `..,${A},1`],
    ["dot segment", `./a,${A},1`],
    ["empty segment", `a//b,${A},1`],
    ["trailing slash", `a/,${A},1`],
    ["backslash", `a\\..\\b,${A},1`],
    ["NUL", `a\u0000b,${A},1`],
    ["tab", `a\tb,${A},1`],
    ["DEL", `a\u007fb,${A},1`],
    ["lone surrogate", `a\ud800b,${A},1`],
    ["too long path", `${"x".repeat(1025)},${A},1`]
  ]
  it.each(malformed)("rejects a line with %s, naming its number and content", (_, bad) => {
    const e = parseError(`# header\nok.txt,${A},1\n${bad}\nlater.txt,${A},2\n`)
    expect(e.line).toBe(3)
    expect(e.message).toMatch(/^PULP_MANIFEST line 3: /)
    expect(e.message).toContain(JSON.stringify(bad.length > 200 ? bad.slice(0, 200) : bad).slice(1, -1))
  })

  it("truncates a long line in the message", () => {
    const e = parseError(`${"x".repeat(5000)}\n`)
    expect(e.line).toBe(1)
    expect(e.message.length).toBeLessThan(300)
    expect(e.content.length).toBe(200)
  })

  it("rejects a duplicate relative path, naming both lines", () => {
    const e = parseError(`a.txt,${A},1\nb.txt,${A},1\na.txt,${B},2\n`)
    expect(e.line).toBe(3)
    expect(e.message).toContain("first on line 1")
  })

  it("isSafeRelativePath applies the same rules, plus no leading '#' or whitespace", () => {
    for (const ok of ["a", "a/b/c.rpm", "with space/x", "a,b", "ü/日本語.txt", "x#y", "%41", "a?b", "...", ".hidden", "x".repeat(1024)]) {
      expect(isSafeRelativePath(ok), ok).toBe(true)
    }
    for (const bad of ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/..", "a\\b", "a\nb", "a\rb", "a\u0085b", "#a", " a", "\ta", "x".repeat(1025), "a\udc00"]) {
      expect(isSafeRelativePath(bad), JSON.stringify(bad)).toBe(false)
    }
  })

  it("formats sorted, with a trailing newline, and refuses what it could not read back", () => {
    expect(formatManifest([{ relative_path: "b", sha256: B, size: 2 }, { relative_path: "a", sha256: A, size: 1 }])).toBe(
      `a,${A},1\nb,${B.toLowerCase()},2\n`
    )
    expect(formatManifest([])).toBe("")
    expect(() => formatManifest([{ relative_path: "#a", sha256: A, size: 1 }])).toThrow(ManifestError)
    expect(() => formatManifest([{ relative_path: "a", sha256: "x", size: 1 }])).toThrow(/sha256/)
    expect(() => formatManifest([{ relative_path: "a", sha256: A, size: -1 }])).toThrow(/size/)
    expect(() => formatManifest([{ relative_path: "a", sha256: A, size: 1 }, { relative_path: "a", sha256: A, size: 1 }]))
      .toThrow(/duplicate/)
  })

  it("round-trips exactly: parse(format(entries)) and format(parse(text))", () => {
    const segment = fc
      .string({ unit: fc.constantFrom("a", "Z", "0", ",", " ", "%", "#", "?", ".", "-", "é", "日", "😀"), minLength: 1, maxLength: 8 })
      .filter((s) => s !== "." && s !== "..")
    const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/")).filter(isSafeRelativePath)
    const entry = fc.record({
      relative_path: path,
      sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
      size: fc.nat({ max: Number.MAX_SAFE_INTEGER })
    })
    fc.assert(
      fc.property(fc.uniqueArray(entry, { selector: (e) => e.relative_path, maxLength: 20 }), (entries) => {
        const text = formatManifest(entries)
        const parsed = Either.getOrThrow(parseManifest(text))
        const sorted = [...entries].sort((a, b) => (a.relative_path < b.relative_path ? -1 : 1))
        expect(parsed).toEqual(sorted.map((e, i) => ({ ...e, line: i + 1 })))
        expect(formatManifest(parsed)).toBe(text)
      }),
      { numRuns: 300 }
    )
  })
})

describe("remote URLs", () => {
  it("accepts only http and https, without credentials", () => {
    expect(Either.isRight(checkRemoteUrl("https://example.com/repo/PULP_MANIFEST"))).toBe(true)
    for (const bad of ["file:///etc/passwd", "ftp://h/x", "data:text/plain,hi", "javascript:alert(1)", "not a url", "http://u:secret@h/x"]) {
      const r = checkRemoteUrl(bad)
      expect(Either.isLeft(r), bad).toBe(true)
      if (Either.isLeft(r)) {
        expect(r.left).toBeInstanceOf(RemoteUrlError)
        expect(r.left.message).not.toContain("secret")
      }
    }
  })

  it("resolves relative paths in the manifest's directory, each segment percent-encoded", () => {
    const href = (m: string, p: string) => Either.getOrThrow(resolveRelative(m, p)).href
    expect(href("http://h/repo/PULP_MANIFEST?token=x", "a/b.rpm")).toBe("http://h/repo/a/b.rpm")
    expect(href("http://h/repo/", "x")).toBe("http://h/repo/x")
    expect(href("http://h/PULP_MANIFEST", "a b/c,d%e#f?g:h.txt")).toBe("http://h/a%20b/c%2Cd%25e%23f%3Fg%3Ah.txt")
    expect(href("http://h/r/PULP_MANIFEST", "日本/ü")).toBe("http://h/r/%E6%97%A5%E6%9C%AC/%C3%BC")
    expect(href("http://h/r/PULP_MANIFEST", "...")).toBe("http://h/r/...")
    for (const bad of ["../x", "a/../../x", "/x", "a\\..\\..\\x", "a//b"]) {
      expect(Either.isLeft(resolveRelative("http://h/r/PULP_MANIFEST", bad)), bad).toBe(true)
    }
    expect(Either.isLeft(resolveRelative("file:///r/PULP_MANIFEST", "x"))).toBe(true)
  })
})

class DigestMismatch extends Data.TaggedError("DigestMismatch")<{ readonly message: string }> {}

/** What storage does: hash the body while reading it, compare at the end. */
const hashSink = (sha256: string, seen?: { bytes: number; calls: number }) => (body: AsyncIterable<Uint8Array>) =>
  Effect.tryPromise({
    try: async () => {
      if (seen) seen.calls++
      const h = createHash("sha256")
      let n = 0
      for await (const chunk of body) {
        h.update(chunk)
        n += chunk.byteLength
        if (seen) seen.bytes += chunk.byteLength
      }
      return { sha256: h.digest("hex"), size: n }
    },
    catch: (cause) => new DigestMismatch({ message: `reading failed: ${String(cause)}` })
  }).pipe(
    Effect.filterOrFail(
      (r) => r.sha256 === sha256,
      (r) => new DigestMismatch({ message: `sha256 ${r.sha256}, expected ${sha256}` })
    )
  )

/**
 * Timeouts. A request meant to succeed gets a generous one (a loaded machine may be slow to answer
 * it); a stall the downloader must detect lasts far longer than the timeout that detects it (the
 * fixture's pause ends when the client hangs up), so the outcome never depends on how the
 * machine's speed compares with a sub-second figure.
 */
const HEALTHY_MS = 30_000
const STALL_TIMEOUT_MS = 1_500
const STALL_MS = 600_000
/** Waiting for something the fixture records (bounded by the test's own timeout, not vitest's 1 s default). */
const eventually = { timeout: 60_000 }

const fast: DownloadOptions = { timeoutMs: HEALTHY_MS, retries: 3, maxRedirects: 2, backoffMs: 5, maxBackoffMs: 20 }

describe("download", () => {
  let up: Upstream
  const files = makeFiles(9, { minSize: 0, maxSize: 300_000, seed: 7 })
  const big = "big/file.bin"
  const odd = "odd names/a,b%c#d?e f.txt"
  const bigContent = makeFiles(1, { minSize: 400_000, maxSize: 400_000, seed: 3 })["dir0/file-0.bin"]!
  const all: Record<string, Buffer> = { ...files, [big]: bigContent, [odd]: Buffer.from("odd\n") }

  beforeAll(async () => {
    up = await startUpstream(all, { prefix: "/repo/" })
  })
  afterAll(() => up.close())
  beforeEach(() => {
    up.faults.clear()
    up.requests.clear()
    up.aborted.clear()
  })

  const get = (path: string, opts: Partial<DownloadOptions> = {}, size?: number) => {
    const url = up.fileUrl(path)
    return download(url, { size: size ?? all[path]!.length, sha256: up.sha256(path) }, hashSink(up.sha256(path)), {
      ...fast,
      relativePath: path,
      ...opts
    })
  }
  const failure = async <E>(eff: Effect.Effect<unknown, E>): Promise<E> => Effect.runPromise(Effect.flip(eff))

  it("syncs a whole manifest: fetch, parse, resolve, download, verify", async () => {
    const text = await Effect.runPromise(fetchText(up.url, { timeoutMs: HEALTHY_MS, maxBytes: 1 << 20 }))
    const entries = Either.getOrThrow(parseManifest(text))
    expect(entries.map((e) => e.relative_path).sort()).toEqual([...Object.keys(files), big, odd].sort())
    const results = await Effect.runPromise(
      Effect.forEach(
        entries,
        (e) =>
          Effect.gen(function*() {
            const url = yield* resolveRelative(up.url, e.relative_path)
            return yield* download(url.href, e, hashSink(e.sha256), { ...fast, relativePath: e.relative_path })
          }),
        { concurrency: 4 }
      )
    )
    expect(results.map((r) => r.size)).toEqual(entries.map((e) => e.size))
    expect(up.requests.get(odd)).toBe(1)
  })

  it("retries 5xx, 429, resets, truncated bodies and stalls, then succeeds", async () => {
    const p = big
    const cases: Array<[string, () => void, number]> = [
      ["503", () => up.faults.fail5xx(p, 2), 3],
      ["500", () => up.faults.fail5xx(p, 1, 500), 2],
      ["429", () => up.faults.failStatus(p, 429, 1, "0"), 2],
      ["reset", () => up.faults.reset(p, 2), 3],
      ["truncate", () => up.faults.truncate(p, 3), 4],
      ["stall mid-body", () => up.faults.slow(p, STALL_MS, 1), 2],
      ["slow headers", () => up.faults.delay(p, STALL_MS, 1), 2]
    ]
    for (const [name, inject, requests] of cases) {
      up.faults.clear()
      up.requests.clear()
      inject()
      const seen = { bytes: 0, calls: 0 }
      const r = await Effect.runPromise(
        download(up.fileUrl(p), { size: bigContent.length, sha256: up.sha256(p) }, hashSink(up.sha256(p), seen), {
          ...fast,
          timeoutMs: STALL_TIMEOUT_MS
        })
      )
      expect(r.size, name).toBe(bigContent.length)
      expect(up.requests.get(p), name).toBe(requests)
    }
  })

  it("classifies each injected fault (no retries)", async () => {
    const p = big
    const n = bigContent.length
    const cases: Array<[() => void, string, RegExp]> = [
      [() => up.faults.fail5xx(p, 1), "http", /: HTTP 503$/],
      // A reset may also arrive before the client has read the headers: then the request itself fails.
      [() => up.faults.reset(p, 1), "network", new RegExp(`: (.* after \\d+ of ${n} bytes|.*ECONNRESET.*|other side closed.*)$`)],
      [() => up.faults.truncate(p, 1), "network", new RegExp(`: other side closed .* after ${n / 2} of ${n} bytes$`)],
      [() => up.faults.slow(p, STALL_MS, 1), "timeout", new RegExp(`: no data for ${STALL_TIMEOUT_MS} ms after ${n / 2} bytes$`)],
      [() => up.faults.delay(p, STALL_MS, 1), "timeout", new RegExp(`: no response within ${STALL_TIMEOUT_MS} ms$`)]
    ]
    for (const [inject, reason, message] of cases) {
      up.faults.clear()
      inject()
      const e = await failure(get(p, { retries: 0, timeoutMs: STALL_TIMEOUT_MS }))
      expect(e).toMatchObject({ _tag: "DownloadError", reason, attempts: 1 })
      expect((e as DownloadError).message).toMatch(message)
    }
  })

  it("calls the sink again, with a fresh body, on each attempt that got a body", async () => {
    up.faults.truncate(big, 2)
    up.faults.fail5xx(big, 1)
    const seen = { bytes: 0, calls: 0 }
    await Effect.runPromise(
      download(up.fileUrl(big), { size: bigContent.length, sha256: up.sha256(big) }, hashSink(up.sha256(big), seen), fast)
    )
    // The 503 comes first (the status fault applies before the body faults), then two truncated bodies.
    expect(up.requests.get(big)).toBe(4)
    expect(seen.calls).toBe(3)
    expect(seen.bytes).toBeGreaterThan(bigContent.length)
  })

  it("waits for Retry-After, up to maxBackoffMs", async () => {
    // An hour asked for: only the cap lets the download finish within the test's timeout.
    up.faults.failStatus(big, 429, 1, "3600")
    const started = Date.now()
    await Effect.runPromise(get(big, { maxBackoffMs: 300 }))
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(up.requests.get(big)).toBe(2)
  })

  it("a sink must read the whole body, once", async () => {
    const p = "dir0/file-0.bin"
    const lazy = await Effect.runPromiseExit(
      download(up.fileUrl(p), { size: files[p]!.length, sha256: A }, () => Effect.succeed("skipped"), fast)
    )
    expect(Exit.isFailure(lazy) && Cause.isDie(lazy.cause)).toBe(true)
    const twice = await Effect.runPromiseExit(
      download(up.fileUrl(p), { size: files[p]!.length, sha256: A }, (body) =>
        Effect.sync(() => {
          body[Symbol.asyncIterator]()
          body[Symbol.asyncIterator]()
        }), fast)
    )
    expect(Exit.isFailure(twice) && Cause.pretty(twice.cause)).toMatch(/can be read only once/)
  })

  it("gives up after retries + 1 attempts, naming the file", async () => {
    const p = "dir1/file-1.bin"
    up.faults.fail5xx(p, 100)
    const e = await failure(get(p))
    expect(e).toBeInstanceOf(DownloadError)
    const d = e as DownloadError
    expect(d.message).toBe(`GET ${up.fileUrl(p)} failed after 4 attempts: HTTP 503`)
    expect(d).toMatchObject({ attempts: 4, reason: "http", status: 503, relativePath: p, url: up.fileUrl(p) })
    expect(up.requests.get(p)).toBe(4)
  })

  it("gives up on a refused connection", async () => {
    const closed = await startUpstream({})
    const url = closed.fileUrl("x")
    await closed.close()
    const e = await failure(download(url, { size: 1, sha256: A }, hashSink(A), { ...fast, retries: 2 }))
    expect(e).toMatchObject({ _tag: "DownloadError", reason: "network", attempts: 3 })
    expect((e as DownloadError).message).toMatch(/failed after 3 attempts: connect ECONNREFUSED/)
  })

  it("does not retry a 404 or a 403", async () => {
    const p = "dir2/file-2.bin"
    const e = await failure(download(up.fileUrl("missing.bin"), { size: 1, sha256: A }, hashSink(A), fast))
    expect(e).toMatchObject({ _tag: "DownloadError", attempts: 1, status: 404 })
    expect((e as DownloadError).message).toBe(`GET ${up.fileUrl("missing.bin")} failed after 1 attempt: HTTP 404`)
    expect(up.requests.get("missing.bin")).toBe(1)
    up.faults.failStatus(p, 403, 5)
    expect(await failure(get(p))).toMatchObject({ attempts: 1, status: 403 })
    expect(up.requests.get(p)).toBe(1)
  })

  it("does not retry a digest mismatch: the sink's error comes out as it is", async () => {
    const p = "dir0/file-3.bin"
    up.faults.corrupt(p)
    const e = await failure(get(p))
    expect(e).toBeInstanceOf(DigestMismatch)
    expect(up.requests.get(p)).toBe(1)
  })

  it("fails at once, reading nothing, when Content-Length is larger than expected", async () => {
    const seen = { bytes: 0, calls: 0 }
    const e = await failure(download(up.fileUrl(big), { size: 1000, sha256: A }, hashSink(A, seen), fast))
    expect(e).toMatchObject({ _tag: "DownloadError", reason: "too_large", attempts: 1 })
    expect((e as DownloadError).message).toContain(`Content-Length ${bigContent.length}, expected 1000 bytes`)
    expect(seen.calls).toBe(0)
  })

  it("stops reading as soon as a body without Content-Length passes the expected size", async () => {
    const huge = "huge.bin"
    up.setFile(huge, Buffer.alloc(32 << 20, 1))
    try {
      up.faults.chunked(huge)
      const seen = { bytes: 0, calls: 0 }
      const e = await failure(download(up.fileUrl(huge), { size: 100_000, sha256: A }, hashSink(A, seen), fast))
      expect(e).toMatchObject({ _tag: "DownloadError", reason: "too_large", attempts: 1 })
      expect((e as DownloadError).message).toContain("more than the expected 100000 bytes")
      expect(seen.bytes).toBeLessThanOrEqual(100_000)
      expect(up.requests.get(huge)).toBe(1)
      // The server never got to write it all: the client closed the connection.
      await expect.poll(() => up.aborted.get(huge), eventually).toBe(1)
    } finally {
      up.removeFile(huge)
    }
  })

  it("retries a body shorter than the expected size, then fails naming the sizes", async () => {
    const p = odd
    const e = await failure(get(p, { retries: 1 }, 10))
    expect(e).toMatchObject({ _tag: "DownloadError", reason: "truncated", attempts: 2 })
    expect((e as DownloadError).message).toContain("Content-Length 4, expected 10 bytes")
    up.faults.chunked(p)
    const e2 = await failure(get(p, { retries: 1 }, 10))
    expect((e2 as DownloadError).message).toContain("body is 4 bytes, expected 10")
  })

  it("rejects a non-HTTP URL without a request", async () => {
    const e = await failure(download("file:///etc/passwd", { size: 1, sha256: A }, hashSink(A), fast))
    expect(e).toBeInstanceOf(RemoteUrlError)
    const e2 = await failure(fetchText("ftp://example.com/PULP_MANIFEST", { timeoutMs: HEALTHY_MS, maxBytes: 100 }))
    expect(e2).toBeInstanceOf(RemoteUrlError)
  })

  it("follows redirects up to maxRedirects", async () => {
    const p = "dir0/file-6.bin"
    const size = files[p]!.length
    const sha256 = up.sha256(p)
    up.faults.redirect("moved.bin", `/repo/${p}`)
    up.faults.redirect("moved-twice.bin", up.base + "moved.bin")
    const r = await Effect.runPromise(download(up.fileUrl("moved.bin"), { size, sha256 }, hashSink(sha256), { ...fast, maxRedirects: 1 }))
    expect(r.size).toBe(size)
    expect(up.requests.get(p)).toBe(1)

    const tooMany = await failure(
      download(up.fileUrl("moved-twice.bin"), { size, sha256 }, hashSink(sha256), { ...fast, maxRedirects: 1 })
    )
    expect(tooMany).toMatchObject({ _tag: "DownloadError", reason: "redirect", attempts: 1 })
    expect((tooMany as DownloadError).message).toContain("too many redirects (more than 1)")
    const none = await failure(download(up.fileUrl("moved.bin"), { size, sha256 }, hashSink(sha256), { ...fast, maxRedirects: 0 }))
    expect(none).toMatchObject({ reason: "redirect" })
    expect(
      await Effect.runPromise(download(up.fileUrl("moved-twice.bin"), { size, sha256 }, hashSink(sha256), { ...fast, maxRedirects: 2 }))
    ).toMatchObject({ size })
  })

  it("refuses a redirect to a non-HTTP URL", async () => {
    up.faults.redirect("evil.bin", "file:///etc/passwd")
    const e = await failure(download(up.fileUrl("evil.bin"), { size: 1, sha256: A }, hashSink(A), fast))
    expect(e).toMatchObject({ _tag: "DownloadError", reason: "redirect", attempts: 1 })
    expect((e as DownloadError).message).toContain("file:")
  })

  it("an error after a redirect names where it came from", async () => {
    up.faults.redirect("gone.bin", "/repo/nowhere.bin")
    const e = await failure(download(up.fileUrl("gone.bin"), { size: 1, sha256: A }, hashSink(A), fast))
    expect((e as DownloadError).message).toBe(
      `GET ${up.fileUrl("gone.bin")} failed after 1 attempt: HTTP 404 (from ${up.fileUrl("nowhere.bin")} after 1 redirect)`
    )
  })

  it("aborts the request when interrupted", async () => {
    // Stalled, with an idle timeout, for ten minutes: an interruption that waited for either
    // instead of aborting the request would not return within the test's timeout.
    up.faults.slow(big, STALL_MS)
    const seen = { bytes: 0, calls: 0 }
    const fiber = Effect.runFork(
      download(up.fileUrl(big), { size: bigContent.length, sha256: up.sha256(big) }, hashSink(up.sha256(big), seen), {
        ...fast,
        timeoutMs: STALL_MS
      })
    )
    await expect.poll(() => seen.bytes, eventually).toBeGreaterThan(0)
    const exit = await Effect.runPromise(Fiber.interrupt(fiber))
    expect(Exit.isInterrupted(exit)).toBe(true)
    await expect.poll(() => up.aborted.get(big), eventually).toBe(1)
    expect(up.requests.get(big)).toBe(1)
  })

  it("fetchText: a manifest larger than maxBytes, and one that is not UTF-8, fail without retries", async () => {
    const e = await failure(fetchText(up.url, { timeoutMs: HEALTHY_MS, maxBytes: 100, backoffMs: 5 }))
    expect(e).toMatchObject({ _tag: "DownloadError", reason: "too_large", attempts: 1 })
    up.setFile("latin1.txt", Buffer.from([0x61, 0xe9, 0x0a]))
    try {
      const e2 = await failure(fetchText(up.fileUrl("latin1.txt"), { timeoutMs: HEALTHY_MS, maxBytes: 100 }))
      expect(e2).toMatchObject({ _tag: "DownloadError", reason: "content", attempts: 1 })
    } finally {
      up.removeFile("latin1.txt")
    }
  })

  it("fetchText retries, and a malformed manifest is a parse error naming its line", async () => {
    up.faults.fail5xx("PULP_MANIFEST", 2)
    up.setManifestOverride(`# hi\nok,${A},1\nbroken line\n`)
    try {
      const text = await Effect.runPromise(fetchText(up.url, { timeoutMs: HEALTHY_MS, maxBytes: 1000, backoffMs: 5 }))
      expect(up.requests.get("PULP_MANIFEST")).toBe(3)
      const e = parseError(text)
      expect(e.message).toBe(`PULP_MANIFEST line 3: expected "relative_path,sha256,size": "broken line"`)
    } finally {
      up.setManifestOverride(undefined)
    }
  })
})
