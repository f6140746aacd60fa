/**
 * A cairn cluster on network namespaces (scripts/lib/netns.ts), one host per role:
 *
 *   pg   PostgreSQL (the embedded binaries, listening on its address)
 *   s3   the object store (s3rver), started by scenarios that use it
 *   up   the upstream: a static file server with a PULP_MANIFEST (python3 -m http.server)
 *   a1   API + content app   (also on the frontend network, where clients reach it)
 *   a2   API + content app   (likewise)
 *   w1   worker
 *   w2   worker
 *
 * Every cairn process is a real `src/main/serve.ts` or `src/main/worker.ts` with DATABASE_URL
 * pointing at the pg host. Until the object-store backend exists, artifacts live in one directory
 * that every host sees (the namespaces share this machine's filesystem), as a shared filesystem
 * would be shared on real machines; `objectStore` switches to the object store (on the s3 host) by
 * configuration only.
 */
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { createNetwork, type Network } from "../../../scripts/lib/netns.js"
import { formatManifest } from "../../../src/content/manifest.js"
import { createHash } from "node:crypto"
import { type HostProc, spawnOn, spawnTsOn } from "./procs.js"

/** Short liveness timings, so that a cut is noticed in seconds, but not so short that a loaded machine trips them. */
export const clusterTimings: Record<string, string> = {
  CAIRN_HEARTBEAT_MS: "500",
  CAIRN_HEARTBEAT_TIMEOUT_MS: "8000",
  CAIRN_REAP_INTERVAL_MS: "500",
  CAIRN_POLL_INTERVAL_MS: "5000",
  CAIRN_SHUTDOWN_GRACE_MS: "5000",
  CAIRN_DB_POOL_SIZE: "4",
  CAIRN_DB_QUERY_TIMEOUT_MS: "5000",
  CAIRN_LOG_LEVEL: "info"
}

export interface ApiHost extends HostProc {
  /** http://<frontend address>:8080, as clients reach it. */
  readonly url: string
}

export interface Cluster {
  readonly net: Network
  readonly dir: string
  /** The database as the hosts reach it (and as we do, from the root namespace). */
  readonly dbUrl: string
  readonly db: pg.Pool
  readonly pg: HostProc
  /** The upstream's manifest URL and its files (relative path -> sha256). */
  readonly upstreamUrl: string
  readonly upstreamFiles: ReadonlyMap<string, string>
  /** The `moreRepos` repositories: their manifest URL and files. */
  readonly upstreams: ReadonlyMap<string, { readonly url: string; readonly files: ReadonlyMap<string, string> }>
  readonly startApi: (host: "a1" | "a2", env?: Record<string, string>) => Promise<ApiHost>
  readonly startWorker: (host: "w1" | "w2", env?: Record<string, string>) => Promise<HostProc & { readonly pid: number }>
  /** Env that every cairn process of this cluster gets (database, data dirs, timings, storage). */
  readonly cairnEnv: (host: string) => Record<string, string>
  /** The postgres log (statements with their client address, see `logStatements`). */
  readonly pgLog: () => Promise<string>
  readonly destroy: () => Promise<void>
}

export interface ClusterOptions {
  /** Files of the upstream: relative path -> content. */
  readonly files: Record<string, Buffer>
  /** More upstream repositories, each in a directory of its own: directory -> files. */
  readonly moreRepos?: Record<string, Record<string, Buffer>>
  /** Log every completed statement with its client address (for tests that must see a statement arrive). */
  readonly logStatements?: boolean
  /**
   * Run the object store (s3rver) on the s3 host, and give every cairn process the contract's
   * CAIRN_STORAGE=s3 settings for it instead of the shared artifacts directory.
   */
  readonly objectStore?: boolean
}

export const S3_BUCKET = "cairn"

