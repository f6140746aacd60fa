/**
 * The content-type plugins this build knows (listed in src/plugins/index.ts), by type. The core
 * asks here, never a plugin by name: adding a type changes nothing under src/content/.
 *
 * Plugins import core modules that ask here, so the map is built on first use rather than when
 * this module loads (which may be before the plugins' modules have).
 */
import { plugins } from "../plugins/index.js"
import type { ContentPlugin } from "./plugin.js"

let byType: ReadonlyMap<string, ContentPlugin> | undefined
const table = () => (byType ??= new Map(plugins.map((p) => [p.type, p])))

/** The plugin of a type the database recorded (a type no plugin has is a bug: the column is a foreign key). */
export const pluginOf = (type: string): ContentPlugin => {
  const plugin = table().get(type)
  if (plugin === undefined) throw new Error(`no content-type plugin for type ${JSON.stringify(type)}`)
  return plugin
}

/** The plugin of a type a client named, if there is one. */
export const findPlugin = (type: string): ContentPlugin | undefined => table().get(type)

/** The type of a repository or remote created without one: the first plugin's ("file"). */
export const defaultType = (): string => plugins[0]!.type

export { plugins }
