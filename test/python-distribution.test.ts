/**
 * Core metadata (src/plugins/python/lib/metadata.ts) and reading it from wheels and sdists made by
 * python3 (src/plugins/python/lib/distribution.ts): local files, bytes in memory and the real local
 * artifact store's ranged reads; bounded reads; hostile and broken archives refused with a reason.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { PassThrough, Readable, Transform } from "node:stream"
import { Effect, Either, Exit, Fiber } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LocalArtifactStorage } from "../src/content/storage-local.js"
import {
  artifactSource,
  bufferSource,
  type ByteSource,
  type DistributionInfo,
  fileSource,
  type InvalidDistributionReason,
  readDistribution,
  type ReadLimits
} from "../src/plugins/python/lib/distribution.js"
import { parseCoreMetadata } from "../src/plugins/python/lib/metadata.js"
import { type BuiltDist, buildDistributions, buildRawArchive, type DistSpec } from "./support/python-fixtures.js"
import { runPython } from "./support/python.js"

let dir: string
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-pydist-"))
})
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true })
})

/** Build one distribution into its own directory. */
const build = async (spec: DistSpec): Promise<BuiltDist> => {
  const [d] = await buildDistributions(await fs.mkdtemp(path.join(dir, "d-")), [spec])
  return d!
}

const read = async (filename: string, source: ByteSource, limits?: ReadLimits): Promise<DistributionInfo> =>
  Effect.runPromise(readDistribution(filename, source, limits))

/** The reason (and message) of the refusal, failing the test if the read succeeds. */
const refusal = async (filename: string, source: ByteSource, limits?: ReadLimits): Promise<{ reason: InvalidDistributionReason; message: string }> => {
  const exit = await Effect.runPromiseExit(readDistribution(filename, source, limits))
  if (Exit.isSuccess(exit)) throw new Error(`${filename} was read`)
  const e = Exit.causeOption(exit).pipe((c) => c._tag === "Some" ? c.value : undefined)
  const failure = e && e._tag === "Fail" ? e.error : undefined
  if (failure?._tag !== "InvalidDistribution") throw new Error(`expected InvalidDistribution, got ${String(e)}`)
  return { reason: failure.reason, message: failure.message }
}

/** A source that counts opens and bytes sent, to show what a read costs an object store. */
const counting = (s: ByteSource) => {
  const stats = { opens: 0, bytes: 0 }
  const source: ByteSource = {
    size: s.size,
    open: async (start, end) => {
      stats.opens++
      const count = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          stats.bytes += chunk.length
          callback(null, chunk)
        }
      })
      return (await s.open(start, end)).pipe(count)
    }
  }
  return { stats, source }
}

