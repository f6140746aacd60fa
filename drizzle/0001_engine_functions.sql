-- The engine's rules that live in the database itself: state checks, the partial indexes that keep
-- claim and release independent of history, immutability triggers, and the two functions through
-- which every task enters and leaves the FCFS queues (cairn_enqueue, cairn_settle_cascade).
-- DESIGN.md walks through why each statement is correct under concurrency.

ALTER TABLE tasks ADD CONSTRAINT tasks_state_check
  CHECK (state IN ('blocked', 'ready', 'running', 'succeeded', 'failed', 'canceled'));--> statement-breakpoint
ALTER TABLE tasks ADD CONSTRAINT tasks_attempts_check CHECK (max_attempts >= 1 AND attempts >= 0);--> statement-breakpoint
ALTER TABLE tasks ADD CONSTRAINT tasks_counters_check CHECK (pending_inputs >= 0 AND blocked_keys >= 0);--> statement-breakpoint
ALTER TABLE tasks ADD CONSTRAINT tasks_running_has_worker CHECK (state <> 'running' OR worker_id IS NOT NULL);--> statement-breakpoint
ALTER TABLE futures ADD CONSTRAINT futures_state_check
  CHECK (state IN ('pending', 'resolved', 'failed', 'canceled'));--> statement-breakpoint
ALTER TABLE futures ADD CONSTRAINT futures_settled_shape CHECK (
  (state = 'pending' AND settled_at IS NULL AND error IS NULL AND value IS NULL)
  OR (state = 'resolved' AND settled_at IS NOT NULL AND error IS NULL)
  OR (state IN ('failed', 'canceled') AND settled_at IS NOT NULL AND error IS NOT NULL AND value IS NULL));--> statement-breakpoint

-- Claim reads only ready rows; the workers' own running tasks; per-graph and per-state listings.
CREATE INDEX tasks_ready ON tasks (seq) WHERE state = 'ready';--> statement-breakpoint
CREATE INDEX tasks_running_worker ON tasks (worker_id) WHERE state = 'running';--> statement-breakpoint
CREATE INDEX tasks_graph_seq ON tasks (graph_id, seq);--> statement-breakpoint
CREATE INDEX tasks_state_id ON tasks (state, id);--> statement-breakpoint
CREATE INDEX futures_producer ON futures (producer_task);--> statement-breakpoint
-- FCFS queue heads: the first exclusive holder of a key, and the shared rows still waiting.
CREATE INDEX task_keys_exclusive ON task_keys (key, seq) WHERE exclusive;--> statement-breakpoint
CREATE INDEX task_keys_waiting_shared ON task_keys (key, seq) WHERE NOT free AND NOT exclusive;--> statement-breakpoint
CREATE UNIQUE INDEX workers_lock_key ON workers (lock_key);--> statement-breakpoint

-- Immutability. A future changes once, from pending to settled; a settled task never changes;
-- neither is ever deleted. Payload tables of the content store attach cairn_refuse_update().
CREATE FUNCTION cairn_future_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'future % cannot be deleted: futures are immutable', OLD.id USING ERRCODE = 'CA001';
  END IF;
  IF OLD.state <> 'pending' THEN
    RAISE EXCEPTION 'future % is already %: a settled future is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.state = 'pending' THEN
    RAISE EXCEPTION 'future % is pending: it may change only by settling', OLD.id USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.producer_task <> OLD.producer_task
     OR NEW.output <> OLD.output OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'future %: only its settlement may be written', OLD.id USING ERRCODE = 'CA001';
  END IF;
  NEW.settled_at := coalesce(NEW.settled_at, now());
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER futures_immutable BEFORE UPDATE OR DELETE ON futures
  FOR EACH ROW EXECUTE FUNCTION cairn_future_guard();--> statement-breakpoint

