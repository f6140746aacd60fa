/** The fixture upstream lives beside the scripts that use it too (the soak run): scripts/lib/upstream.ts. */
export * from "../../scripts/lib/upstream.js"