describe("core metadata", () => {
  it("reads headers (case-insensitive, folded, repeated) and the body", () => {
    const m = Either.getOrThrow(parseCoreMetadata(
      "Metadata-Version: 2.1\r\nname: Cairn_Test.Pkg\r\nVersion: 1.0\r\nSummary: a summary\r\n  folded on two lines\r\n" +
        "Requires-Dist: attrs>=22\r\nRequires-Dist: idna; extra == \"x\"\r\nRequires-Python: >=3.8\r\n" +
        "Provides-Extra: x\r\nAuthor: Zoë\r\n\r\n# Title\r\n\r\nBody text.\r\n\r\n"
    ))
    expect(m).toMatchObject({
      metadataVersion: "2.1",
      name: "Cairn_Test.Pkg",
      version: "1.0",
      summary: "a summary  folded on two lines",
      requiresPython: ">=3.8",
      requiresDist: ["attrs>=22", "idna; extra == \"x\""],
      providesExtra: ["x"],
      author: "Zoë",
      description: "# Title\n\nBody text."
    })
    expect(m.get("REQUIRES-PYTHON")).toBe(">=3.8")
    expect(m.headers.length).toBe(9)
  })

  it("takes a Description header when there is no body, and ends the headers at a non-header line", () => {
    const m = Either.getOrThrow(parseCoreMetadata("Metadata-Version: 1.1\nName: a\nVersion: 1\nDescription: line one\n        |line two\n"))
    expect(m.description).toBe("line one\n        |line two")
    const n = Either.getOrThrow(parseCoreMetadata("\ufeffMetadata-Version: 1.0\nName: a\nVersion: 1\nthis is not a header\nSummary: in the body\n"))
    expect(n.summary).toBeUndefined()
    expect(n.description).toBe("this is not a header\nSummary: in the body")
  })

  it("decodes bytes that are not UTF-8 with replacement characters", () => {
    const bytes = Buffer.concat([Buffer.from("Metadata-Version: 1.0\nName: a\nVersion: 1\nAuthor: M"), Buffer.from([0xfc]), Buffer.from("ller\n")])
    expect(Either.getOrThrow(parseCoreMetadata(bytes)).author).toBe("M\ufffdller")
  })

  it("refuses a file without Metadata-Version, Name or Version, with one twice, or with an invalid Name", () => {
    const error = (text: string) => {
      const r = parseCoreMetadata(text)
      return Either.isLeft(r) ? r.left.message : "parsed"
    }
    expect(error("Name: a\nVersion: 1\n")).toContain("no Metadata-Version")
    expect(error("Metadata-Version: 2.1\nVersion: 1\n")).toContain("no Name")
    expect(error("Metadata-Version: 2.1\nName: a\n")).toContain("no Version")
    expect(error("Metadata-Version: 2.1\nName: a\nVersion: 1\nversion: 2\n")).toContain("\"Version\" appears more than once")
    expect(error("Metadata-Version: 2.1\nName: a b\nVersion: 1\n")).toContain("not a valid project name")
    expect(error(" folded\nName: a\n")).toContain("continuation")
  })
})

describe("reading a distribution's metadata", () => {
  it("reads a wheel, an sdist and a zip sdist made by python3, from a path, from memory and from the artifact store", async () => {
    const specs: Array<DistSpec> = [
      { kind: "wheel", name: "Cairn_Test.Pkg", version: "1.0", summary: "A wheel", requiresPython: ">=3.8" },
      { kind: "sdist", name: "Cairn_Test.Pkg", version: "1.0", summary: "An sdist" },
      { kind: "sdist-zip", name: "Cairn_Test.Pkg", version: "2.0rc1", summary: "A zip sdist" }
    ]
    const built = await buildDistributions(path.join(dir, "ok"), specs)
    const storage = await Effect.runPromise(LocalArtifactStorage.make(path.join(dir, "artifacts")))
    for (const [i, d] of built.entries()) {
      const bytes = await fs.readFile(d.path)
      const stored = await Effect.runPromise(storage.put(Readable.from([bytes]), { sha256: d.sha256 }))
      for (const source of [await fileSource(d.path), bufferSource(bytes), artifactSource(storage, stored.sha256, stored.size)]) {
        const info = await read(d.filename, source)
        expect(info.filename.project).toBe("cairn-test-pkg")
        expect(info.metadata.name).toBe("Cairn_Test.Pkg")
        expect(info.metadata.version).toBe(specs[i]!.version)
        expect(info.metadata.summary).toBe(specs[i]!.summary)
        expect(Buffer.from(info.metadataBytes).toString("utf8")).toBe(d.metadata)
      }
    }
    const wheel = await read(built[0]!.filename, await fileSource(built[0]!.path))
    expect(wheel.metadataPath).toBe("cairn_test_pkg-1.0.dist-info/METADATA")
    expect(wheel.metadata.requiresPython).toBe(">=3.8")
    expect((await read(built[1]!.filename, await fileSource(built[1]!.path))).metadataPath).toBe("cairn_test_pkg-1.0/PKG-INFO")
  })

  it("accepts a metadata Version that is the file name's in another spelling", async () => {
    const d = await build({ kind: "wheel", name: "a", version: "1.0", metadataVersion: "1.0.0" })
    expect((await read(d.filename, await fileSource(d.path))).metadata.version).toBe("1.0.0")
  })

  it("reads a large wheel with a few ranged reads, and stops a .tar.gz once PKG-INFO has passed", async () => {
    const wheel = await build({ kind: "wheel", name: "big", version: "1.0", extraBinary: { "big/blob.bin": 8 * 1024 * 1024 } })
    const w = counting(await fileSource(wheel.path))
    await read(wheel.filename, w.source)
    expect(w.source.size).toBeGreaterThan(8 * 1024 * 1024)
    expect(w.stats.opens).toBeLessThanOrEqual(5)
    expect(w.stats.bytes).toBeLessThan(1024 * 1024)

    const sdist = await build({ kind: "sdist", name: "big", version: "1.0", extraBinary: { "big/blob.bin": 8 * 1024 * 1024 } })
    const s = counting(await fileSource(sdist.path))
    await read(sdist.filename, s.source)
    expect(s.stats.opens).toBe(1)
    expect(s.stats.bytes).toBeLessThan(sdist.size / 2)
  })
})

