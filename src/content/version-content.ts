/**
 * A repository version's content as the API lists it (`GET .../versions/{n}/content`): the core's
 * fields of each unit and those its content type's plugin shows (src/content/plugin.ts
 * `content.view`). Apart from versions.ts because it asks the plugin registry, which loads the
 * plugins, and the plugins use versions.ts.
 */
import { Effect } from "effect"
import { pluginOf } from "./registry.js"
import { type ContentEntry, getVersion, versionContent } from "./versions.js"

/** A unit as the API lists it: the core's fields and its type's (src/content/plugin.ts `content.view`). */
export interface UnitView {
  readonly id: string
  readonly sha256: string
  readonly size: number
  readonly artifact: string | null
  readonly [field: string]: unknown
}

/**
 * Units as `GET .../versions/{n}/content` shows them: the core's fields (id, sha256, size,
 * artifact) and those their type's plugin adds (`content.view`), in the order given.
 */
const describeUnits = (units: ReadonlyArray<ContentEntry>) =>
  Effect.gen(function*() {
    const out: Array<UnitView> = []
    // A version holds units of its repository's type only; grouping keeps it one query per type anyway.
    const byType = new Map<string, Array<ContentEntry>>()
    for (const u of units) {
      const group = byType.get(u.type)
      if (group === undefined) byType.set(u.type, [u])
      else group.push(u)
    }
    const shown = new Map<string, Readonly<Record<string, unknown>>>()
    for (const [type, group] of byType) {
      const views = yield* pluginOf(type).content.describe(group)
      group.forEach((u, i) => shown.set(u.id, views[i]!))
    }
    for (const u of units) out.push({ id: u.id, ...shown.get(u.id), sha256: u.sha256, size: u.size, artifact: u.artifact })
    return out
  })

/** A page of version `number` of the repository named `name` (see versionContent), unless it was released. */
export const versionContentByNumber = (
  name: string,
  number: number,
  page: { readonly after?: string | undefined; readonly limit?: number | undefined }
) =>
  Effect.gen(function*() {
    const v = yield* getVersion(name, number)
    const limit = page.limit ?? 1000
    const rows = yield* versionContent(v.id, { after: page.after, limit: limit + 1 })
    const items = yield* describeUnits(rows.slice(0, limit))
    return rows.length > limit ? { items, next: items[items.length - 1]!.id } : { items }
  })
