/** The PULP_MANIFEST format moved to the file plugin (src/plugins/file/manifest.ts); this path stays for its importers. */
export * from "../plugins/file/manifest.js"
