-- Written by `npm run db:functions`: the current definitions of
--   src/engine/sql/cairn_settle_cascade.sql
--   src/engine/sql/cairn_settle_cone.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_settle_cascade: p_tasks have just reached a terminal state in this transaction, and every
-- future they produce is settled. p_failed_inputs are already-settled failed/canceled futures that
-- newly submitted tasks consume (a graph that references an earlier failure settles at once).
-- Settle what that implies and return it as
--   { "ready": <tasks that became ready>, "tasks": [settled task ids], "futures": [settled future ids] }.
--
-- 1. Propagation (cairn_settle_cone): every blocked task reachable downstream of a failed/canceled
--    future settles failed/canceled (upstream_failed/upstream_canceled; cause_future = its own
--    input that settled that way, preferring a failed one; cause_task = the task where the failure
--    began), its outputs likewise -- the whole cone in one recursive statement, whose step joins no
--    `tasks` so that it is driven from the working table whatever the statistics say. A submission
--    that referenced one of these futures concurrently holds FOR SHARE on it, so our UPDATE of that
--    future waits for its commit; the next statement then finds its task ("late joiners") and we go
--    round again.
-- 2. FCFS release: the task_keys rows of every settled task are deleted under the keys' locks; the
--    new queue heads (the first exclusive row, the shared rows before the first exclusive row) are
--    marked free and their tasks' blocked_keys decremented.
-- 3. Data release: consumers of resolved futures get pending_inputs decremented.
-- 4. What the settled tasks owned is released (cairn_on_settled).
-- 5. Tasks whose counters reached zero become ready.
-- Plans: generic, made once per connection (§15 "Generic plans"): custom plans were made afresh at
-- every keyed settle (0.65 ms of its 2.6). Every statement is shaped so that its generic plan,
-- which takes an array for a few elements, is driven from the arrays through indexes whatever
-- their size: the counters are updated through `t.id = ANY(ARRAY(...))`, which probes the primary
-- key, where a join to the CTE alone let a plan scan `tasks`. The propagation keeps custom plans
-- (cairn_settle_cone).
-- DESIGN.md §4 "FCFS queues", "Data dependencies and propagation"; §15 "Failure cascade".

