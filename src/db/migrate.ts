/**
 * Applies the drizzle migrations in `drizzle/`. drizzle's migrator takes no lock, so concurrent
 * starts (a server and three workers at once) would race: we hold a session advisory lock around it.
 */
import { Effect } from "effect"
import { migrate } from "drizzle-orm/node-postgres/migrator"
import { drizzle } from "drizzle-orm/node-postgres"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { DbError } from "./client.js"

const MIGRATION_LOCK = 7_240_001 // any constant; pg_advisory_lock(bigint) space, distinct from the engine's (int, int) locks

export const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url))

export const runMigrations = (url: string) =>
  Effect.tryPromise({
    try: async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => undefined)
      await client.connect()
      try {
        await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK])
        await migrate(drizzle(client), { migrationsFolder })
      } finally {
        await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined)
        await client.end().catch(() => undefined)
      }
    },
    catch: (cause) => new DbError({ message: `migration failed: ${(cause as Error).message}`, cause })
  })
