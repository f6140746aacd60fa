/**
 * The services content task handlers and the content app run with, and the layer that builds the
 * artifact store of a process (`<CAIRN_DATA_DIR>/artifacts`, or CAIRN_ARTIFACTS_DIR).
 */
import { Config, Effect, Layer } from "effect"
import * as path from "node:path"
import { CairnConfig } from "../config/config.js"
import type { Db } from "../db/client.js"
import { ArtifactStorage } from "./storage.js"
import { LocalArtifactStorage } from "./storage-local.js"

export type ContentServices = Db | ArtifactStorage | CairnConfig

export const StorageLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* CairnConfig
    const dir = yield* Config.string("CAIRN_ARTIFACTS_DIR").pipe(Config.withDefault(path.join(config.dataDir, "artifacts")))
    return LocalArtifactStorage.layer(path.resolve(dir))
  })
)

export { ArtifactStorage }
