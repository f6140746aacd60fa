/**
 * What the API's definition knows of the file type (src/content/plugin.ts, `PluginDeclaration`): no
 * remote fields of its own, and a unit shown by its relative path.
 */
import { Schema } from "effect"
import type { PluginDeclaration } from "../../content/plugin.js"

export const fileDeclaration = {
  type: "file",
  remote: { fields: {}, urlMeans: "the address of a PULP_MANIFEST" },
  content: { view: { relative_path: Schema.String } }
} as const satisfies PluginDeclaration
