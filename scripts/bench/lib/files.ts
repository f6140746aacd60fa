/**
 * A file repository on disk for the content benchmarks: N files of deterministic pseudo-random
 * bytes (AES-CTR keyed by the seed: fast, reproducible, incompressible), 1 KiB to 1 MiB, mostly
 * small, under `d<i % 16>/f<i>.bin`, plus the PULP_MANIFEST listing them. Built once per
 * (n, seed) under the temporary directory and reused by later runs.
 *
 * Sizes (log-uniform within each band): 70% 1-8 KiB, 20% 8-64 KiB, 8% 64-256 KiB, 2% 256 KiB-1 MiB;
 * about 25 KiB on average (10,000 files: about 250 MiB).
 */
import { createCipheriv, createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { prng } from "./stats.js"

export interface TreeFile {
  readonly path: string
  readonly size: number
  readonly sha256: string
}

export interface Tree {
  readonly dir: string
  readonly files: ReadonlyArray<TreeFile>
  readonly totalBytes: number
}

const KiB = 1024
const BANDS: ReadonlyArray<readonly [number, number, number]> = [
  [0.7, 1 * KiB, 8 * KiB],
  [0.2, 8 * KiB, 64 * KiB],
  [0.08, 64 * KiB, 256 * KiB],
  [0.02, 256 * KiB, 1024 * KiB]
]

export const SMALL_FILE_MAX = 8 * KiB

const sizeOf = (rand: () => number) => {
  let u = rand()
  for (const [share, lo, hi] of BANDS) {
    if (u < share) return Math.round(lo * (hi / lo) ** rand())
    u -= share
  }
  return KiB
}

const bytesOf = (seed: number, i: number, size: number) => {
  const key = createHash("sha256").update(`cairn-bench-${seed}`).digest().subarray(0, 16)
  const iv = Buffer.alloc(16)
  iv.writeUInt32BE(i, 12)
  return createCipheriv("aes-128-ctr", key, iv).update(Buffer.alloc(size))
}

export const manifestOf = (files: ReadonlyArray<TreeFile>) => files.map((f) => `${f.path},${f.sha256},${f.size}\n`).join("")

export const makeTree = async (n: number, seed = 1, log: (s: string) => void = (s) => console.error(s)): Promise<Tree> => {
  const dir = path.join(os.tmpdir(), `cairn-bench-files-${n}-${seed}`)
  const index = path.join(dir, ".index.json")
  try {
    const files = JSON.parse(await fs.readFile(index, "utf8")) as Array<TreeFile>
    if (files.length === n) return { dir, files, totalBytes: files.reduce((s, f) => s + f.size, 0) }
  } catch { /* build it */ }
  log(`writing ${n} files into ${dir}`)
  await fs.rm(dir, { recursive: true, force: true })
  await fs.mkdir(dir, { recursive: true })
  // nginx workers may run as another user: the tree must be readable by everyone.
  await fs.chmod(dir, 0o755)
  const rand = prng(seed)
  const files: Array<TreeFile> = []
  for (let i = 0; i < n; i++) {
    const size = sizeOf(rand)
    const rel = `d${i % 16}/f${i}.bin`
    const bytes = bytesOf(seed, i, size)
    await fs.mkdir(path.join(dir, path.dirname(rel)), { recursive: true, mode: 0o755 })
    await fs.writeFile(path.join(dir, rel), bytes, { mode: 0o644 })
    files.push({ path: rel, size, sha256: createHash("sha256").update(bytes).digest("hex") })
  }
  await fs.writeFile(path.join(dir, "PULP_MANIFEST"), manifestOf(files), { mode: 0o644 })
  await fs.writeFile(index, JSON.stringify(files))
  return { dir, files, totalBytes: files.reduce((s, f) => s + f.size, 0) }
}

/** Make every directory from `dir` up to / traversable (o+x) so that a server running as another user can reach the tree. */
export const makeTraversable = async (dir: string) => {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = await fs.stat(d)
    if ((st.mode & 0o001) === 0) await fs.chmod(d, st.mode | 0o001)
    if (d === path.dirname(d)) break
  }
}
