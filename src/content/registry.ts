/**
 * The content-type plugins this build knows (listed in src/plugins/index.ts), by type. The core
 * asks here, never a plugin by name: adding a type changes nothing under src/content/.
 */
import { plugins } from "../plugins/index.js"
import type { ContentPlugin } from "./plugin.js"

const byType: ReadonlyMap<string, ContentPlugin> = new Map(plugins.map((p) => [p.type, p]))

/** The plugin of a type the database recorded (a type no plugin has is a bug: the column is checked). */
export const pluginOf = (type: string): ContentPlugin => {
  const plugin = byType.get(type)
  if (plugin === undefined) throw new Error(`no content-type plugin for type ${JSON.stringify(type)}`)
  return plugin
}

/** The plugin of a type a client named, if there is one. */
export const findPlugin = (type: string): ContentPlugin | undefined => byType.get(type)

/** Every type, the default ("file") first. */
export const contentTypes: ReadonlyArray<string> = plugins.map((p) => p.type)

export { plugins }
