/**
 * The services content task handlers and the content app run with, and the layer that builds the
 * artifact store of a process: CAIRN_STORAGE=local (the default) keeps artifacts under
 * `<CAIRN_DATA_DIR>/artifacts` (or CAIRN_ARTIFACTS_DIR); CAIRN_STORAGE=s3 in an S3-protocol object
 * store (CAIRN_S3_*; see src/config/config.ts).
 */
import { Config, Effect, Layer, Redacted } from "effect"
import * as path from "node:path"
import { CairnConfig } from "../config/config.js"
import type { Db } from "../db/client.js"
import { ArtifactStorage } from "./storage.js"
import { LocalArtifactStorage } from "./storage-local.js"
import { S3ArtifactStorage } from "./storage-s3.js"

export type ContentServices = Db | ArtifactStorage | CairnConfig

export const StorageLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const storage = config.storage
    if (storage.kind === "s3") {
      return S3ArtifactStorage.layer({
        bucket: storage.bucket,
        prefix: storage.prefix,
        endpoint: storage.endpoint,
        region: storage.region,
        forcePathStyle: storage.forcePathStyle,
        requestTimeoutMs: storage.requestTimeoutMs,
        credentials: storage.credentials && {
          accessKeyId: Redacted.value(storage.credentials.accessKeyId),
          secretAccessKey: Redacted.value(storage.credentials.secretAccessKey),
          sessionToken: storage.credentials.sessionToken && Redacted.value(storage.credentials.sessionToken)
        }
      })
    }
    const dir = yield* Config.string("CAIRN_ARTIFACTS_DIR").pipe(Config.withDefault(path.join(config.dataDir, "artifacts")))
    return LocalArtifactStorage.layer(path.resolve(dir))
  })
)

export { ArtifactStorage }
