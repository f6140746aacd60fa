/**
 * One typed configuration for every cairn process, read from environment variables through
 * Effect's `Config`. An invalid value fails start-up with a message naming the variable.
 */
import { availableParallelism } from "node:os"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted } from "effect"

/** Where artifact bytes live (CAIRN_STORAGE). */
export type StorageConfig =
  | { readonly kind: "local" }
  | {
    readonly kind: "s3"
    readonly bucket: string
    /** Prepended to every key as is. */
    readonly prefix: string
    /** Undefined: AWS. */
    readonly endpoint: string | undefined
    readonly region: string
    readonly forcePathStyle: boolean
    /** A request with no progress for this long fails and is retried; not an environment variable (tests set it). */
    readonly requestTimeoutMs?: number | undefined
    /** Undefined: the AWS SDK's default chain (profile, instance role...). */
    readonly credentials: {
      readonly accessKeyId: Redacted.Redacted<string>
      readonly secretAccessKey: Redacted.Redacted<string>
      readonly sessionToken: Redacted.Redacted<string> | undefined
    } | undefined
  }

/** One entry of CAIRN_API_TOKENS: `<token>` (may do everything) or `<token>:read` (GET only). */
export interface ApiToken {
  readonly token: Redacted.Redacted<string>
  readonly scope: "all" | "read"
}

export interface CairnConfigShape {
  /** `DATABASE_URL`; `None` means "start or join the embedded PostgreSQL of `dataDir`". */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly host: string
  readonly port: number
  /** Worker slots in this process (tasks it runs at once). */
  readonly workers: number
  /**
   * `serve`'s processes answering HTTP on the one port (src/main/api-cluster.ts): 1 answers in the
   * process itself; more fork that many API processes, the first process keeping the worker slots.
   */
  readonly apiProcesses: number
  /** How long running tasks may finish after SIGTERM before they are released for retry. */
  readonly shutdownGrace: Duration.Duration
  readonly heartbeatInterval: Duration.Duration
  /** A worker whose heartbeat is older than this is declared dead even if its session lingers. */
  readonly heartbeatTimeout: Duration.Duration
  /** How often each worker checks for dead workers (cheap: one indexed try-lock per worker row). */
  readonly reapInterval: Duration.Duration
  /** The safety-net poll: LISTEN/NOTIFY wakes workers; this only covers a lost notification. */
  readonly pollInterval: Duration.Duration
  readonly apiTokens: ReadonlyArray<ApiToken>
  readonly poolSize: number
  /** How long a database statement may wait for its answer before it fails (0: no limit); see src/db/client.ts. */
  readonly dbQueryTimeout: Duration.Duration
  readonly logLevel: string
  /** Largest accepted JSON request body (bytes); larger: 413. Uploads have their own limit. */
  readonly bodyMaxBytes: number
  /** Long-polls (`?wait=`) one client address may hold at once; more: 429. */
  readonly longPollsPerClient: number
  /** Largest accepted upload body (bytes); larger: 413. */
  readonly uploadMaxBytes: number
  /** How long an upload owns its artifact if no repository version uses it. */
  readonly uploadTtl: Duration.Duration
  /** Idle timeout of a download (headers, then between body chunks). */
  readonly downloadTimeout: Duration.Duration
  /** Retries of a failed download (after the first attempt). */
  readonly downloadRetries: number
  /** Downloads from one remote host at once, across the whole cluster (slot locks). */
  readonly hostDownloadSlots: number
  /** A remote's download_concurrency when it is created without one. */
  readonly downloadConcurrency: number
  /**
   * Download shards a large sync spreads its downloads over (src/content/sync-shards.ts); 0: as
   * many as the cluster's live worker slots.
   */
  readonly syncShards: number
  /** A sync downloads in shards only if each shard gets at least this many files. */
  readonly syncShardMinFiles: number
  /** orphans.cleanup keeps orphans younger than this unless its params say otherwise. */
  readonly orphanProtection: Duration.Duration
  /**
   * `CAIRN_HISTORY_RETENTION_SECONDS`: when set, worker processes purge history older than this
   * periodically (one purge at a time across the cluster); unset (the default): never automatically.
   */
  readonly historyRetention: Option.Option<Duration.Duration>
  /** A client must send its request headers within this long. */
  readonly httpHeadersTimeout: Duration.Duration
  /** A connection with no traffic for this long is closed (must exceed the 60 s long-poll). */
  readonly httpIdleTimeout: Duration.Duration
  /** Bytes of small files the content app keeps in memory (0: none). */
  readonly contentCacheBytes: number
  readonly storage: StorageConfig
  /**
   * CAIRN_CONTENT_REDIRECT: the content app answers requests for stored artifacts with a 302 to a
   * presigned URL valid this many seconds (s3 only); undefined: it serves the bytes itself.
   */
  readonly contentRedirectSeconds: number | undefined
  /**
   * CAIRN_SECRET_KEY: keys (comma separated) that seal remote secrets at rest; the first seals,
   * every one opens (src/content/secrets.ts). Empty: secrets are stored in the clear.
   */
  readonly secretKeys: ReadonlyArray<Redacted.Redacted<string>>
}