CREATE FUNCTION cairn_task_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'task % cannot be deleted', OLD.id USING ERRCODE = 'CA001';
  END IF;
  IF OLD.state IN ('succeeded', 'failed', 'canceled') THEN
    RAISE EXCEPTION 'task % is already %: a settled task is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.graph_id <> OLD.graph_id OR NEW.node <> OLD.node OR NEW.kind <> OLD.kind
     OR NEW.seq <> OLD.seq OR NEW.params <> OLD.params THEN
    RAISE EXCEPTION 'task %: its identity and params are immutable', OLD.id USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER tasks_immutable BEFORE UPDATE OR DELETE ON tasks
  FOR EACH ROW EXECUTE FUNCTION cairn_task_guard();--> statement-breakpoint

CREATE FUNCTION cairn_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'CA001';
END $$;--> statement-breakpoint

-- Per-key serialization. Submission and settlement of tasks that share a resource key take the
-- key's transaction-scoped advisory lock (in hash order, so two transactions never wait on each
-- other in a cycle). That makes seq order equal commit order per key, and makes "release a key"
-- and "enqueue behind a key" see each other. Unrelated keys never wait on each other.
CREATE FUNCTION cairn_lock_keys(p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1, h)
  FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(p_keys) AS k ORDER BY 1) AS s;
END $$;--> statement-breakpoint