CREATE OR REPLACE FUNCTION cairn_settle_cascade(p_tasks text[], p_failed_inputs text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_settled text[] := p_tasks;
  v_futures text[];
  v_frontier text[];
  v_resolved text[];
  v_level text[];
  v_keys text[];
  v_candidates text[] := '{}';
  v_more text[];
BEGIN
  SELECT coalesce(array_agg(id), '{}'),
         coalesce(array_agg(id) FILTER (WHERE state <> 'resolved'), '{}'),
         coalesce(array_agg(id) FILTER (WHERE state = 'resolved'), '{}')
    INTO v_futures, v_frontier, v_resolved
  FROM futures WHERE producer_task = ANY(p_tasks);
  v_frontier := v_frontier || p_failed_inputs;

  -- Propagation (only when something failed or was canceled), with plans of its own.
  IF cardinality(v_frontier) > 0 THEN
    SELECT c.tasks, c.futures INTO v_level, v_more FROM cairn_settle_cone(v_frontier) c;
    v_settled := v_settled || v_level;
    v_futures := v_futures || v_more;
  END IF;

  -- FCFS release (nothing to lock or delete for tasks without keys: one index probe).
  SELECT coalesce(array_agg(DISTINCT key), '{}') INTO v_keys FROM task_keys WHERE task_id = ANY(v_settled);
  IF cardinality(v_keys) > 0 THEN
    PERFORM cairn_lock_keys(v_keys);
    DELETE FROM task_keys WHERE task_id = ANY(v_settled);

    -- The first unsettled row of a key, if exclusive, now holds the key alone.
    WITH heads AS (
      SELECT k AS key, (SELECT tk.seq FROM task_keys tk WHERE tk.key = k ORDER BY tk.seq LIMIT 1) AS first_any
      FROM unnest(v_keys) AS k
    ), freed AS (
      UPDATE task_keys tk SET free = true FROM heads h
      WHERE tk.key = h.key AND tk.seq = h.first_any AND tk.exclusive AND NOT tk.free
      RETURNING tk.task_id
    ), c AS (SELECT task_id, count(*)::int AS n FROM freed GROUP BY task_id),
    dec AS (
      UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c
      WHERE t.id = ANY(ARRAY(SELECT task_id FROM c)) AND t.id = c.task_id RETURNING t.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;

    -- Shared rows before the first unsettled exclusive row share the key (the waiting shared rows
    -- of these keys, from task_keys_waiting_shared).
    WITH freed AS (
      UPDATE task_keys tk SET free = true
      WHERE tk.key = ANY(v_keys) AND NOT tk.free AND NOT tk.exclusive
        AND tk.seq < coalesce((SELECT x.seq FROM task_keys x WHERE x.key = tk.key AND x.exclusive ORDER BY x.seq LIMIT 1),
                              9223372036854775807)
      RETURNING tk.task_id
    ), c AS (SELECT task_id, count(*)::int AS n FROM freed GROUP BY task_id),
    dec AS (
      UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c
      WHERE t.id = ANY(ARRAY(SELECT task_id FROM c)) AND t.id = c.task_id RETURNING t.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;
  END IF;

  -- Data release (skipped, one index probe, when no task consumes what resolved: a plan driven
  -- from the blocked tasks would otherwise walk them all).
  IF cardinality(v_resolved) > 0 AND EXISTS (SELECT 1 FROM task_inputs WHERE future_id = ANY(v_resolved)) THEN
    WITH c AS (
      SELECT ti.task_id, count(*)::int AS n FROM task_inputs ti WHERE ti.future_id = ANY(v_resolved) GROUP BY ti.task_id
    ), dec AS (
      UPDATE tasks t SET pending_inputs = t.pending_inputs - c.n FROM c
      WHERE t.id = ANY(ARRAY(SELECT task_id FROM c)) AND t.id = c.task_id AND t.state = 'blocked' RETURNING t.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_more FROM dec;
    v_candidates := v_candidates || v_more;
  END IF;

  PERFORM cairn_on_settled(v_settled);
  RETURN jsonb_build_object('ready', cairn_make_ready(v_candidates), 'tasks', to_jsonb(v_settled), 'futures', to_jsonb(v_futures));
END $$;
--> statement-breakpoint
-- cairn_settle_cone: the failure propagation of a settle (cairn_settle_cascade's step 1, which says
-- what it settles and how): every blocked task downstream of the failed/canceled futures
-- p_frontier, the late joiners included. Returns the tasks and the futures it settled.
-- Plans: custom, made for the frontier at hand at every call (plan_cache_mode below, whatever the
-- caller's): this runs only when something failed, and the generic plan of the cone, made once on
-- a connection before the statistics knew a chain, took a 998-task chain cone 1.07 s instead of
-- 70-80 ms until the next ANALYZE replaced it. DESIGN.md §4 "Data dependencies and propagation";
-- §15 "Failure cascade", "Generic plans".

CREATE OR REPLACE FUNCTION cairn_settle_cone(p_frontier text[], OUT tasks text[], OUT futures text[])
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  v_frontier text[] := p_frontier;
  v_failed_all text[];
  v_level text[];
  v_more text[];
  v_at timestamptz;
  v_one_root boolean;
  v_root_task text;
  v_root_message text;
BEGIN
  tasks := '{}';
  futures := '{}';
  v_failed_all := v_frontier;
  WHILE cardinality(v_frontier) > 0 LOOP
    -- Never stamp an effect before its cause: a submission's transaction may have begun before the
    -- failure it consumes was committed.
    SELECT greatest(now(), max(settled_at)) INTO v_at FROM futures WHERE id = ANY(v_frontier);
    -- Usually one failing task: then every task of the cone has the same root cause.
    SELECT count(DISTINCT (coalesce(error->>'cause_task', producer_task), coalesce(error->>'message', ''))) = 1,
           min(coalesce(error->>'cause_task', producer_task)), min(coalesce(error->>'message', ''))
      INTO v_one_root, v_root_task, v_root_message
    FROM futures WHERE id = ANY(v_frontier);
    WITH RECURSIVE cone(task_id, cause_future, cause_producer, how) AS (
      -- Every (blocked task, failing input, how) edge reachable from the frontier.
      SELECT ti.task_id, f.id, f.producer_task, f.state
      FROM futures f
      JOIN task_inputs ti ON ti.future_id = f.id
      JOIN tasks t ON t.id = ti.task_id
      WHERE f.id = ANY(v_frontier) AND t.state = 'blocked'
      UNION
      -- No `tasks` here: the step must be driven from the working table whatever the statistics
      -- say (a state = 'blocked' filter let the planner drive it from every blocked task, once per
      -- level: quadratic on a chain). Only blocked tasks and already canceled ones consume a
      -- pending future, and everything downstream of a canceled task is settled already, so the
      -- extra edges through settled tasks change nothing: `upd` settles blocked tasks only.
      SELECT ti.task_id, f.id, c.task_id, c.how
      FROM cone c
      JOIN futures f ON f.producer_task = c.task_id
      JOIN task_inputs ti ON ti.future_id = f.id
    ), pick AS (
      -- One cause per task: a failed input before a canceled one, then the lowest future id.
      -- A task has a 'failed' edge exactly when its producer picked 'failed', so how is consistent.
      SELECT DISTINCT ON (task_id) task_id, cause_future, cause_producer, how FROM cone ORDER BY task_id, (how = 'failed') DESC, cause_future
    ), chain(task_id, cause_future, how, cause_task, root_message) AS (
      -- cause_task follows the picked cause links back to the frontier: each task's root is its
      -- cause_future's producer's root, never some other path's. With one root there is no walk.
      SELECT p.task_id, p.cause_future, p.how, v_root_task, v_root_message
      FROM pick p WHERE v_one_root
      UNION ALL
      SELECT p.task_id, p.cause_future, p.how,
             coalesce(f.error->>'cause_task', f.producer_task), coalesce(f.error->>'message', '')
      FROM pick p JOIN futures f ON f.id = p.cause_future
      WHERE NOT v_one_root AND f.id = ANY(v_frontier)
      UNION ALL
      SELECT p.task_id, p.cause_future, p.how, c.cause_task, c.root_message
      FROM chain c
      JOIN pick p ON p.cause_producer = c.task_id
      WHERE NOT v_one_root
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
    tasks := tasks || v_level;
    futures := futures || v_more;
    v_failed_all := v_failed_all || v_more;
    -- Late joiners: consumers committed while we waited for their FOR SHARE locks.
    SELECT coalesce(array_agg(DISTINCT ti.future_id), '{}') INTO v_frontier
    FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id
    WHERE ti.future_id = ANY(v_failed_all) AND t.state = 'blocked';
  END LOOP;
END $$;