export class CairnConfig extends Context.Tag("cairn/CairnConfig")<CairnConfig, CairnConfigShape>() {}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number >= 0`, validation: (n) => n >= 0 })
  )

const millis = (name: string, fallback: number) =>
  positiveInt(name, fallback).pipe(Config.map(Duration.millis))

/** A failure of a value that only makes sense together with others: the message names `name`. */
const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

const storageKind = Config.literal("local", "s3")("CAIRN_STORAGE").pipe(Config.withDefault("local" as const))

/**
 * CAIRN_STORAGE and, for s3, its CAIRN_S3_* variables and the AWS credentials (both or neither).
 * The s3 variables are read as they are and checked only when CAIRN_STORAGE=s3, so that nothing
 * changes for a local store, whatever else the environment holds.
 */
const storage: Config.Config<StorageConfig> = Config.all({
  kind: storageKind,
  bucket: Config.option(Config.string("CAIRN_S3_BUCKET")),
  prefix: Config.option(Config.string("CAIRN_S3_PREFIX")),
  endpoint: Config.option(Config.string("CAIRN_S3_ENDPOINT")),
  region: Config.option(Config.string("CAIRN_S3_REGION")),
  forcePathStyle: Config.option(Config.string("CAIRN_S3_FORCE_PATH_STYLE")),
  id: Config.option(Config.redacted("AWS_ACCESS_KEY_ID")),
  secret: Config.option(Config.redacted("AWS_SECRET_ACCESS_KEY")),
  token: Config.option(Config.redacted("AWS_SESSION_TOKEN"))
}).pipe(Config.mapOrFail((c): Either.Either<StorageConfig, ConfigError.ConfigError> => {
  if (c.kind === "local") return Either.right({ kind: "local" })
  const bucket = Option.getOrUndefined(c.bucket)?.trim()
  if (!bucket) return Either.left(invalid("CAIRN_S3_BUCKET", "CAIRN_S3_BUCKET is required with CAIRN_STORAGE=s3"))
  const endpoint = Option.getOrUndefined(c.endpoint)
  if (endpoint !== undefined && !/^https?:\/\/[^/?#\s@]+(\/[^?#\s]*)?$/.test(endpoint)) {
    return Either.left(invalid("CAIRN_S3_ENDPOINT", "CAIRN_S3_ENDPOINT must be an http:// or https:// URL without credentials, e.g. http://127.0.0.1:9000"))
  }
  const region = Option.getOrElse(c.region, () => "us-east-1").trim()
  if (region === "") return Either.left(invalid("CAIRN_S3_REGION", "CAIRN_S3_REGION must not be empty"))
  const pathStyle = Option.getOrElse(c.forcePathStyle, () => "false")
  if (pathStyle !== "true" && pathStyle !== "false") {
    return Either.left(invalid("CAIRN_S3_FORCE_PATH_STYLE", "CAIRN_S3_FORCE_PATH_STYLE must be true or false"))
  }
  if (Option.isSome(c.id) !== Option.isSome(c.secret)) {
    const missing = Option.isSome(c.id) ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"
    return Either.left(invalid(missing, `${missing} must be set too: give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither`))
  }
  return Either.right({
    kind: "s3",
    bucket,
    prefix: Option.getOrElse(c.prefix, () => ""),
    endpoint,
    region,
    forcePathStyle: pathStyle === "true",
    credentials: Option.isSome(c.id) && Option.isSome(c.secret)
      ? { accessKeyId: c.id.value, secretAccessKey: c.secret.value, sessionToken: Option.getOrUndefined(c.token) }
      : undefined
  })
}))

/** CAIRN_CONTENT_REDIRECT(_SECONDS), checked against the storage: only an object store can sign URLs. */
const contentRedirect = Config.all({
  kind: storageKind,
  on: Config.boolean("CAIRN_CONTENT_REDIRECT").pipe(Config.withDefault(false)),
  seconds: Config.integer("CAIRN_CONTENT_REDIRECT_SECONDS").pipe(
    Config.withDefault(300),
    Config.validate({
      message: "CAIRN_CONTENT_REDIRECT_SECONDS must be a whole number from 1 to 604800 (a presigned URL lives at most 7 days)",
      validation: (n) => n >= 1 && n <= 604_800
    })
  )
}).pipe(Config.mapOrFail(({ kind, on, seconds }) =>
  !on
    ? Either.right(undefined)
    : kind !== "s3"
    ? Either.left(invalid("CAIRN_CONTENT_REDIRECT", "CAIRN_CONTENT_REDIRECT=true needs CAIRN_STORAGE=s3 (a local store has no URL to redirect to)"))
    : Either.right(seconds)
))

/**
 * CAIRN_API_TOKENS: comma-separated `<token>` or `<token>:read` entries. Any other `:` suffix is
 * refused rather than read as part of a token: a misspelt scope (`:raed`) must not quietly make a
 * token that may do everything. Messages name the entry by position, never by its text.
 */
const apiTokens: Config.Config<ReadonlyArray<ApiToken>> = Config.string("CAIRN_API_TOKENS").pipe(
  Config.withDefault(""),
  Config.mapOrFail((s) => {
    const entries = s.split(",").map((t) => t.trim()).filter((t) => t.length > 0)
    const tokens: Array<ApiToken> = []
    for (const [i, entry] of entries.entries()) {
      const colon = entry.lastIndexOf(":")
      const token = colon < 0 ? entry : entry.slice(0, colon)
      const scope = colon < 0 ? "all" : entry.slice(colon + 1)
      if (colon >= 0 && scope !== "read") {
        return Either.left(invalid("CAIRN_API_TOKENS", `CAIRN_API_TOKENS entry ${i + 1} has an unknown scope: write <token> (everything) or <token>:read (GET only)`))
      }
      if (token === "" || token.includes(":")) {
        return Either.left(invalid("CAIRN_API_TOKENS", `CAIRN_API_TOKENS entry ${i + 1} is not <token> or <token>:read (a token has no ':' and is not empty)`))
      }
      tokens.push({ token: Redacted.make(token), scope: scope === "read" ? "read" : "all" })
    }
    return Either.right(tokens)
  })
)

/** CAIRN_SECRET_KEY: comma-separated keys of at least 32 characters each (never echoed in a message). */
const secretKeys = Config.redacted("CAIRN_SECRET_KEY").pipe(
  Config.withDefault(Redacted.make("")),
  Config.mapOrFail((all) => {
    const keys = Redacted.value(all).split(",").map((k) => k.trim()).filter((k) => k.length > 0)
    const short = keys.findIndex((k) => k.length < 32)
    return short >= 0
      ? Either.left(invalid(
        "CAIRN_SECRET_KEY",
        `CAIRN_SECRET_KEY: key ${short + 1} is shorter than 32 characters; make one with \`openssl rand -base64 32\``
      ))
      : Either.right(keys.map((k) => Redacted.make(k)))
  })
)