-- Lock ordering, the rule that keeps settlements from deadlocking each other: a transaction takes
-- the key locks of every task it will settle -- and, when the settlement can fail or cancel, of every
-- blocked task downstream that it will cascade into -- before it locks or updates any task or
-- future row. A key's holder updates the rows of tasks queued on that key (releasing the queue),
-- so rows first and keys second would wait in a cycle.
CREATE FUNCTION cairn_lock_task_keys(p_tasks text[], p_downstream boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_downstream THEN
    PERFORM cairn_lock_keys(array(
      WITH RECURSIVE cone(task_id) AS (
        SELECT unnest(p_tasks)
        UNION
        SELECT ti.task_id
        FROM cone c
        JOIN futures f ON f.producer_task = c.task_id AND f.state = 'pending'
        JOIN task_inputs ti ON ti.future_id = f.id
        JOIN tasks t ON t.id = ti.task_id AND t.state = 'blocked'
      )
      SELECT tk.key FROM cone JOIN task_keys tk ON tk.task_id = cone.task_id));
  ELSE
    PERFORM cairn_lock_keys(array(SELECT key FROM task_keys WHERE task_id = ANY(p_tasks)));
  END IF;
END $$;--> statement-breakpoint

-- Make tasks that reached zero counters ready. Returns how many.
CREATE FUNCTION cairn_make_ready(p_tasks text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE v integer;
BEGIN
  UPDATE tasks SET state = 'ready', ready_at = now()
  WHERE id = ANY(p_tasks) AND state = 'blocked' AND pending_inputs = 0 AND blocked_keys = 0;
  GET DIAGNOSTICS v = ROW_COUNT;
  RETURN v;
END $$;--> statement-breakpoint

-- A submission has inserted p_tasks (state blocked, pending_inputs counted, blocked_keys = number of
-- keys) and their task_keys rows (free = false), holding the keys' locks. Mark every key row that
-- has no earlier unsettled conflicting row as free, and make tasks with nothing left ready.
CREATE FUNCTION cairn_enqueue(p_tasks text[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  WITH f AS (
    UPDATE task_keys tk SET free = true
    WHERE tk.task_id = ANY(p_tasks) AND NOT tk.free
      AND NOT EXISTS (SELECT 1 FROM task_keys o WHERE o.key = tk.key AND o.seq < tk.seq AND o.exclusive)
      AND NOT (tk.exclusive AND EXISTS (SELECT 1 FROM task_keys o WHERE o.key = tk.key AND o.seq < tk.seq))
    RETURNING tk.task_id
  ), c AS (SELECT task_id, count(*)::int AS n FROM f GROUP BY task_id)
  UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c WHERE t.id = c.task_id;
  RETURN cairn_make_ready(p_tasks);
END $$;--> statement-breakpoint

-- Called with every task a cascade settled: the place where things a task owns are released.
-- The engine owns nothing itself; the content store replaces it (task-owned artifacts, slot locks).
CREATE FUNCTION cairn_on_settled(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
END $$;--> statement-breakpoint

-- p_tasks have just reached a terminal state in this transaction, and every future they produce is
-- settled. p_failed_inputs are already-settled failed/canceled futures that newly submitted tasks
-- consume (a graph that references an earlier failure settles at once). Settle what that implies and return it as
--   { "ready": <tasks that became ready>, "tasks": [settled task ids], "futures": [settled future ids] }.
--
-- 1. Propagation: every blocked task reachable downstream of a failed/canceled future settles
--    failed/canceled (upstream_failed/upstream_canceled; cause_future = its own input that settled
--    that way, preferring a failed one; cause_task = the task where the failure began), its outputs
--    likewise -- the whole cone in one recursive statement. A submission that referenced one of
--    these futures concurrently holds FOR SHARE on it, so our UPDATE of that future waits for its
--    commit; the next statement then finds its task ("late joiners") and we go round again.
-- 2. FCFS release: the task_keys rows of every settled task are deleted under the keys' locks; the
--    new queue heads (the first exclusive row, the shared rows before the first exclusive row) are
--    marked free and their tasks' blocked_keys decremented.
-- 3. Data release: consumers of resolved futures get pending_inputs decremented.
-- 4. Tasks whose counters reached zero become ready.
CREATE FUNCTION cairn_settle_cascade(p_tasks text[], p_failed_inputs text[] DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_settled text[] := p_tasks;
  v_futures text[];
  v_frontier text[];
  v_resolved text[];
  v_level text[];
  v_failed_all text[];
  v_keys text[];
  v_candidates text[] := '{}';
  v_more text[];
  v_at timestamptz;
BEGIN
  SELECT coalesce(array_agg(id), '{}'),
         coalesce(array_agg(id) FILTER (WHERE state <> 'resolved'), '{}'),
         coalesce(array_agg(id) FILTER (WHERE state = 'resolved'), '{}')
    INTO v_futures, v_frontier, v_resolved
  FROM futures WHERE producer_task = ANY(p_tasks);
  v_frontier := v_frontier || p_failed_inputs;

  v_failed_all := v_frontier;
  WHILE cardinality(v_frontier) > 0 LOOP
    -- Never stamp an effect before its cause: a submission's transaction may have begun before the
    -- failure it consumes was committed.
    SELECT greatest(now(), max(settled_at)) INTO v_at FROM futures WHERE id = ANY(v_frontier);
    WITH RECURSIVE cone(task_id, cause_future, how) AS (
      -- Every (blocked task, failing input, how) edge reachable from the frontier.
      SELECT ti.task_id, f.id, f.state
      FROM futures f
      JOIN task_inputs ti ON ti.future_id = f.id
      JOIN tasks t ON t.id = ti.task_id
      WHERE f.id = ANY(v_frontier) AND t.state = 'blocked'
      UNION
      SELECT ti.task_id, f.id, c.how
      FROM cone c
      JOIN futures f ON f.producer_task = c.task_id
      JOIN task_inputs ti ON ti.future_id = f.id
      JOIN tasks t ON t.id = ti.task_id
      WHERE t.state = 'blocked'
    ), pick AS (
      -- One cause per task: a failed input before a canceled one, then the lowest future id.
      -- A task has a 'failed' edge exactly when its producer picked 'failed', so how is consistent.
      SELECT DISTINCT ON (task_id) task_id, cause_future, how FROM cone ORDER BY task_id, (how = 'failed') DESC, cause_future
    ), chain(task_id, cause_future, how, cause_task, root_message) AS (
      -- cause_task follows the picked cause_future links back to the frontier: each task's root is
      -- its cause_future's producer's root, never some other path's.
      SELECT p.task_id, p.cause_future, p.how,
             coalesce(f.error->>'cause_task', f.producer_task), coalesce(f.error->>'message', '')
      FROM pick p JOIN futures f ON f.id = p.cause_future
      WHERE f.id = ANY(v_frontier)
      UNION ALL
      SELECT p.task_id, p.cause_future, p.how, c.cause_task, c.root_message
      FROM chain c
      JOIN futures f ON f.producer_task = c.task_id
      JOIN pick p ON p.cause_future = f.id
    ), upd AS (
      UPDATE tasks t
      SET state = pick.how, finished_at = v_at,
          error = jsonb_build_object(
            'code', CASE pick.how WHEN 'failed' THEN 'upstream_failed' ELSE 'upstream_canceled' END,
            'message', format('input %s %s upstream: %s', pick.cause_future,
                              CASE pick.how WHEN 'failed' THEN 'failed' ELSE 'was canceled' END, pick.root_message),
            'cause_task', pick.cause_task,
            'cause_future', pick.cause_future)
      FROM chain AS pick
      WHERE t.id = pick.task_id AND t.state = 'blocked'
      RETURNING t.id, t.state, t.error
    ), fut AS (
      UPDATE futures f SET state = upd.state, settled_at = v_at, error = upd.error
      FROM upd
      WHERE f.producer_task = upd.id AND f.state = 'pending'
      RETURNING f.id
    )
    SELECT (SELECT coalesce(array_agg(id), '{}') FROM upd), (SELECT coalesce(array_agg(id), '{}') FROM fut)
      INTO v_level, v_more;
    v_settled := v_settled || v_level;
    v_futures := v_futures || v_more;
    v_failed_all := v_failed_all || v_more;
    -- Late joiners: consumers committed while we waited for their FOR SHARE locks.
    SELECT coalesce(array_agg(DISTINCT ti.future_id), '{}') INTO v_frontier
    FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id
    WHERE ti.future_id = ANY(v_failed_all) AND t.state = 'blocked';
  END LOOP;

  -- FCFS release.
  PERFORM cairn_lock_keys(array(SELECT key FROM task_keys WHERE task_id = ANY(v_settled)));
  WITH gone AS (DELETE FROM task_keys WHERE task_id = ANY(v_settled) RETURNING key)
  SELECT coalesce(array_agg(DISTINCT key), '{}') INTO v_keys FROM gone;

  IF cardinality(v_keys) > 0 THEN
    -- The first unsettled row of a key, if exclusive, now holds the key alone.
    WITH heads AS (
      SELECT k AS key, (SELECT tk.seq FROM task_keys tk WHERE tk.key = k ORDER BY tk.seq LIMIT 1) AS first_any
      FROM unnest(v_keys) AS k
    ), freed AS (
      UPDATE task_keys tk SET free = true FROM heads h
      WHERE tk.key = h.key AND tk.seq = h.first_any AND tk.exclusive AND NOT tk.free
      RETURNING tk.task_id
    ), c AS (SELECT task_id, count(*)::int AS n FROM freed GROUP BY task_id),
    dec AS (UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c WHERE t.id = c.task_id RETURNING t.id)
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;

    -- Shared rows before the first unsettled exclusive row share the key.
    WITH heads AS (
      SELECT k AS key, (SELECT tk.seq FROM task_keys tk WHERE tk.key = k AND tk.exclusive ORDER BY tk.seq LIMIT 1) AS first_x
      FROM unnest(v_keys) AS k
    ), freed AS (
      UPDATE task_keys tk SET free = true FROM heads h
      WHERE tk.key = h.key AND NOT tk.free AND NOT tk.exclusive AND (h.first_x IS NULL OR tk.seq < h.first_x)
      RETURNING tk.task_id
    ), c AS (SELECT task_id, count(*)::int AS n FROM freed GROUP BY task_id),
    dec AS (UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c WHERE t.id = c.task_id RETURNING t.id)
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;
  END IF;

  -- Data release.
  IF cardinality(v_resolved) > 0 THEN
    WITH c AS (
      SELECT ti.task_id, count(*)::int AS n FROM task_inputs ti WHERE ti.future_id = ANY(v_resolved) GROUP BY ti.task_id
    ), dec AS (
      UPDATE tasks t SET pending_inputs = t.pending_inputs - c.n FROM c
      WHERE t.id = c.task_id AND t.state = 'blocked' RETURNING t.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;
  END IF;

  PERFORM cairn_on_settled(v_settled);
  RETURN jsonb_build_object('ready', cairn_make_ready(v_candidates), 'tasks', to_jsonb(v_settled), 'futures', to_jsonb(v_futures));
END $$;
