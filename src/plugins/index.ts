/**
 * The content-type plugins of this build: the one list the core reads (src/content/registry.ts).
 * The first is the default type of a repository or remote created without one.
 */
import type { ContentPlugin } from "../content/plugin.js"
import { filePlugin } from "./file/index.js"
import { pythonPlugin } from "./python/index.js"

export const plugins: ReadonlyArray<ContentPlugin> = [filePlugin, pythonPlugin]