export const cairnConfig: Config.Config<CairnConfigShape> = Config.all({
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  dataDir: Config.string("CAIRN_DATA_DIR").pipe(Config.withDefault("./.cairn")),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("PORT").pipe(
    Config.withDefault(8080),
    Config.validate({ message: "PORT must be a whole number from 0 (pick a free port) to 65535", validation: (n) => n >= 0 && n <= 65535 })
  ),
  workers: positiveInt("CAIRN_WORKERS", 2),
  // One per core, as nginx's `worker_processes auto`: a Node process answers HTTP on one core.
  apiProcesses: positiveInt("CAIRN_API_PROCESSES", availableParallelism()).pipe(
    Config.validate({ message: "CAIRN_API_PROCESSES must be from 1 to 256", validation: (n) => n >= 1 && n <= 256 })
  ),
  shutdownGrace: millis("CAIRN_SHUTDOWN_GRACE_MS", 30_000),
  heartbeatInterval: millis("CAIRN_HEARTBEAT_MS", 2_000),
  heartbeatTimeout: millis("CAIRN_HEARTBEAT_TIMEOUT_MS", 15_000),
  reapInterval: millis("CAIRN_REAP_INTERVAL_MS", 1_000),
  pollInterval: millis("CAIRN_POLL_INTERVAL_MS", 10_000),
  apiTokens: apiTokens,
  poolSize: positiveInt("CAIRN_DB_POOL_SIZE", 10).pipe(
    Config.validate({ message: "CAIRN_DB_POOL_SIZE must be at least 2", validation: (n) => n >= 2 })
  ),
  dbQueryTimeout: millis("CAIRN_DB_QUERY_TIMEOUT_MS", 30_000),
  logLevel: Config.literal("trace", "debug", "info", "warning", "error", "none")("CAIRN_LOG_LEVEL").pipe(
    Config.withDefault("info" as const)
  ),
  bodyMaxBytes: positiveInt("CAIRN_BODY_MAX_BYTES", 16 * 1024 * 1024),
  longPollsPerClient: positiveInt("CAIRN_LONG_POLLS_PER_CLIENT", 1000).pipe(
    Config.validate({ message: "CAIRN_LONG_POLLS_PER_CLIENT must be at least 1", validation: (n) => n >= 1 })
  ),
  uploadMaxBytes: positiveInt("CAIRN_UPLOAD_MAX_BYTES", 1024 * 1024 * 1024),
  uploadTtl: millis("CAIRN_UPLOAD_TTL_MS", 24 * 3600 * 1000),
  downloadTimeout: millis("CAIRN_DOWNLOAD_TIMEOUT_MS", 30_000),
  downloadRetries: positiveInt("CAIRN_DOWNLOAD_RETRIES", 3),
  hostDownloadSlots: positiveInt("CAIRN_HOST_DOWNLOAD_SLOTS", 16).pipe(
    Config.validate({ message: "CAIRN_HOST_DOWNLOAD_SLOTS must be at least 1", validation: (n) => n >= 1 })
  ),
  downloadConcurrency: positiveInt("CAIRN_DOWNLOAD_CONCURRENCY", 4).pipe(
    Config.validate({ message: "CAIRN_DOWNLOAD_CONCURRENCY must be from 1 to 64", validation: (n) => n >= 1 && n <= 64 })
  ),
  syncShards: positiveInt("CAIRN_SYNC_SHARDS", 1).pipe(
    Config.validate({ message: "CAIRN_SYNC_SHARDS must be from 0 to 1000", validation: (n) => n <= 1000 })
  ),
  syncShardMinFiles: positiveInt("CAIRN_SYNC_SHARD_MIN_FILES", 250).pipe(
    Config.validate({ message: "CAIRN_SYNC_SHARD_MIN_FILES must be at least 1", validation: (n) => n >= 1 })
  ),
  orphanProtection: positiveInt("CAIRN_ORPHAN_PROTECTION_SECONDS", 86_400).pipe(Config.map(Duration.seconds)),
  historyRetention: Config.option(
    Config.integer("CAIRN_HISTORY_RETENTION_SECONDS").pipe(
      Config.validate({ message: "CAIRN_HISTORY_RETENTION_SECONDS must be a whole number of seconds >= 0", validation: (n) => n >= 0 }),
      Config.map(Duration.seconds)
    )
  ),
  httpHeadersTimeout: millis("CAIRN_HTTP_HEADERS_TIMEOUT_MS", 20_000),
  httpIdleTimeout: millis("CAIRN_HTTP_IDLE_TIMEOUT_MS", 120_000),
  contentCacheBytes: positiveInt("CAIRN_CONTENT_CACHE_BYTES", 64 * 1024 * 1024),
  storage,
  contentRedirectSeconds: contentRedirect,
  secretKeys
})

export const CairnConfigLive = Layer.effect(CairnConfig, cairnConfig)

/** For tests and scripts that build a config by hand. */
export const CairnConfigFrom = (overrides: Partial<CairnConfigShape>) =>
  Layer.effect(CairnConfig, Effect.map(cairnConfig, (c) => ({ ...c, ...overrides })))
