/** The content store's task kinds (the engine's own are in src/engine/kinds). */
import type { TaskKind } from "../../engine/kind.js"
import type { ContentServices } from "../services.js"
import { distributionSet } from "./distribution-set.js"
import { filePublish } from "./file-publish.js"
import { fileSync } from "./file-sync.js"
import { historyPurge } from "./history-purge.js"
import { orphansCleanup } from "./orphans-cleanup.js"
import { repositoryModify } from "./repository-modify.js"
import { repositoryPrune } from "./repository-prune.js"

export const contentKinds: ReadonlyArray<TaskKind<any, ContentServices>> = [
  fileSync,
  repositoryModify,
  filePublish,
  distributionSet,
  orphansCleanup,
  repositoryPrune,
  historyPurge
]
