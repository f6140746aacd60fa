/**
 * The file type's unit: a file at a relative path, `(relative_path, sha256, size)`. A repository
 * version holds one file per relative path (the repository key is the path, as in Pulp's file
 * plugin); nothing is kept beyond the core's columns.
 */
import type { UnitType } from "../../content/plugin.js"

export const fileUnit = {
  type: "file",
  unit: { repoKey: (u) => u.relative_path, repoKeyName: "relative path" }
} as const satisfies UnitType<undefined>
