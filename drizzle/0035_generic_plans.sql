-- Written by `npm run db:functions`: the current definitions of
--   src/content/sql/cairn_content_on_settled.sql
--   src/engine/sql/cairn_claim.sql
--   src/engine/sql/cairn_lock_task_keys.sql
--   src/engine/sql/cairn_make_ready.sql
--   src/engine/sql/cairn_settle_cascade.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_content_on_settled: what a task owned in the content store is released when it settles:
-- the artifacts it was using (task_artifacts; by then its commit has made a content unit or a
-- publication own them, in the same transaction), its slot locks, and what it held since its
-- submission (task_holds: versions, publications, units, artifacts, its repository, its remote's
-- revision). Registered as the engine's settle hook "content" (src/engine/sql/cairn_on_settled.sql).
-- Generic plans (index probes for the array), as cairn_make_ready: the custom ones were made
-- afresh at every settle. DESIGN.md §12 "Artifacts and storage layout", "Slot locks"; §19 "Holds";
-- §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_content_on_settled(p_tasks text[]) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  DELETE FROM task_artifacts WHERE task_id = ANY(p_tasks);
  DELETE FROM slot_locks WHERE owner_task = ANY(p_tasks);
  DELETE FROM task_holds WHERE task_id = ANY(p_tasks);
END $$;

INSERT INTO settle_hooks (name, fn) VALUES ('content', 'cairn_content_on_settled(text[])')
  ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn;
--> statement-breakpoint
-- cairn_claim: retries whose time has come join the ready queue first (cairn_promote_retries; one
-- index probe when none is due). Then the ready tasks of highest priority, oldest first (seq),
-- FOR UPDATE SKIP LOCKED, up to p_limit, with their resolved inputs and output ids, made running
-- under p_worker: one scan of the partial index tasks_ready (priority DESC, seq) WHERE state =
-- 'ready' AND run_after IS NULL, whose cost does not grow with the backlog. Priority only orders
-- tasks that are ready: a task behind an earlier conflicting one on a key is blocked, not ready,
-- so FCFS holds whatever the priorities. Then the baton: a claim that filled every slot it asked for
-- and saw ready work left over wakes idle workers for it (never the claimer), which covers a named
-- worker that was already claiming something else when its wake-up came; it looks for ready work
-- left only when some other worker is idle (the same test cairn_notify makes).
-- Plans: generic (plan_cache_mode below). With `LIMIT p_limit` the plan cache found every custom
-- plan (LIMIT 1 or 2) cheaper than the generic one (which assumes a tenth of the ready rows) and
-- planned the claim afresh on every call, 0.25 ms, more than running it. The picked ids are an
-- array (`= ANY(ARRAY(...))`), which the generic plan probes through the primary key whatever the
-- backlog; joined to a CTE, the generic plan hash-joined a scan of all of `tasks`.
-- DESIGN.md §4 "Claim", "Retries", §5 "Wake-ups"; §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_claim(p_worker text, p_limit integer)
RETURNS TABLE (id text, graph_id text, kind text, params jsonb, attempts integer, latency_ms float8, inputs jsonb, outputs jsonb)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  v_claimed integer;
  v_left integer;
BEGIN
  -- A settle that also claims asks for nothing when its task was no longer its own (queries/settle.ts).
  IF p_limit < 1 THEN
    RETURN;
  END IF;
  PERFORM cairn_promote_retries();
  RETURN QUERY
  UPDATE tasks t
  SET state = 'running', worker_id = p_worker, started_at = clock_timestamp(), attempts = t.attempts + 1
  WHERE t.id = ANY(ARRAY(
    SELECT p.id FROM tasks p WHERE p.state = 'ready' AND p.run_after IS NULL
    ORDER BY p.priority DESC, p.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
  ))
  RETURNING t.id, t.graph_id, t.kind, t.params, t.attempts,
    (extract(epoch FROM clock_timestamp() - t.ready_at) * 1000)::float8,
    (SELECT coalesce(jsonb_object_agg(f.id, jsonb_build_object('kind', f.kind, 'value', f.value)), '{}'::jsonb)
     FROM task_inputs ti JOIN futures f ON f.id = ti.future_id WHERE ti.task_id = t.id),
    (SELECT coalesce(jsonb_object_agg(o.output, o.id), '{}'::jsonb) FROM futures o WHERE o.producer_task = t.id);
  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  -- Only when another worker is idle: cairn_notify wakes nobody else, and the count below (a walk
  -- of the ready index past the entries of rows just claimed) was a third of a busy claim's cost.
  IF v_claimed = p_limit AND EXISTS (
    SELECT 1 FROM workers w
    WHERE w.id <> p_worker AND w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')
  ) THEN
    -- Our own claims are 'running' already; rows other claimers hold count too (a spare wake-up).
    SELECT count(*) INTO v_left FROM (SELECT 1 FROM tasks t WHERE t.state = 'ready' AND t.run_after IS NULL LIMIT 64) s;
    IF v_left > 0 THEN
      PERFORM cairn_notify(jsonb_build_object('ready', v_left, 'exclude', p_worker));
    END IF;
  END IF;
