import { defineConfig } from "drizzle-kit"

// Table migrations are generated from the schema files below. Functions and triggers live one file
// each under src/**/sql/ and `npm run db:functions` writes their migrations; checks and partial
// indexes drizzle cannot express are hand-written `--custom` migrations (drizzle/README.md).
export default defineConfig({
  dialect: "postgresql",
  // A content-type plugin's tables are in its own src/plugins/<type>/schema.ts (src/content/plugin.ts).
  schema: ["./src/db/schema.ts", "./src/db/content-schema.ts", "./src/db/schedule-schema.ts", "./src/plugins/*/schema.ts"],
  out: "./drizzle"
})
