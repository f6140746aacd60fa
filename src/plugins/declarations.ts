/**
 * The declarations of this build's content types, in the order of src/plugins/index.ts (the first is
 * the default type): what the API's definition reads (src/api/named-groups.ts). Apart from the
 * plugins because the typed client imports that definition and must not load server code with it;
 * test/content-plugin-seam.test.ts checks that the two lists agree and that the client's imports
 * stay clear of the plugins.
 */
import type { PluginDeclaration } from "../content/plugin.js"
import { fileDeclaration } from "./file/declaration.js"
import { pythonDeclaration } from "./python/declaration.js"

export const declarations: ReadonlyArray<PluginDeclaration> = [fileDeclaration, pythonDeclaration]