describe("refusing what is not a valid distribution", () => {
  it("not an archive of the right kind", async () => {
    const junk = bufferSource(Buffer.from("this is not an archive at all, just some text ".repeat(20)))
    expect(await refusal("a-1.0-py3-none-any.whl", junk)).toMatchObject({ reason: "not_zip" })
    expect(await refusal("a-1.0.zip", junk)).toMatchObject({ reason: "not_zip" })
    expect(await refusal("a-1.0.tar.gz", junk)).toMatchObject({ reason: "not_gzip" })
    const gz = await runPython("import gzip,sys; sys.stdout.buffer.write(gzip.compress(b'x' * 5000, mtime=0).hex().encode())", "")
    expect(await refusal("a-1.0.tar.gz", bufferSource(Buffer.from(gz, "hex")))).toMatchObject({ reason: "not_tar" })
    expect(await refusal("a-1.0.exe", junk)).toMatchObject({ reason: "bad_filename" })
    expect(await refusal("../a-1.0.tar.gz", junk)).toMatchObject({ reason: "bad_filename" })
  })

  it("no metadata file, or several", async () => {
    for (const kind of ["wheel", "sdist", "sdist-zip"] as const) {
      const d = await build({ kind, name: "a", version: "1.0", omitMetadata: true })
      expect(await refusal(d.filename, await fileSource(d.path)), kind).toMatchObject({ reason: "no_metadata" })
    }
    const two = await build({ kind: "wheel", name: "a", version: "1.0", extraEntries: { "b-1.0.dist-info/METADATA": "Name: b\n" } })
    const r = await refusal(two.filename, await fileSource(two.path))
    expect(r.reason).toBe("several_metadata")
    expect(r.message).toContain("a-1.0.dist-info, b-1.0.dist-info")
    const sdist = await build({ kind: "sdist-zip", name: "a", version: "1.0", extraEntries: { "../other/PKG-INFO": "x" } })
    expect((await refusal(sdist.filename, await fileSource(sdist.path))).reason).toBe("unsafe_path")
  })

  it("metadata of another project or version than the file name says", async () => {
    const name = await build({ kind: "wheel", name: "a", version: "1.0", metadataName: "b" })
    expect(await refusal(name.filename, await fileSource(name.path))).toMatchObject({ reason: "name_mismatch" })
    const version = await build({ kind: "sdist", name: "a", version: "1.0", metadataVersion: "1.1" })
    const r = await refusal(version.filename, await fileSource(version.path))
    expect(r.reason).toBe("version_mismatch")
    expect(r.message).toContain("says Version \"1.1\", the file name says \"1.0\"")
    const dir = await build({ kind: "wheel", name: "a", version: "1.0", topDirectory: "b-1.0.dist-info" })
    expect(await refusal(dir.filename, await fileSource(dir.path))).toMatchObject({ reason: "name_mismatch" })
    const bad = await build({ kind: "wheel", name: "a", version: "1.0", metadataName: "not valid!" })
    expect(await refusal(bad.filename, await fileSource(bad.path))).toMatchObject({ reason: "bad_metadata" })
  })

  it("entry names that leave the archive's directory", async () => {
    const meta = "Metadata-Version: 2.1\nName: a\nVersion: 1.0\n"
    for (const evil of ["../evil", "a/../../evil", "/etc/evil"]) {
      const zip = await buildRawArchive(path.join(dir, "evil-zip", String(Math.random()).slice(2)), "a-1.0-py3-none-any.whl", [
        { path: evil, text: "x" },
        { path: "a-1.0.dist-info/METADATA", text: meta }
      ])
      const rz = await refusal("a-1.0-py3-none-any.whl", await fileSource(zip))
      expect(rz.reason, evil).toBe("unsafe_path")
      expect(rz.message).toContain(evil)
      const tar = await buildRawArchive(path.join(dir, "evil-tar", String(Math.random()).slice(2)), "a-1.0.tar.gz", [
        { path: evil, text: "x" },
        { path: "a-1.0/PKG-INFO", text: meta }
      ])
      expect((await refusal("a-1.0.tar.gz", await fileSource(tar))).reason, evil).toBe("unsafe_path")
    }
  })

  it("a PKG-INFO that is a link", async () => {
    const tar = await buildRawArchive(path.join(dir, "link"), "a-1.0.tar.gz", [
      { path: "a-1.0/PKG-INFO", symlinkTo: "/etc/passwd" }
    ])
    const r = await refusal("a-1.0.tar.gz", await fileSource(tar))
    expect(r).toMatchObject({ reason: "unsupported_entry" })
    expect(r.message).toContain("symlink")
  })

  it("bombs: a huge metadata file, a zip that lies about it, a gzip that inflates without end, too many entries", async () => {
    const long = `Metadata-Version: 2.1\nName: a\nVersion: 1.0\n\n${"x".repeat(200_000)}\n`
    const wheel = await buildRawArchive(path.join(dir, "bomb1"), "a-1.0-py3-none-any.whl", [{ path: "a-1.0.dist-info/METADATA", text: long }])
    expect(await refusal("a-1.0-py3-none-any.whl", await fileSource(wheel), { maxMetadataBytes: 100_000 })).toMatchObject({ reason: "metadata_too_large" })
    expect((await read("a-1.0-py3-none-any.whl", await fileSource(wheel))).metadata.description?.length).toBe(200_000)
    const sdist = await buildRawArchive(path.join(dir, "bomb2"), "a-1.0.tar.gz", [{ path: "a-1.0/PKG-INFO", text: long }])
    expect(await refusal("a-1.0.tar.gz", await fileSource(sdist), { maxMetadataBytes: 100_000 })).toMatchObject({ reason: "metadata_too_large" })

    // The same wheel with its METADATA's uncompressed size rewritten to 100 bytes, in both headers.
    const lying = path.join(dir, "bomb1", "lying-1.0-py3-none-any.whl")
    await runPython(String.raw`
import struct, sys, zipfile
src, dst = sys.argv[1:]
data = bytearray(open(src, "rb").read())
info = zipfile.ZipFile(src).getinfo("a-1.0.dist-info/METADATA")
struct.pack_into("<I", data, info.header_offset + 22, 100)
central = data.rfind(b"PK\x01\x02")
struct.pack_into("<I", data, central + 24, 100)
open(dst, "wb").write(data)
`, "", [wheel, lying])
    const r = await refusal("a-1.0-py3-none-any.whl", await fileSource(lying), { maxMetadataBytes: 100_000 })
    expect(["corrupt", "metadata_too_large"]).toContain(r.reason)

    // 64 MiB of zeros before PKG-INFO: about 64 KiB compressed.
    const gzBomb = await buildRawArchive(path.join(dir, "bomb3"), "a-1.0.tar.gz", [
      { path: "a-1.0/zeros", zeros: 64 * 1024 * 1024 },
      { path: "a-1.0/PKG-INFO", text: "Metadata-Version: 2.1\nName: a\nVersion: 1.0\n" }
    ])
    expect((await fs.stat(gzBomb)).size).toBeLessThan(1024 * 1024)
    expect(await refusal("a-1.0.tar.gz", await fileSource(gzBomb), { maxScannedBytes: 8 * 1024 * 1024 })).toMatchObject({ reason: "scan_limit" })
    expect((await read("a-1.0.tar.gz", await fileSource(gzBomb))).metadata.name).toBe("a")

    const many = await build({ kind: "wheel", name: "a", version: "1.0", extraEntries: { "a/x.py": "", "a/y.py": "", "a/z.py": "" } })
    expect(await refusal(many.filename, await fileSource(many.path), { maxEntries: 4 })).toMatchObject({ reason: "too_many_entries" })
    const manyTar = await build({ kind: "sdist", name: "a", version: "1.0", extraEntries: { "a/x.py": "", "a/y.py": "" } })
    // PKG-INFO comes first in these sdists: the limit counts the entries read before it.
    expect((await read(manyTar.filename, await fileSource(manyTar.path), { maxEntries: 1 })).metadata.name).toBe("a")
  })

  it("a truncated archive (the part that is read)", async () => {
    const wheel = await build({ kind: "wheel", name: "a", version: "1.0", extraBinary: { "a/blob": 200_000 } })
    const w = await fs.readFile(wheel.path)
    // The end record is gone.
    expect(await refusal(wheel.filename, bufferSource(w.subarray(0, w.length - 10)))).toMatchObject({ reason: "not_zip" })
    // The central directory is cut.
    const r = await refusal(wheel.filename, bufferSource(Buffer.concat([w.subarray(0, 1000), w.subarray(w.length - 22)])))
    expect(["corrupt", "not_zip"], r.message).toContain(r.reason)
    const sdist = await build({ kind: "sdist", name: "a", version: "1.0" })
    const s = await fs.readFile(sdist.path)
    // Cut inside the gzip header, then inside PKG-INFO's data.
    expect(await refusal(sdist.filename, bufferSource(s.subarray(0, 5)))).toMatchObject({ reason: "not_gzip" })
    const inside = await refusal(sdist.filename, bufferSource(s.subarray(0, 40)))
    expect(["not_gzip", "not_tar"], inside.message).toContain(inside.reason)
  })
})

