/**
 * The artifact store in an S3-protocol object store (AWS S3, MinIO, Ceph RGW, R2, ...).
 *
 * Layout under the configured prefix of the bucket (the same names as on disk):
 *
 *   <prefix><aa>/<bb>/<sha256>   the artifacts
 *   <prefix>tmp/put-<random>     uploads whose digest was not announced, until verified and copied
 *   <prefix>tmp/tomb-<sha256>    tombstones: empty objects, each the mark of a cleanup removing
 *                                that artifact (see `tombstone` in ./storage.ts)
 *
 * An object store has no rename and no fsync, but it has what they were for on disk: an object
 * appears whole or not at all (a PUT, a completed multipart upload, a CopyObject), and it is
 * durable once the store answered. So (DESIGN.md, "Object storage: correctness without rename or
 * fsync", has the whole argument):
 *
 * - With an announced digest (syncs, on-demand fetches, uploads with a checksum) the bytes stream
 *   straight to the final key, and the upload is completed only after `readVerified` has checked
 *   every byte: the body stream ends only then, and a failed check destroys it instead, which
 *   aborts the upload. Without one (manifests, uploads without a checksum) they stream to a
 *   temporary key, and once verified are copied to the final key (server-side) and the temporary
 *   object deleted. Either way the final key holds verified bytes or nothing, and what landed is
 *   checked (its size: some servers store what they were sent differently, e.g. an aws-chunked
 *   body, and the protocol gives no cheaper way to check a digest).
 * - The client computes no checksums of its own (`WHEN_REQUIRED`): bodies go out plain, so what
 *   lands is what we verified, on servers that do not understand aws-chunked encoding too.
 * - Nothing is held in memory whole: the body goes out in parts of at least 5 MiB, two at a time.
 * - Temporary objects and unfinished multipart uploads that outlive a crash are deleted by
 *   `sweep` once old enough (at start and by every orphan cleanup).
 *
 * Errors become `StorageError`s whose message names the cause in a sentence (unreachable,
 * overloaded, refused credentials, no such bucket, ...), never the credentials. The SDK retries
 * 5xx, throttling and network errors itself (three attempts, with backoff).
 */
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { Duration, Effect, Layer, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { PassThrough, Readable } from "node:stream"
import {
  ArtifactStorage,
  type ArtifactStorageShape,
  BadRange,
  type ByteRange,
  checkSha256,
  isSha256,
  NotStored,
  type PutExpectations,
  StorageError
} from "./storage.js"
import { checkExpectations, checkRange, readVerified } from "./storage-verify.js"

export interface S3StorageOptions {
  readonly bucket: string
  /** Prepended to every key as is (give it a trailing "/" to make it a folder). */
  readonly prefix: string
  /** The store's URL; undefined: AWS, by region. */
  readonly endpoint?: string | undefined
  readonly region: string
  readonly forcePathStyle: boolean
  /** Undefined: the SDK's default chain (environment, profile, instance role). */
  readonly credentials?: {
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly sessionToken?: string | undefined
  } | undefined
  /** A request with no progress for this long fails (and is retried). Default 60 s. */
  readonly requestTimeoutMs?: number | undefined
  /** Attempts per request, retries included. Default 3. */
  readonly maxAttempts?: number | undefined
}

/** Temporary objects are complete uploads waiting for a copy: one this old belongs to a dead put. */
const STALE_TEMP_AGE = Duration.hours(1)
/** Unfinished multipart uploads: a slow upload may run for hours, so these get a day. */
const STALE_MULTIPART_AGE = Duration.hours(24)
/** The smallest part S3 accepts, and the number of parts it accepts. */
const MIN_PART = 5 * 1024 * 1024
const MAX_PARTS = 10_000
/** CopyObject's limit; larger copies need multipart copies, which we avoid (see `put`). */
const MAX_COPY = 5 * 1024 * 1024 * 1024

const TEMP_PREFIX = "tmp/put-"
const TOMB_PREFIX = "tmp/tomb-"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

interface SdkError {
  readonly name?: string
  readonly code?: string
  readonly message?: string
  readonly $metadata?: { readonly httpStatusCode?: number }
  readonly $fault?: string
}

const statusOf = (e: unknown) => (e as SdkError | null)?.$metadata?.httpStatusCode
const nameOf = (e: unknown) => (e as SdkError | null)?.name

const isNotFound = (e: unknown) =>
  statusOf(e) === 404 || nameOf(e) === "NotFound" || nameOf(e) === "NoSuchKey"

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE", "ETIMEDOUT"])
const CREDENTIAL_ERRORS = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"])

/**
 * An SDK or network error as a StorageError naming its cause. `secrets` are cut out of anything
 * the server or the SDK wrote (a server may echo what it was sent).
 */
export const toS3StorageError = (
  cause: unknown,
  doing: string,
  where: { readonly bucket: string; readonly endpoint: string; readonly secrets: ReadonlyArray<string> }
): StorageError => {
  if (cause instanceof StorageError) return cause
  const e = (cause ?? {}) as SdkError
  const status = statusOf(e)
  const name = e.name ?? "Error"
  const code = e.code ?? name
  const redact = (s: string) => where.secrets.reduce((t, secret) => secret.length > 0 ? t.split(secret).join("[redacted]") : t, s)
  const raw = redact(e.message ?? String(cause))
  // HEAD answers have no body, so no error code: the SDK then names the error "Unknown" or the like.
  const label = /^(Unknown|Error|\d+)$/.test(name) ? "" : ` ${name}`
  const sentence = CREDENTIAL_ERRORS.has(name)
    ? `the object store refused the credentials (${name})`
    : name === "AccessDenied" || status === 403
    ? `the object store denied access to bucket ${where.bucket} (403${label}): check the credentials and the bucket's policy`
    : name === "NoSuchBucket"
    ? `the object store has no bucket ${where.bucket}`
    : name === "CredentialsProviderError"
    ? `no credentials for the object store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`
    : name === "SlowDown" || status === 503
    ? `the object store is overloaded or unavailable (${status ?? 503}${label}); retried, still failing`
    : status !== undefined && status >= 500
    ? `the object store failed (${status}${label}); retried, still failing`
    : NETWORK_CODES.has(code) || NETWORK_CODES.has(name)
    ? `the object store at ${where.endpoint} is unreachable (${code})`
    : name === "TimeoutError" || name === "RequestTimeout" || /timed? ?out/i.test(raw)
    ? `the object store at ${where.endpoint} did not answer in time`
    : `the object store failed: ${raw}`
  return new StorageError({ message: `${sentence} (while ${doing})`, code, cause })
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/** The first `n` bytes of `source`, which is destroyed once they are through (or the reader went away). */
const take = (source: Readable, n: number): Readable => {
  let left = n
  const out = new PassThrough()
  source.on("data", (chunk: Buffer) => {
    if (left <= 0) return
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk
    left -= part.length
    if (!out.write(part)) source.pause()
    if (left === 0) {
      out.end()
      source.destroy()
    }
  })
  out.on("drain", () => source.resume())
  source.on("end", () => out.end())
  source.on("error", (e) => out.destroy(e))
  out.on("close", () => source.destroy())
  return out
}

/** One effect at a time per key, in this process. */
const keyedMutex = () => {
  const held = new Map<string, { readonly sem: Effect.Semaphore; users: number }>()
  return <A, E, R>(key: string, body: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      let entry = held.get(key)
      if (entry === undefined) held.set(key, entry = { sem: Effect.unsafeMakeSemaphore(1), users: 0 })
      const e = entry
      e.users++
      return e.sem.withPermits(1)(body).pipe(Effect.ensuring(Effect.sync(() => {
        if (--e.users === 0) held.delete(key)
      })))
    })
}

export const makeS3ArtifactStorage = (opts: S3StorageOptions): Effect.Effect<ArtifactStorageShape, StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    // The SDK warns on Node 20 that its releases after early 2027 need Node 22; the versions are
    // pinned, so the notice says nothing to a cairn operator.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"
    const client = new S3Client({
      region: opts.region,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle,
      ...(opts.credentials !== undefined ? { credentials: { ...opts.credentials } } : {}),
      // Plain bodies, and no checksum demanded of answers: what we send is what we verified, and
      // servers that do not decode aws-chunked bodies store it as sent.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: opts.maxAttempts ?? 3,
      // An idle socket (no byte either way) fails the request, which the SDK retries; no limit on a
      // request's total time (a large object streams for as long as it takes).
      requestHandler: { connectionTimeout: 5_000, socketTimeout: opts.requestTimeoutMs ?? 60_000 }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))

    const { bucket, prefix } = opts
    const where = {
      bucket,
      endpoint: opts.endpoint ?? `AWS S3 (${opts.region})`,
      secrets: [opts.credentials?.secretAccessKey ?? "", opts.credentials?.sessionToken ?? ""]
    }
    const finalKey = (sha: string) => `${prefix}${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`
    const tombKey = (sha: string) => `${prefix}${TOMB_PREFIX}${sha}`

    /** One request; its failure as a StorageError. Interrupting it aborts the request. */
    const send = <A>(doing: string, f: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, StorageError> =>
      Effect.tryPromise({ try: f, catch: (e) => toS3StorageError(e, doing, where) })

    const head = (key: string, doing: string) =>
      send(doing, (abortSignal) =>
        client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }).then(
          (r) => ({ size: r.ContentLength ?? 0 }),
          (e) => {
            if (isNotFound(e)) return undefined
            throw e
          }
        ))

    const del = (key: string, doing: string) =>
      send(doing, (abortSignal) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })).pipe(
        Effect.asVoid
      )

    /** Every key under `keyPrefix`, with its last-modified time, page by page. */
    const list = (keyPrefix: string, doing: string) =>
      Effect.gen(function*() {
        const out: Array<{ key: string; modified: number }> = []
        let token: string | undefined
        do {
          const page = yield* send(doing, (abortSignal) =>
            client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: keyPrefix, ContinuationToken: token }), { abortSignal }))
          for (const o of page.Contents ?? []) {
            if (o.Key !== undefined) out.push({ key: o.Key, modified: o.LastModified?.getTime() ?? 0 })
          }
          token = page.IsTruncated ? page.NextContinuationToken : undefined
        } while (token !== undefined)
        return out
      })

    /** The same bytes stored twice at once in this process are uploaded once (and created once). */
    const perDigest = keyedMutex()

    // --- put -------------------------------------------------------------------------------------

    /**
     * Stream `source` to `key`, completing the upload only once `readVerified` passed: the body
     * ends after the check, or is destroyed, which makes the SDK abort (a multipart upload) or never
     * send (a single PUT, sent only once the body ended). Then check the size of what landed.
     */
    const upload = (key: string, source: Parameters<ArtifactStorageShape["put"]>[0], expected: PutExpectations | undefined) =>
      Effect.gen(function*() {
        const announced = expected?.size ?? expected?.maxSize ?? 0
        const body = new PassThrough()
        const uploader = new Upload({
          client,
          params: { Bucket: bucket, Key: key, Body: body, ContentType: "application/octet-stream" },
          partSize: Math.max(MIN_PART, Math.ceil(announced / (MAX_PARTS - 1))),
          queueSize: 2,
          leavePartsOnError: false
        })
        let failure: unknown
        const uploading = uploader.done().catch((e) => {
          failure = e
          body.destroy()
        })
        /** Write a chunk, waiting while the uploader is behind; fails if the upload failed. */
        const write = (chunk: Uint8Array) =>
          Effect.async<void, StorageError>((resume) => {
            const fail = () => resume(Effect.fail(toS3StorageError(failure ?? new Error("the upload stopped"), "uploading", where)))
            if (body.destroyed) return fail()
            if (body.write(chunk)) return resume(Effect.void)
            const onDrain = () => {
              body.off("close", fail)
              resume(Effect.void)
            }
            body.once("drain", onDrain)
            body.once("close", fail)
            return Effect.sync(() => {
              body.off("drain", onDrain)
              body.off("close", fail)
            })
          })

        const verified = yield* readVerified(source, expected, write).pipe(
          Effect.onExit((exit) =>
            exit._tag === "Success" ? Effect.void : Effect.promise(async () => {
              // Nothing may complete: destroying the body fails the SDK's read of it, and the
              // abort stops parts in flight and aborts the multipart upload.
              body.destroy(new Error("put failed before the upload was complete"))
              await uploader.abort().catch(() => undefined)
              await uploading
            })
          )
        )
        body.end()
        yield* Effect.promise(() => uploading)
        if (failure !== undefined) return yield* Effect.fail(toS3StorageError(failure, "uploading", where))
        const landed = yield* head(key, "checking an upload")
        if (landed?.size !== verified.size) {
          yield* del(key, "removing a damaged upload").pipe(Effect.ignore)
          return yield* new StorageError({
            message: `the object store stored ${landed === undefined ? "nothing" : `${landed.size} bytes`} for an upload of ${verified.size} bytes (key ${key})`
          })
        }
        return verified
      })

    const put: ArtifactStorageShape["put"] = (source, expected) =>
      Effect.gen(function*() {
        yield* checkExpectations(expected)
        const wantSha = expected?.sha256
        if (wantSha !== undefined) {
          // Straight to the final key, once per digest in this process.
          return yield* perDigest(
            wantSha,
            Effect.gen(function*() {
              const there = yield* head(finalKey(wantSha), "looking up an artifact")
              if (there !== undefined && (expected?.size === undefined || there.size === expected.size)) {
                // Already stored: the source is still read and checked (the caller's bytes may be
                // wrong), but not sent.
                const read = yield* readVerified(source, expected, () => Effect.void)
                if (read.size === there.size) return { ...read, created: false }
                // The stored copy is not the artifact's size: damaged. It goes, so that the next
                // put (which will send the bytes) repairs it.
                yield* del(finalKey(wantSha), "removing a damaged artifact")
                return yield* new StorageError({
                  message: `the object store held a damaged copy of ${wantSha} (${there.size} bytes, not ${read.size}); it was removed, store the artifact again`
                })
              }
              const stored = yield* upload(finalKey(wantSha), source, expected)
              if (there !== undefined) yield* Effect.logWarning(`artifact store: replaced a damaged copy of ${wantSha} (wrong size)`)
              return { ...stored, created: true }
            })
          )
        }
        // Digest unknown until the end: a temporary key, then a server-side copy.
        const temp = `${prefix}${TEMP_PREFIX}${randomBytes(12).toString("hex")}`
        return yield* Effect.gen(function*() {
          const stored = yield* upload(temp, source, expected)
          const key = finalKey(stored.sha256)
          return yield* perDigest(
            stored.sha256,
            Effect.gen(function*() {
              const there = yield* head(key, "looking up an artifact")
              if (there?.size === stored.size) return { ...stored, created: false }
              if (stored.size > MAX_COPY) {
                return yield* new StorageError({
                  message: `an artifact over 5 GiB is stored in an object store only when its sha256 is announced (an upload's x-checksum-sha256)`
                })
              }
              yield* send("publishing an artifact", (abortSignal) =>
                client.send(
                  new CopyObjectCommand({
                    Bucket: bucket,
                    Key: key,
                    CopySource: `${bucket}/${temp.split("/").map(encodeURIComponent).join("/")}`,
                    ContentType: "application/octet-stream",
                    MetadataDirective: "REPLACE"
                  }),
                  { abortSignal }
                ))
              const landed = yield* head(key, "checking a published artifact")
              if (landed?.size !== stored.size) {
                return yield* new StorageError({
                  message: `the object store copied ${landed === undefined ? "nothing" : `${landed.size} bytes`} for an artifact of ${stored.size} bytes (key ${key})`
                })
              }
              if (there !== undefined) {
                yield* Effect.logWarning(`artifact store: replaced a damaged copy of ${stored.sha256} (wrong size)`)
              }
              return { ...stored, created: true }
            })
          )
        }).pipe(
          // Always: the temporary object must not outlive the put (the sweep catches it if this fails).
          Effect.ensuring(del(temp, "removing a temporary object").pipe(Effect.ignore))
        )
      })

    // --- reading -----------------------------------------------------------------------------

    const stat: ArtifactStorageShape["stat"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () => head(finalKey(sha), "looking up an artifact"))

    const open: ArtifactStorageShape["open"] = (sha, range?: ByteRange) =>
      Effect.gen(function*() {
        yield* checkSha256(sha)
        yield* checkRange(range)
        const got: GetObjectCommandOutput = yield* Effect.tryPromise({
          try: (abortSignal): Promise<GetObjectCommandOutput> =>
            client.send(
              new GetObjectCommand({
                Bucket: bucket,
                Key: finalKey(sha),
                ...(range !== undefined ? { Range: `bytes=${range.start}-${range.end}` } : {})
              }),
              { abortSignal }
            ),
          catch: (e) =>
            isNotFound(e)
              ? new NotStored({ sha256: sha })
              : statusOf(e) === 416 || nameOf(e) === "InvalidRange"
              ? new BadRange({ start: range?.start ?? 0, end: range?.end ?? 0 })
              : toS3StorageError(e, "reading an artifact", where)
        })
        // (An empty object may come without a body stream.)
        if (range === undefined) return (got.Body as Readable | undefined) ?? Readable.from([])
        // A range past the end is a 416 on S3, but not on every server (some answer the whole
        // object, or an empty 206, or more than was asked for): the answer's Content-Range says
        // what was served, and is checked.
        const served = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(got.ContentRange ?? "")
        const size = served ? Number(served[3]) : undefined
        const end = size === undefined ? undefined : Math.min(range.end, size - 1)
        if (served === null || end === undefined || range.start >= size! || Number(served[1]) !== range.start || Number(served[2]) < end) {
          ;(got.Body as Readable | undefined)?.destroy()
          if (size !== undefined && range.start >= size) return yield* new BadRange({ start: range.start, end: range.end, size })
          return yield* new StorageError({
            message: `the object store answered byte range ${range.start}-${range.end} of ${sha} with ${got.ContentRange ?? "the whole object"}`
          })
        }
        const body = got.Body as Readable
        return Number(served[2]) === end ? body : take(body, end - range.start + 1)
      }).pipe(
        // A refused range gets the artifact's size, as HTTP's 416 needs it.
        Effect.catchTag("BadRange", (e) =>
          e.size !== undefined || range === undefined
            ? Effect.fail(e)
            : Effect.flatMap(head(finalKey(sha), "looking up an artifact"), (there): Effect.Effect<never, NotStored | BadRange> =>
              there === undefined ? Effect.fail(new NotStored({ sha256: sha })) : Effect.fail(new BadRange({ ...range, size: there.size }))))
      )

    const presignedUrl: ArtifactStorageShape["presignedUrl"] = (sha, seconds) =>
      Effect.flatMap(checkSha256(sha), () =>
        send("signing a URL", () => getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: finalKey(sha) }), { expiresIn: seconds })))

    // --- removal -----------------------------------------------------------------------------

    const remove: ArtifactStorageShape["remove"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () => del(finalKey(sha), "removing an artifact"))

    const tombstone: ArtifactStorageShape["tombstone"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () =>
        send("tombstoning an artifact", (abortSignal) =>
          client.send(new PutObjectCommand({ Bucket: bucket, Key: tombKey(sha), Body: new Uint8Array(0) }), { abortSignal })).pipe(
            Effect.asVoid
          ))

    const restore: ArtifactStorageShape["restore"] = (sha) =>
      Effect.flatMap(checkSha256(sha), () => del(tombKey(sha), "dropping a tombstone"))

    // The bytes first: a tombstone outliving its bytes is harmless (purged again), the reverse
    // would be a leak nobody finds.
    const purgeTombstone: ArtifactStorageShape["purgeTombstone"] = (sha) =>
      Effect.zipRight(remove(sha), del(tombKey(sha), "purging a tombstone"))

    const tombstones: ArtifactStorageShape["tombstones"] = Effect.map(
      list(prefix + TOMB_PREFIX, "listing tombstones"),
      (objects) => objects.map((o) => o.key.slice(prefix.length + TOMB_PREFIX.length)).filter(isSha256)
    )

    // --- leftovers and health ------------------------------------------------------------------

    /** Unfinished multipart uploads under the prefix older than a day, aborted; servers without the listing are skipped. */
    const sweepMultipart = Effect.gen(function*() {
      const cutoff = Date.now() - Duration.toMillis(STALE_MULTIPART_AGE)
      let aborted = 0
      let keyMarker: string | undefined
      let uploadIdMarker: string | undefined
      do {
        const page = yield* send("listing unfinished uploads", (abortSignal) =>
          client.send(
            new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
            { abortSignal }
          ))
        for (const u of page.Uploads ?? []) {
          if (u.Key === undefined || u.UploadId === undefined || (u.Initiated?.getTime() ?? Infinity) >= cutoff) continue
          yield* send("aborting an unfinished upload", (abortSignal) =>
            client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }), { abortSignal }))
          aborted++
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined
      } while (keyMarker !== undefined)
      return aborted
    }).pipe(
      Effect.catchIf((e) => e.code === "NotImplemented", () =>
        Effect.as(
          Effect.logDebug("artifact store: this object store cannot list unfinished uploads; expire them with a lifecycle rule"),
          0
        ))
    )

    const sweep: ArtifactStorageShape["sweep"] = Effect.gen(function*() {
      const cutoff = Date.now() - Duration.toMillis(STALE_TEMP_AGE)
      const stale = (yield* list(prefix + TEMP_PREFIX, "listing temporary objects")).filter((o) => o.modified < cutoff)
      yield* Effect.forEach(stale, (o) => del(o.key, "removing a stale temporary object"), { concurrency: 4, discard: true })
      const removed = stale.length + (yield* sweepMultipart)
      if (removed > 0) yield* Effect.logInfo(`artifact store: removed ${removed} stale temporary object(s) or upload(s)`)
      return removed
    })

    const check: ArtifactStorageShape["check"] = send("checking the bucket", (abortSignal) =>
      client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal })).pipe(
        // HEAD answers carry no error code: a 404 here is the bucket's.
        Effect.mapError((e) =>
          statusOf(e.cause) === 404 ? new StorageError({ message: `the object store has no bucket ${bucket} (while checking the bucket)`, code: "NoSuchBucket", cause: e.cause }) : e
        ),
        Effect.asVoid
      )

    // Start-up: the store must be usable, and what crashed puts left is swept.
    yield* check
    yield* sweep

    // An object is durable once the store acknowledged it: staging is putting, and there is
    // nothing left to persist.
    const persist: ArtifactStorageShape["persist"] = (sha256s) =>
      Effect.asVoid(Effect.forEach(sha256s, checkSha256, { discard: true }))

    return ArtifactStorage.of({
      put,
      stage: put,
      persist,
      stat,
      open,
      path: () => undefined,
      presignedUrl,
      remove,
      tombstone,
      restore,
      purgeTombstone,
      tombstones,
      sweep,
      check
    })
  })

export const S3ArtifactStorage = {
  make: makeS3ArtifactStorage,
  layer: (opts: S3StorageOptions): Layer.Layer<ArtifactStorage, StorageError> =>
    Layer.scoped(ArtifactStorage, makeS3ArtifactStorage(opts))
} as const
