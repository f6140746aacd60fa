/**
 * Applies the drizzle migrations in `drizzle/`. drizzle's migrator takes no lock, so concurrent
 * starts (a server and three workers at once) would race: we hold a session advisory lock around it
 * (MIGRATION_LOCK, src/db/locks.ts).
 */
import { Effect } from "effect"
import { migrate } from "drizzle-orm/node-postgres/migrator"
import { drizzle } from "drizzle-orm/node-postgres"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { DbError } from "./client.js"
import { MIGRATION_LOCK } from "./locks.js"

export const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url))

export const runMigrations = (url: string) =>
  Effect.tryPromise({
    try: async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => undefined)
      await client.connect()
      try {
        await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`)
        await migrate(drizzle(client), { migrationsFolder })
      } finally {
        await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`).catch(() => undefined)
        await client.end().catch(() => undefined)
      }
    },
    catch: (cause) => new DbError({ message: `migration failed: ${(cause as Error).message}`, cause })
  })
