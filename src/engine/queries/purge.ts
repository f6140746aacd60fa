/**
 * History purge's statements (src/engine/purge.ts).
 */
import { type SQL, sql } from "drizzle-orm"
import { Effect } from "effect"
import { type Tx, txRows } from "../../db/client.js"

/**
 * Every (table, column) outside the engine that references a future by foreign key: a payload row
 * holding its future (a repository version, a publication, a distribution revision). Read from the
 * catalog, so the engine knows no other module's tables and a new holder needs no change here.
 * (`task_inputs` is the engine's own reference: the purge handles it per graph.)
 */
export const futureHolders = (on: Tx) =>
  txRows<{ table: string; column: string }>(on, sql`
    SELECT rel.relname AS "table", att.attname AS "column"
    FROM pg_constraint c
    JOIN pg_class rel ON rel.oid = c.conrelid
    JOIN pg_attribute att ON att.attrelid = c.conrelid AND att.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND c.confrelid = 'futures'::regclass AND rel.relname <> 'task_inputs'
    ORDER BY 1, 2`)

/** "No such row references future `f`" for every holder. */
export const unheldFuture = (holders: ReadonlyArray<{ readonly table: string; readonly column: string }>): SQL =>
  holders.length === 0
    ? sql`true`
    : sql.join(
      holders.map((h) => sql`NOT EXISTS (SELECT 1 FROM ${sql.identifier(h.table)} x WHERE x.${sql.identifier(h.column)} = f.id)`),
      sql` AND `
    )

/**
 * A page of graphs below `before` (ids are ULIDs, newest first) every task of which settled before
 * `cutoff`, locked FOR UPDATE SKIP LOCKED (two purges never take the same graphs).
 */
export const settledGraphs = (tx: Tx, before: string, cutoff: string, limit: number) =>
  txRows<{ id: string }>(tx, sql`
    SELECT g.id FROM graphs g
    WHERE g.id < ${before}
      AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.graph_id = g.id
                      AND (t.state IN ('blocked', 'ready', 'running') OR t.finished_at >= ${cutoff}::timestamptz))
    ORDER BY g.id DESC LIMIT ${limit}
    FOR UPDATE OF g SKIP LOCKED`)

/**
 * Of `graphs`, those with a future something keeps: a payload row (`unheld` is false), or a task of
 * a graph not among them that takes it as input (history that is not being purged).
 */
export const heldGraphs = (tx: Tx, graphs: ReadonlyArray<string>, unheld: SQL) =>
  txRows<{ id: string }>(tx, sql`
    SELECT DISTINCT t.graph_id AS id
    FROM tasks t JOIN futures f ON f.producer_task = t.id
    WHERE t.graph_id = ANY(${sql.param([...graphs])}::text[])
      AND (NOT (${unheld})
           OR EXISTS (SELECT 1 FROM task_inputs ti JOIN tasks c ON c.id = ti.task_id
                      WHERE ti.future_id = f.id AND c.graph_id <> ALL(${sql.param([...graphs])}::text[])))`)

/**
 * Delete these graphs with their tasks, their tasks' input edges and their futures: one statement,
 * so the foreign keys between them are checked at its end, when all are gone. Anything else that
 * still references one of them makes it fail (23503): the caller's safety net.
 */
export const deleteGraphs = (tx: Tx, graphs: ReadonlyArray<string>) =>
  txRows<{ graphs: number; tasks: number; futures: number }>(tx, sql`
    WITH t AS (SELECT id FROM tasks WHERE graph_id = ANY(${sql.param([...graphs])}::text[])),
         edges AS (DELETE FROM task_inputs WHERE task_id IN (SELECT id FROM t)),
         f AS (DELETE FROM futures WHERE producer_task IN (SELECT id FROM t) RETURNING 1),
         td AS (DELETE FROM tasks WHERE id IN (SELECT id FROM t) RETURNING 1),
         gd AS (DELETE FROM graphs WHERE id = ANY(${sql.param([...graphs])}::text[]) RETURNING 1)
    SELECT (SELECT count(*) FROM gd)::int AS graphs, (SELECT count(*) FROM td)::int AS tasks, (SELECT count(*) FROM f)::int AS futures`)

export const cutoffOf = (tx: Tx, olderThanSeconds: number) =>
  Effect.map(
    txRows<{ cutoff: string; ms: string }>(tx, sql`
      SELECT c::text AS cutoff, (extract(epoch FROM c) * 1000)::bigint::text AS ms
      FROM (SELECT now() - make_interval(secs => ${olderThanSeconds}) AS c) x`),
    ([r]) => ({ cutoff: r!.cutoff, ms: Number(r!.ms) })
  )