describe("failures of the source itself", () => {
  it("are a SourceReadError, not an invalid distribution", async () => {
    const d = await build({ kind: "wheel", name: "a", version: "1.0" })
    const s = await build({ kind: "sdist", name: "a", version: "1.0", extraBinary: { "a/blob": 100_000 } })
    const refusing: ByteSource = { size: d.size, open: () => Promise.reject(new Error("disk on fire")) }
    const breaking = (inner: ByteSource): ByteSource => ({
      size: inner.size,
      open: async (start, end) => {
        const out = new PassThrough()
        const src = await inner.open(start, end)
        let sent = 0
        src.on("data", (c: Buffer) => {
          sent += c.length
          if (sent > 20) out.destroy(new Error("connection reset"))
          else out.write(c)
        })
        return out
      }
    })
    for (const [filename, source, why] of [
      [d.filename, refusing, "disk on fire"],
      [d.filename, breaking(await fileSource(d.path)), "connection reset"],
      [s.filename, breaking(await fileSource(s.path)), "connection reset"]
    ] as const) {
      const exit = await Effect.runPromiseExit(readDistribution(filename, source))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error?._tag, filename).toBe("SourceReadError")
      expect(error?.message).toContain(why)
    }
  })

  it("interrupting a read closes the streams it opened", async () => {
    const d = await build({ kind: "sdist", name: "a", version: "1.0" })
    const opened: Array<PassThrough> = []
    // A source that sends the first bytes, then nothing: the read waits for ever.
    const stalling: ByteSource = {
      size: d.size,
      open: async () => {
        const out = new PassThrough()
        out.write(Buffer.from([0x1f, 0x8b]))
        opened.push(out)
        return out
      }
    }
    const fiber = Effect.runFork(readDistribution(d.filename, stalling))
    while (opened.length === 0) await new Promise((r) => setImmediate(r))
    const exit = await Effect.runPromise(Fiber.interrupt(fiber))
    expect(Exit.isInterrupted(exit)).toBe(true)
    expect(opened[0]!.destroyed).toBe(true)
  })
})
