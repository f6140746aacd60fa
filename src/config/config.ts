/**
 * One typed configuration for every cairn process, read from environment variables through
 * Effect's `Config`. An invalid value fails start-up with a message naming the variable.
 */
import { Config, Context, Duration, Effect, Layer, Option, Redacted } from "effect"

export interface CairnConfigShape {
  /** `DATABASE_URL`; `None` means "start or join the embedded PostgreSQL of `dataDir`". */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly dataDir: string
  readonly host: string
  readonly port: number
  /** Worker slots in this process (tasks it runs at once). */
  readonly workers: number
  /** How long running tasks may finish after SIGTERM before they are released for retry. */
  readonly shutdownGrace: Duration.Duration
  readonly heartbeatInterval: Duration.Duration
  /** A worker whose heartbeat is older than this is declared dead even if its session lingers. */
  readonly heartbeatTimeout: Duration.Duration
  /** How often each worker checks for dead workers (cheap: one indexed try-lock per worker row). */
  readonly reapInterval: Duration.Duration
  /** The safety-net poll: LISTEN/NOTIFY wakes workers; this only covers a lost notification. */
  readonly pollInterval: Duration.Duration
  readonly apiTokens: ReadonlyArray<Redacted.Redacted<string>>
  readonly poolSize: number
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
}

export class CairnConfig extends Context.Tag("cairn/CairnConfig")<CairnConfig, CairnConfigShape>() {}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number >= 0`, validation: (n) => n >= 0 })
  )

const millis = (name: string, fallback: number) =>
  positiveInt(name, fallback).pipe(Config.map(Duration.millis))

export const cairnConfig: Config.Config<CairnConfigShape> = Config.all({
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  dataDir: Config.string("CAIRN_DATA_DIR").pipe(Config.withDefault("./.cairn")),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("PORT").pipe(
    Config.withDefault(8080),
    Config.validate({ message: "PORT must be a whole number from 0 (pick a free port) to 65535", validation: (n) => n >= 0 && n <= 65535 })
  ),
  workers: positiveInt("CAIRN_WORKERS", 2),
  shutdownGrace: millis("CAIRN_SHUTDOWN_GRACE_MS", 30_000),
  heartbeatInterval: millis("CAIRN_HEARTBEAT_MS", 2_000),
  heartbeatTimeout: millis("CAIRN_HEARTBEAT_TIMEOUT_MS", 15_000),
  reapInterval: millis("CAIRN_REAP_INTERVAL_MS", 1_000),
  pollInterval: millis("CAIRN_POLL_INTERVAL_MS", 10_000),
  apiTokens: Config.string("CAIRN_API_TOKENS").pipe(
    Config.withDefault(""),
    Config.map((s) =>
      s.split(",").map((t) => t.trim()).filter((t) => t.length > 0).map((t) => Redacted.make(t))
    )
  ),
  poolSize: positiveInt("CAIRN_DB_POOL_SIZE", 10).pipe(
    Config.validate({ message: "CAIRN_DB_POOL_SIZE must be at least 2", validation: (n) => n >= 2 })
  ),
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
  orphanProtection: positiveInt("CAIRN_ORPHAN_PROTECTION_SECONDS", 86_400).pipe(Config.map(Duration.seconds)),
  historyRetention: Config.option(
    Config.integer("CAIRN_HISTORY_RETENTION_SECONDS").pipe(
      Config.validate({ message: "CAIRN_HISTORY_RETENTION_SECONDS must be a whole number of seconds >= 0", validation: (n) => n >= 0 }),
      Config.map(Duration.seconds)
    )
  ),
  httpHeadersTimeout: millis("CAIRN_HTTP_HEADERS_TIMEOUT_MS", 20_000),
  httpIdleTimeout: millis("CAIRN_HTTP_IDLE_TIMEOUT_MS", 120_000),
  contentCacheBytes: positiveInt("CAIRN_CONTENT_CACHE_BYTES", 64 * 1024 * 1024)
})

export const CairnConfigLive = Layer.effect(CairnConfig, cairnConfig)

/** For tests and scripts that build a config by hand. */
export const CairnConfigFrom = (overrides: Partial<CairnConfigShape>) =>
  Layer.effect(CairnConfig, Effect.map(cairnConfig, (c) => ({ ...c, ...overrides })))
