/**
 * What the API's definition knows of the python type (src/content/plugin.ts, `PluginDeclaration`):
 * a remote's `includes` / `excludes` (requirements, checked with lib/requirements.ts), and a unit
 * shown by name, version and file name.
 */
import { Either, Schema } from "effect"
import type { PluginDeclaration } from "../../content/plugin.js"
import { compileSelection } from "./lib/requirements.js"

const Requirements = Schema.Array(Schema.String)

export const pythonDeclaration = {
  type: "python",
  remote: {
    fields: { includes: Schema.optional(Requirements), excludes: Schema.optional(Requirements) },
    check: (fields: Readonly<Record<string, unknown>>) =>
      Either.match(compileSelection({ includes: fields.includes as Array<string> | undefined, excludes: fields.excludes as Array<string> | undefined }), {
        onLeft: (e) => [e.message],
        onRight: () => []
      }),
    urlMeans: "the root of a simple index (PEP 503 / PEP 691), ending in /"
  },
  content: { view: { name: Schema.String, version: Schema.String, filename: Schema.String } }
} as const satisfies PluginDeclaration