END $$;
--> statement-breakpoint
-- cairn_lock_task_keys: lock ordering, the rule that keeps settlements from deadlocking each other.
-- A transaction takes the key locks of every task it will settle -- and, when the settlement can
-- fail or cancel, of every blocked task downstream that it will cascade into -- before it locks or
-- updates any task or future row. A key's holder updates the rows of tasks queued on that key
-- (releasing the queue), so rows first and keys second would wait in a cycle.
-- A generic plan (index probes for the arrays; §15 "Generic plans"). DESIGN.md §4 "FCFS queues"
-- (Lock order: keys before rows).

CREATE OR REPLACE FUNCTION cairn_lock_task_keys(p_tasks text[], p_downstream boolean) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_keys text[];
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
    -- Most tasks have no keys: then one index probe and no lock call.
    SELECT array_agg(key) INTO v_keys FROM task_keys WHERE task_id = ANY(p_tasks);
    IF v_keys IS NOT NULL THEN
      PERFORM cairn_lock_keys(v_keys);
    END IF;
  END IF;
END $$;
--> statement-breakpoint
-- cairn_make_ready: tasks whose two counters (pending_inputs, blocked_keys) reached zero become
-- ready. Returns how many. A generic plan (primary-key probes for the array): the plan cache kept
-- planning the update afresh at every settle, the custom plan for a one-element array being
-- cheaper on paper. DESIGN.md §4 "Scheduling without a dispatcher"; §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_make_ready(p_tasks text[]) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE v integer;
BEGIN
  UPDATE tasks SET state = 'ready', ready_at = now()
  WHERE id = ANY(p_tasks) AND state = 'blocked' AND pending_inputs = 0 AND blocked_keys = 0;
  GET DIAGNOSTICS v = ROW_COUNT;
  RETURN v;
END $$;
--> statement-breakpoint
-- cairn_settle_cascade: p_tasks have just reached a terminal state in this transaction, and every
-- future they produce is settled. p_failed_inputs are already-settled failed/canceled futures that
-- newly submitted tasks consume (a graph that references an earlier failure settles at once).
-- Settle what that implies and return it as
--   { "ready": <tasks that became ready>, "tasks": [settled task ids], "futures": [settled future ids] }.
--
-- 1. Propagation: every blocked task reachable downstream of a failed/canceled future settles
--    failed/canceled (upstream_failed/upstream_canceled; cause_future = its own input that settled
--    that way, preferring a failed one; cause_task = the task where the failure began), its outputs
--    likewise -- the whole cone in one recursive statement, whose step joins no `tasks` so that it
--    is driven from the working table whatever the statistics say. A submission that referenced one
--    of these futures concurrently holds FOR SHARE on it, so our UPDATE of that future waits for its
--    commit; the next statement then finds its task ("late joiners") and we go round again.
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
-- key, where a join to the CTE alone let a plan scan `tasks`.
-- DESIGN.md §4 "FCFS queues", "Data dependencies and propagation"; §15 "Failure cascade".

CREATE OR REPLACE FUNCTION cairn_settle_cascade(p_tasks text[], p_failed_inputs text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
  v_one_root boolean;
  v_root_task text;
  v_root_message text;
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
    v_settled := v_settled || v_level;
    v_futures := v_futures || v_more;
    v_failed_all := v_failed_all || v_more;
    -- Late joiners: consumers committed while we waited for their FOR SHARE locks.
    SELECT coalesce(array_agg(DISTINCT ti.future_id), '{}') INTO v_frontier
    FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id
    WHERE ti.future_id = ANY(v_failed_all) AND t.state = 'blocked';
  END LOOP;

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
