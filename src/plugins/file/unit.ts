/**
 * The file type's unit: a file at a relative path, `(relative_path, sha256, size)`. A repository
 * version holds one file per relative path (the repository key is the path, as in Pulp's file
 * plugin); nothing is kept beyond the core's columns.
 */
import type { UnitType } from "../../content/plugin.js"
import { fileDeclaration } from "./declaration.js"

export const fileUnit = {
  type: fileDeclaration.type,
  unit: { repoKey: (u) => u.relative_path, repoKeyName: "relative path" }
} as const satisfies UnitType<undefined>
