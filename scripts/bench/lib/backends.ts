/**
 * The artifact store a benchmark's cairn processes use: local disk (the default, nothing set) or an
 * S3-protocol object store (CAIRN_STORAGE=s3 and the CAIRN_S3_* settings, README "Object storage").
 * The object store is s3rver in a process of its own (scripts/lib/s3-server.ts, the one the cluster
 * tests run), on loopback, keeping its objects in a temporary directory, so that its CPU can be
 * measured apart from cairn's and it competes for the same cores as a real store on the same host.
 *
 * What s3rver is not: a production store (it keeps objects as files, in one Node.js thread, and does
 * not verify signatures). Figures against it show what cairn's S3 path costs cairn, plus what this
 * particular server costs; they say little about AWS S3 or MinIO.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { onInterrupt, type Proc, spawnTs, waitForLine } from "../../lib/processes.js"

export type BackendKind = "local" | "s3"

export const BACKENDS: ReadonlyArray<BackendKind> = ["local", "s3"]

export interface Backend {
  readonly kind: BackendKind
  /** Added to every cairn process's environment. */
  readonly env: Record<string, string>
  /** Processes of the store itself (s3rver), for CPU accounting; none for local disk. */
  readonly pids: ReadonlyArray<number>
  readonly stop: () => Promise<void>
}

/** `--backends local,s3` -> the kinds, or a sentence naming the bad one. */
export const parseBackends = (raw: string): ReadonlyArray<BackendKind> => {
  const kinds = raw.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const bad = kinds.find((k) => !(BACKENDS as ReadonlyArray<string>).includes(k))
  if (bad !== undefined || kinds.length === 0) {
    console.error(`--backends must be a comma-separated list of ${BACKENDS.join(", ")}; got ${JSON.stringify(raw)}`)
    process.exit(2)
  }
  return kinds as ReadonlyArray<BackendKind>
}

const BUCKET = "cairn-bench"
// s3rver accepts any signature but checks that the access key id is its own.
const S3RVER_KEY = "S3RVER"

const startS3 = async (): Promise<Backend> => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-bench-s3-"))
  const remove = () => fs.rm(dir, { recursive: true, force: true })
  onInterrupt(remove)
  const proc: Proc = spawnTs("s3", "scripts/lib/s3-server.ts", [dir, "127.0.0.1", "0", BUCKET])
  let endpoint: string
  try {
    endpoint = (await waitForLine(proc, /s3 ready (\S+)/, "the object store (s3rver)", 120_000))[1]!
  } catch (e) {
    await proc.stop(1000)
    await remove()
    throw e
  }
  return {
    kind: "s3",
    env: {
      CAIRN_STORAGE: "s3",
      CAIRN_S3_BUCKET: BUCKET,
      CAIRN_S3_ENDPOINT: endpoint,
      CAIRN_S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: S3RVER_KEY,
      AWS_SECRET_ACCESS_KEY: S3RVER_KEY,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true"
    },
    pids: [proc.pid],
    stop: async () => {
      await proc.stop(5000)
      await remove()
    }
  }
}

/** A fresh, empty store of this kind (local disk: the process's CAIRN_DATA_DIR, nothing to start). */
export const startBackend = (kind: BackendKind): Promise<Backend> =>
  kind === "s3" ? startS3() : Promise.resolve({ kind, env: {}, pids: [], stop: async () => {} })

export const backendLabel = (kind: BackendKind) => (kind === "local" ? "local disk" : "S3 (s3rver)")
