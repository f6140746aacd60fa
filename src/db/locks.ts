/**
 * Every PostgreSQL advisory lock cairn takes, in one place. test/advisory-locks.test.ts fails when
 * a `pg_*advisory*_lock(` call in TypeScript or SQL uses a class that is not registered here.
 *
 * Two-key locks `(class int, key int)`: the class says what the key means, so two uses never
 * collide by accident. SQL files cannot import these constants: they write the number, with a
 * comment naming the class.
 *
 * | class | name             | key                  | mode                                   | taken by |
 * |-------|------------------|----------------------|----------------------------------------|----------|
 * | 1     | `fcfsKey`        | hashtext(resource key) | transaction, exclusive               | `cairn_lock_keys` (src/engine/sql/cairn_lock_keys.sql): submission and release of tasks on a key (DESIGN.md §4 "FCFS queues") |
 * | 2     | `workerLiveness` | workers.lock_key     | session, held while the worker lives   | worker registration (src/engine/worker.ts); tried by `cairn_reap` to find dead workers (§6) |
 * | 3     | `reaper`         | 0                    | transaction, try                       | `cairn_reap` (src/engine/sql/cairn_reap.sql): one reaper at a time (§6) |
 * | 4     | `artifactDigest` | hashtext(sha256)     | transaction, shared / try exclusive    | adopters of stored bytes share it (src/content/artifacts.ts), the orphan cleanup tries it exclusively (src/content/cleanup.ts) (§12) |
 * | 5     | `historyPurge`   | 0                    | session, try                           | the automatic history purge (src/content/lifecycle/auto-purge.ts): one at a time across the cluster (§19) |
 * | 6     | `indexCompaction`| 0                    | session, try                           | the rebuild of sparse indexes (src/db/index-compaction.ts): one compactor at a time across the cluster (§19) |
 *
 * One-key locks `(key bigint)` are a separate space in PostgreSQL (never equal to a two-key lock):
 *
 * | key         | name            | mode    | taken by |
 * |-------------|-----------------|---------|----------|
 * | 7_240_001   | `MIGRATION_LOCK` | session | src/db/migrate.ts: one process migrates at a time (drizzle's migrator takes no lock); the index compactor tries it shared (src/db/index-compaction.ts) so that no migration's DDL queues behind a rebuild |
 */

/** Classes of two-key advisory locks `(class, key)`. */
export const LockClass = {
  fcfsKey: 1,
  workerLiveness: 2,
  reaper: 3,
  artifactDigest: 4,
  historyPurge: 5,
  indexCompaction: 6
} as const

/** The one-key advisory lock held around migrations. */
export const MIGRATION_LOCK = 7_240_001
