/** The task kinds the engine itself ships. The content store adds its own (src/content). */
import type { TaskKind } from "../kind.js"
import { debugSleep } from "./debug-sleep.js"

export const builtinKinds: ReadonlyArray<TaskKind<any, never>> = [debugSleep]
