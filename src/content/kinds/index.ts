/**
 * The content store's task kinds (the engine's own are in src/engine/kinds): the core's, and each
 * content-type plugin's own kinds with its `<type>.publish` (src/content/publish.ts).
 */
import type { TaskKind } from "../../engine/kind.js"
import { publishKind } from "../publish.js"
import { plugins } from "../registry.js"
import type { ContentServices } from "../services.js"
import { distributionSet } from "./distribution-set.js"
import { historyPurge } from "./history-purge.js"
import { orphansCleanup } from "./orphans-cleanup.js"
import { repositoryModify } from "./repository-modify.js"
import { repositoryPrune } from "./repository-prune.js"
import { downloadShard } from "../sync-shards.js"

export const contentKinds: ReadonlyArray<TaskKind<any, ContentServices>> = [
  ...plugins.flatMap((p) => [...p.kinds, publishKind(p)]),
  repositoryModify,
  distributionSet,
  orphansCleanup,
  repositoryPrune,
  historyPurge,
  downloadShard
]
