/**
 * Python distributions and simple indexes for tests, made by the real tools: python3's `zipfile`,
 * `tarfile` and `gzip` write the archives (one python3 process per call), cairn's own writer
 * (src/plugins/python/lib/simple-write.ts) writes the index pages, and `serveSimpleIndex` serves a
 * written index over node:http the way a static PEP 503 / PEP 691 server does.
 *
 * - `buildDistributions`: pure-Python wheels (`<module>/__init__.py` with `__version__`, and a
 *   `.dist-info` with METADATA, WHEEL and RECORD, as pip requires) and sdists (`.tar.gz` or
 *   `.zip`, with a top-level `<name>-<version>/PKG-INFO`). The archives are byte-for-byte
 *   reproducible (fixed timestamps and owners). Overrides make invalid ones for tests.
 * - `buildRawArchive`: an archive with exactly the given entries, for hostile cases (`../` names,
 *   links, large runs of zeros).
 * - `writeStaticIndex`: a directory laid out as a publication (see simple-write.ts), with PEP 658
 *   metadata files when given.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import {
  metadataPath,
  negotiateSimpleFormat,
  packagePath,
  type PublishedFile,
  renderSimpleIndex
} from "../../src/plugins/python/lib/simple-write.js"
import { runPython } from "./python.js"

// ---------------------------------------------------------------------------------------------
// Distributions
// ---------------------------------------------------------------------------------------------

export interface DistSpec {
  readonly kind: "wheel" | "sdist" | "sdist-zip"
  /** The project's name as its metadata spells it, e.g. "Cairn_Test.Pkg". */
  readonly name: string
  readonly version: string
  /** The importable package; default the escaped name ("cairn_test_pkg"). */
  readonly module?: string
  readonly summary?: string
  readonly requiresPython?: string
  /** Requires-Dist lines. */
  readonly requiresDist?: ReadonlyArray<string>
  /** Instead of the standard file name (`{escaped}-{version}-py3-none-any.whl`, `{escaped}-{version}.tar.gz`). */
  readonly filename?: string
  /** Written into the metadata file instead of `name` / `version`. */
  readonly metadataName?: string
  readonly metadataVersion?: string
  /** Instead of `{escaped}-{version}.dist-info` / `{escaped}-{version}`. */
  readonly topDirectory?: string
  /** No METADATA / PKG-INFO at all. */
  readonly omitMetadata?: boolean
  /** More entries, path → text. */
  readonly extraEntries?: Readonly<Record<string, string>>
  /** More entries of incompressible (pseudo-random, reproducible) bytes, path → size. */
  readonly extraBinary?: Readonly<Record<string, number>>
}

export interface BuiltDist {
  readonly path: string
  readonly filename: string
  readonly sha256: string
  readonly size: number
  /** The METADATA / PKG-INFO bytes written (empty when omitted). */
  readonly metadata: string
}

