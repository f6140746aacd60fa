import { defineConfig } from "drizzle-kit"

// Migrations are generated from src/db/schema.ts; hand-written SQL (triggers, functions, partial
// indexes drizzle cannot express) lives in `--custom` migrations beside them.
export default defineConfig({
  dialect: "postgresql",
  schema: ["./src/db/schema.ts", "./src/db/content-schema.ts"],
  out: "./drizzle"
})