export const startCluster = async (opts: ClusterOptions): Promise<Cluster> => {
  const net = await createNetwork([
    { name: "pg" },
    { name: "s3" },
    { name: "up" },
    { name: "a1", frontend: true },
    { name: "a2", frontend: true },
    { name: "w1" },
    { name: "w2" }
  ])
  const procs: Array<HostProc> = []
  let db: pg.Pool | undefined
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-cluster-"))
  const destroy = async () => {
    await db?.end().catch(() => undefined)
    // CAIRN_CLUSTER_LOGS=<dir>: keep every process's output (and the database's log) for a post-mortem.
    const keep = process.env.CAIRN_CLUSTER_LOGS
    if (keep) {
      await fs.mkdir(keep, { recursive: true })
      for (const p of procs) await fs.writeFile(path.join(keep, `${p.name}.log`), p.output())
      await fs.copyFile(path.join(dir, "pg", "postgres.log"), path.join(keep, "postgres.log")).catch(() => undefined)
    }
    // Cairn processes first (they drain), the database last.
    await Promise.all(procs.filter((p) => p.name !== "pg").map((p) => p.stop(10_000)))
    await Promise.all(procs.filter((p) => p.name === "pg").map((p) => p.stop(30_000)))
    await net.destroy()
    await fs.rm(dir, { recursive: true, force: true })
  }
  try {
    // The server runs as the OS user `postgres` when we are root.
    await fs.chmod(dir, 0o777)
    const pgHost = net.host("pg")
    const pgSettings = opts.logStatements ? ["--log-statements"] : []
    const pgProc = spawnTsOn(pgHost, "pg", "test/cluster/hosts/postgres.ts", [path.join(dir, "pg"), pgHost.addr, net.backendCidr, ...pgSettings])
    procs.push(pgProc)
    const dbUrl = (await pgProc.waitFor(/postgres ready (\S+)/, "PostgreSQL to start", 120_000))[1]!
    db = new pg.Pool({ connectionString: dbUrl, max: 4 })
    db.on("error", () => undefined)

    // The upstream: files and their manifest in a directory, served as they are; more
    // repositories (their own manifests) in subdirectories.
    const upDir = path.join(dir, "upstream")
    const writeRepo = async (sub: string, files: Record<string, Buffer>) => {
      const digests = new Map<string, string>()
      await fs.mkdir(path.join(upDir, sub), { recursive: true })
      for (const [rel, content] of Object.entries(files)) {
        await fs.mkdir(path.dirname(path.join(upDir, sub, rel)), { recursive: true })
        await fs.writeFile(path.join(upDir, sub, rel), content)
        digests.set(rel, createHash("sha256").update(content).digest("hex"))
      }
      await fs.writeFile(
        path.join(upDir, sub, "PULP_MANIFEST"),
        formatManifest([...digests].map(([relative_path, sha256]) => ({ relative_path, sha256, size: files[relative_path]!.length })))
      )
      return digests
    }
    const upstreamFiles = await writeRepo("", opts.files)
    const moreUpstreams = new Map<string, ReadonlyMap<string, string>>()
    for (const [sub, files] of Object.entries(opts.moreRepos ?? {})) moreUpstreams.set(sub, await writeRepo(sub, files))
    const up = net.host("up")
    // HTTP/1.1 (keep-alive): with python's default HTTP/1.0 the server closes each connection after
    // its response, and a FIN that reaches undici 7 while a download is paused by backpressure
    // crashes the worker process (an uncatchable assertion, nodejs/undici#5360; fixed in undici 8).
    const upstream = spawnOn(up, "upstream", "python3", ["-u", "-m", "http.server", "--protocol", "HTTP/1.1", "--bind", up.addr, "8000", "--directory", upDir])
    procs.push(upstream)
    await upstream.waitFor(/Serving HTTP on/, "the upstream's file server")

    let storageEnv: Record<string, string> = { CAIRN_ARTIFACTS_DIR: path.join(dir, "artifacts") }
    if (opts.objectStore) {
      const s3Host = net.host("s3")
      const s3 = spawnTsOn(s3Host, "s3", "scripts/lib/s3-server.ts", [path.join(dir, "s3"), s3Host.addr, "9000", S3_BUCKET])
      procs.push(s3)
      const endpoint = (await s3.waitFor(/s3 ready (\S+)/, "the object store", 60_000))[1]!
      storageEnv = {
        CAIRN_STORAGE: "s3",
        CAIRN_S3_BUCKET: S3_BUCKET,
        CAIRN_S3_ENDPOINT: endpoint,
        CAIRN_S3_FORCE_PATH_STYLE: "true",
        AWS_ACCESS_KEY_ID: "S3RVER",
        AWS_SECRET_ACCESS_KEY: "S3RVER",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true"
      }
    }

    const cairnEnv = (host: string): Record<string, string> => ({
      ...clusterTimings,
      DATABASE_URL: dbUrl,
      CAIRN_DATA_DIR: path.join(dir, `data-${host}`),
      ...storageEnv
    })

    return {
      net,
      dir,
      dbUrl,
      db,
      pg: pgProc,
      upstreamUrl: `http://${up.addr}:8000/PULP_MANIFEST`,
      upstreamFiles,
      upstreams: new Map([...moreUpstreams].map(([sub, files]) => [sub, { url: `http://${up.addr}:8000/${sub}/PULP_MANIFEST`, files }])),
      cairnEnv,
      startApi: async (name, env = {}) => {
        const h = net.host(name)
        const p = spawnTsOn(h, `api-${name}`, "src/main/serve.ts", [], {
          ...cairnEnv(name),
          HOST: h.frontAddr!,
          PORT: "8080",
          CAIRN_WORKERS: "0",
          // One API process per host, so that a host's connections and its session are one
          // process's (several processes sharing a port: test/api-processes.test.ts).
          CAIRN_API_PROCESSES: "1",
          ...env
        })
        procs.push(p)
        const url = (await p.waitFor(/cairn listening on (http:\/\/\S+)/, "the API's listening line", 120_000))[1]!
        return { ...p, url }
      },
      startWorker: async (name, env = {}) => {
        const p = spawnTsOn(net.host(name), `worker-${name}`, "src/main/worker.ts", [], { ...cairnEnv(name), CAIRN_WORKERS: "1", ...env })
        procs.push(p)
        await p.waitFor(/worker \S+ registered/, "the worker's registration", 120_000)
        return { ...p, pid: p.child.pid! }
      },
      pgLog: () => fs.readFile(path.join(dir, "pg", "postgres.log"), "utf8"),
      destroy
    }
  } catch (e) {
    await destroy()
    throw e
  }
}
