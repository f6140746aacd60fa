/**
 * The python plugin's table: what it knows of a Python distribution beyond the core's unit
 * (`content_units`: type "python", relative_path = the file name, sha256, size). One row per unit,
 * written when the unit is recorded (a sync, an upload) and never changed; it goes with its unit
 * when an orphan cleanup deletes that (the core knows nothing of this table).
 */
import { index, pgTable, text } from "drizzle-orm/pg-core"
import { contentUnits } from "../../db/content-schema.js"

export const pythonPackages = pgTable(
  "python_packages",
  {
    contentId: text("content_id").primaryKey().references(() => contentUnits.id, { onDelete: "cascade" }),
    /** The project's name as the distribution's metadata (or the index's project list) spells it. */
    name: text("name").notNull(),
    /** PEP 503-normalised: what the index pages are grouped and linked by. */
    project: text("project").notNull(),
    /** PEP 440-normalised. */
    version: text("version").notNull(),
    filename: text("filename").notNull(),
    packagetype: text("packagetype", { enum: ["bdist_wheel", "sdist"] }).notNull(),
    /** Requires-Python, as the index or the metadata gives it (pip reads it from the index page). */
    requiresPython: text("requires_python")
  },
  (t) => [index("python_packages_project").on(t.project)]
)
