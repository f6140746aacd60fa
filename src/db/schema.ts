/**
 * The engine's tables. DESIGN.md explains each one; the short version:
 *
 * - `graphs`: one row per submission.
 * - `tasks`: one row per node. `pending_inputs` counts unsettled input futures and `blocked_keys`
 *   counts resource keys on which an earlier conflicting task is still unsettled; a task is `ready`
 *   exactly when both are zero. `seq` is the submission order that FCFS is defined by; `priority`
 *   orders the claim among ready tasks (higher first, then `seq`). A ready task with `run_after`
 *   set waits for its retry (`retry_backoff_ms` doubled per attempt): it keeps its queue places
 *   and is claimable once its time has come (DESIGN.md §4 "Claim", "Retries").
 * - `futures`: one row per task output, settled exactly once (a trigger refuses anything else).
 * - `task_inputs`: data edges (task <- input future).
 * - `task_keys`: the live FCFS queues: one row per (unsettled task, resource key), deleted when the
 *   task settles, so its size is the number of unsettled tasks, never the history.
 * - `workers`: live worker processes, each tied to a session advisory lock (`lock_key`).
 * - `settle_hooks`: functions other modules register to release what a task owned when it settles.
 * - `submit_hooks`: functions other modules register to hold what a task will use when it is submitted.
 *
 * Checks and partial indexes are in hand-written migrations in `drizzle/`; functions and triggers
 * in one file each under `src/engine/sql/` (src/db/sql-files.ts).
 */
import { sql } from "drizzle-orm"
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex
} from "drizzle-orm/pg-core"

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 6, mode: "date" })

export const graphs = pgTable(
  "graphs",
  {
    id: text("id").primaryKey(),
    label: text("label"),
    createdAt: ts("created_at").notNull().defaultNow(),
    /**
     * A child graph (src/engine/children.ts): the task whose handler submitted it, and that task's
     * attempt then. No foreign key: purging the parent's graph leaves its children standing.
     */
    parentTask: text("parent_task"),
    parentAttempt: integer("parent_attempt")
  },
  (t) => [index("graphs_parent_task").on(t.parentTask).where(sql`parent_task IS NOT NULL`)]
)

export const tasks = pgTable(
  "tasks",
  {
    id: text("id").primaryKey(),
    graphId: text("graph_id").notNull().references(() => graphs.id),
    node: text("node").notNull(),
    kind: text("kind").notNull(),
    seq: bigserial("seq", { mode: "number" }).notNull(),
    params: jsonb("params").notNull(),
    state: text("state", { enum: ["blocked", "ready", "running", "succeeded", "failed", "canceled"] }).notNull(),
    pendingInputs: integer("pending_inputs").notNull(),
    blockedKeys: integer("blocked_keys").notNull(),
    exclusive: text("exclusive").array().notNull().default(sql`'{}'::text[]`),
    shared: text("shared").array().notNull().default(sql`'{}'::text[]`),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(1),
    priority: integer("priority").notNull().default(0),
    retryBackoffMs: integer("retry_backoff_ms").notNull().default(0),
    /** Set while a ready task waits for its retry: not claimable before then. */
    runAfter: ts("run_after"),
    workerId: text("worker_id"),
    cancelRequested: boolean("cancel_requested").notNull().default(false),
    createdAt: ts("created_at").notNull().defaultNow(),
    readyAt: ts("ready_at"),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
    error: jsonb("error"),
    progress: jsonb("progress")
  },
  (t) => [
    uniqueIndex("tasks_graph_node").on(t.graphId, t.node),
    index("tasks_kind_id").on(t.kind, t.id)
  ]
)

export const futures = pgTable(
  "futures",
  {
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    state: text("state", { enum: ["pending", "resolved", "failed", "canceled"] }).notNull(),
    producer: text("producer_task").notNull().references(() => tasks.id),
    output: text("output").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    settledAt: ts("settled_at"),
    value: jsonb("value"),
    error: jsonb("error")
  },
  (t) => [uniqueIndex("futures_producer_output").on(t.producer, t.output)]
)

export const taskInputs = pgTable(
  "task_inputs",
  {
    taskId: text("task_id").notNull().references(() => tasks.id),
    futureId: text("future_id").notNull().references(() => futures.id)
  },
  (t) => [primaryKey({ columns: [t.taskId, t.futureId] }), index("task_inputs_future").on(t.futureId)]
)

export const taskKeys = pgTable(
  "task_keys",
  {
    taskId: text("task_id").notNull().references(() => tasks.id),
    key: text("key").notNull(),
    exclusive: boolean("exclusive").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    free: boolean("free").notNull().default(false)
  },
  (t) => [primaryKey({ columns: [t.taskId, t.key] }), index("task_keys_key_seq").on(t.key, t.seq)]
)

export const workers = pgTable("workers", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  host: text("host").notNull(),
  pid: integer("pid").notNull(),
  slots: integer("slots").notNull(),
  lockKey: bigserial("lock_key", { mode: "number" }).notNull(),
  backendPid: integer("backend_pid").notNull(),
  startedAt: ts("started_at").notNull().defaultNow(),
  lastHeartbeat: ts("last_heartbeat").notNull().defaultNow()
})

/** A function's identity with its argument types, `name(text[])`: PostgreSQL checks it exists. */
const regprocedure = customType<{ data: string }>({ dataType: () => "regprocedure" })

/**
 * Run by `cairn_on_settled` (src/engine/sql/cairn_on_settled.sql), in name order, with the ids of
 * every task a cascade settled, in the settle transaction. Each module that owns rows on behalf of
 * a task registers its own hook (the content store: src/content/sql/cairn_content_on_settled.sql),
 * so one module can never replace another's release; the engine knows none of their tables.
 */
export const settleHooks = pgTable("settle_hooks", {
  name: text("name").primaryKey(),
  fn: regprocedure("fn").notNull()
})

/**
 * Run by `cairn_on_submitted` (src/engine/sql/cairn_on_submitted.sql), in name order, with the ids
 * of the tasks a submission wrote, in the submission's transaction: where other modules hold what
 * the tasks will use (the content store: src/content/sql/cairn_content_on_submitted.sql). A hook
 * refuses a submission by raising SQLSTATE CA002 with a JSON detail `{ task id: [sentence] }`.
 */
export const submitHooks = pgTable("submit_hooks", {
  name: text("name").primaryKey(),
  fn: regprocedure("fn").notNull()
})