const BUILD_SCRIPT = String.raw`
import base64, gzip, hashlib, io, json, os, re, sys, tarfile, zipfile

out_dir = sys.argv[1]
specs = json.load(sys.stdin)
results = []
EPOCH = (1980, 1, 1, 0, 0, 0)

def escaped(name):
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")

def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def write_zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)

def write_tar_gz(path, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
            g.write(buf.getvalue())

for s in specs:
    esc = escaped(s["name"])
    version = s["version"]
    module = s.get("module") or esc
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (s.get("metadataName") or s["name"], s.get("metadataVersion") or version)
    if s.get("summary"):
        meta += "Summary: %s\n" % s["summary"]
    if s.get("requiresPython"):
        meta += "Requires-Python: %s\n" % s["requiresPython"]
    for r in s.get("requiresDist") or []:
        meta += "Requires-Dist: %s\n" % r
    meta += "\nA test distribution made by cairn's test fixtures.\n"
    meta_bytes = meta.encode()
    entries = [(module + "/__init__.py", ("__version__ = %r\n" % version).encode())]
    for k, v in sorted((s.get("extraEntries") or {}).items()):
        entries.append((k, v.encode()))
    for k, n in sorted((s.get("extraBinary") or {}).items()):
        blocks = (hashlib.sha256(("%s:%d" % (k, i)).encode()).digest() for i in range(n // 32 + 1))
        entries.append((k, b"".join(blocks)[:n]))
    if s["kind"] == "wheel":
        filename = s.get("filename") or "%s-%s-py3-none-any.whl" % (esc, version)
        dist_info = s.get("topDirectory") or "%s-%s.dist-info" % (esc, version)
        if not s.get("omitMetadata"):
            entries.append((dist_info + "/METADATA", meta_bytes))
        entries.append((dist_info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: cairn-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
        record = "".join("%s,%s,%d\n" % (n, record_hash(d), len(d)) for n, d in entries) + dist_info + "/RECORD,,\n"
        entries.append((dist_info + "/RECORD", record.encode()))
        write_zip(os.path.join(out_dir, filename), entries)
    else:
        zipped = s["kind"] == "sdist-zip"
        filename = s.get("filename") or "%s-%s.%s" % (esc, version, "zip" if zipped else "tar.gz")
        top = s.get("topDirectory") or "%s-%s" % (esc, version)
        sdist = [(top + "/" + n, d) for n, d in entries]
        if not s.get("omitMetadata"):
            sdist.insert(0, (top + "/PKG-INFO", meta_bytes))
        sdist.append((top + "/pyproject.toml", b'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'))
        (write_zip if zipped else write_tar_gz)(os.path.join(out_dir, filename), sdist)
    data = open(os.path.join(out_dir, filename), "rb").read()
    results.append({"filename": filename, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                    "metadata": "" if s.get("omitMetadata") else meta})
print(json.dumps(results))
`

/** Build the distributions into `dir` (one python3 run for all of them). */
export const buildDistributions = async (dir: string, specs: ReadonlyArray<DistSpec>): Promise<Array<BuiltDist>> => {
  await fs.mkdir(dir, { recursive: true })
  const out = JSON.parse(await runPython(BUILD_SCRIPT, JSON.stringify(specs), [dir])) as Array<Omit<BuiltDist, "path">>
  return out.map((d) => ({ ...d, path: path.join(dir, d.filename) }))
}

export interface RawEntry {
  readonly path: string
  /** The entry's text (default empty). */
  readonly text?: string
  /** Instead of text: this many zero bytes (they compress to almost nothing). */
  readonly zeros?: number
  /** A symbolic link to this target instead of a file (tar only). */
  readonly symlinkTo?: string
}

const RAW_SCRIPT = String.raw`
import gzip, io, json, sys, tarfile, zipfile
path, = sys.argv[1:]
entries = json.load(sys.stdin)
def data_of(e):
    return b"\0" * e["zeros"] if "zeros" in e else e.get("text", "").encode()
if path.endswith(".tar.gz"):
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
            with tarfile.open(fileobj=g, mode="w|", format=tarfile.PAX_FORMAT) as t:
                for e in entries:
                    info = tarfile.TarInfo(e["path"])
                    info.mtime = 0
                    if "symlinkTo" in e:
                        info.type = tarfile.SYMTYPE
                        info.linkname = e["symlinkTo"]
                        t.addfile(info)
                    else:
                        data = data_of(e)
                        info.size = len(data)
                        t.addfile(info, io.BytesIO(data))
else:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for e in entries:
            z.writestr(zipfile.ZipInfo(e["path"], (1980, 1, 1, 0, 0, 0)), data_of(e), zipfile.ZIP_DEFLATED)
`

/** An archive (`.tar.gz`, else zip) with exactly these entries, at `dir/filename`. */
export const buildRawArchive = async (dir: string, filename: string, entries: ReadonlyArray<RawEntry>): Promise<string> => {
  await fs.mkdir(dir, { recursive: true })
  const file = path.join(dir, filename)
  await runPython(RAW_SCRIPT, JSON.stringify(entries), [file])
  return file
}

// ---------------------------------------------------------------------------------------------
// A static index
// ---------------------------------------------------------------------------------------------

export interface IndexProject {
  /** As the metadata spells it. */
  readonly name: string
  readonly files: ReadonlyArray<
    & BuiltDist
    & Omit<PublishedFile, "filename" | "sha256" | "size" | "metadataSha256">
    & {
      /** The core metadata to publish beside the file (PEP 658), e.g. what readDistribution read. */
      readonly metadataBytes?: Uint8Array | undefined
    }
  >
}

export interface StaticIndexOptions {
  /** Publish these digests instead of the files' own (file name → sha256), to test verification. */
  readonly sha256Override?: Readonly<Record<string, string>>
}

/** Lay out `projects` under `root` as a publication: pages from cairn's writer, files copied. */
export const writeStaticIndex = async (
  root: string,
  projects: ReadonlyArray<IndexProject>,
  options?: StaticIndexOptions
): Promise<void> => {
  const pages = renderSimpleIndex(projects.map((p) => ({
    name: p.name,
    files: p.files.map((f) => ({
      filename: f.filename,
      sha256: options?.sha256Override?.[f.filename] ?? f.sha256,
      size: f.size,
      requiresPython: f.requiresPython,
      yanked: f.yanked,
      metadataSha256: f.metadataBytes === undefined ? undefined : sha256Hex(f.metadataBytes)
    }))
  })))
  for (const page of pages) {
    await fs.mkdir(path.dirname(path.join(root, page.relativePath)), { recursive: true })
    await fs.writeFile(path.join(root, page.relativePath), page.bytes)
  }
  for (const p of projects) {
    for (const f of p.files) {
      const target = path.join(root, packagePath(p.name, f.filename))
      await fs.mkdir(path.dirname(target), { recursive: true })
      await fs.copyFile(f.path, target)
      if (f.metadataBytes !== undefined) await fs.writeFile(path.join(root, metadataPath(p.name, f.filename)), f.metadataBytes)
    }
  }
}

export interface ServedRequest {
  readonly path: string
  readonly accept: string | undefined
  readonly status: number
  readonly contentType: string | undefined
}

export interface StaticIndexServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string
  /** `<url>simple/` */
  readonly indexUrl: string
  readonly requests: ReadonlyArray<ServedRequest>
  readonly close: () => Promise<void>
}

export interface ServeOptions {
  /** "negotiate" (default) answers JSON or HTML by the Accept header; "html" always HTML. */
  readonly pages?: "negotiate" | "html"
}

/**
 * Serve a directory written by `writeStaticIndex` on 127.0.0.1: `/simple/` and
 * `/simple/<project>/` (the URLs without the slash redirect to it), files by path. 404 otherwise.
 */
export const serveSimpleIndex = async (root: string, options?: ServeOptions): Promise<StaticIndexServer> => {
  const requests: Array<ServedRequest> = []
  const server = http.createServer(async (req, res) => {
    const accept = req.headers.accept
    const answer = (status: number, contentType: string | undefined, body: Uint8Array | string, extra: Record<string, string> = {}) => {
      requests.push({ path: req.url ?? "", accept, status, contentType })
      res.writeHead(status, { ...(contentType ? { "content-type": contentType } : {}), ...extra })
      res.end(body)
    }
    let rel: string
    try {
      rel = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).replace(/^\/+/, "")
    } catch {
      return answer(400, "text/plain", "bad path\n")
    }
    if (rel.split("/").some((s) => s === ".." || s === ".")) return answer(400, "text/plain", "bad path\n")
    if (/^simple(\/[^/]+)?$/.test(rel)) return answer(301, undefined, "", { location: `/${rel}/` })
    let file = path.join(root, rel)
    let contentType = "application/octet-stream"
    if (rel === "simple/" || /^simple\/[^/]+\/$/.test(rel)) {
      const chosen = options?.pages === "html" ? { format: "html" as const, contentType: "text/html" } : negotiateSimpleFormat(accept)
      if (chosen === undefined) return answer(406, "text/plain", "not acceptable\n")
      file = path.join(root, rel, `index.${chosen.format}`)
      contentType = chosen.contentType
    }
    try {
      answer(200, contentType, await fs.readFile(file))
    } catch {
      answer(404, "text/plain", "not found\n")
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  return {
    url,
    indexUrl: `${url}simple/`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

/** sha256 (hex) of bytes. */
export const sha256Hex = (bytes: Uint8Array | string): string => createHash("sha256").update(bytes).digest("hex")
