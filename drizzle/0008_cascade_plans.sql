-- The failure cascade and the guards, tuned with bench:dag (issue #4; DESIGN.md §15).
--
-- 1. cairn_settle_cascade: the cone's recursive step no longer joins `tasks`. With a state =
--    'blocked' filter in the step, statistics taken before a large submission (few blocked rows)
--    let the planner drive every level from all blocked tasks: a 998-task chain took 4-11 s. The
--    step now joins only the working table, futures and task_inputs, so it is driven from the
--    working table by index whatever the statistics say. And with one root cause (one failing
--    task: the usual case) the second walk, which follows each task's picked cause back to the
--    frontier, is skipped: every task of the cone has that root.
-- 2. The immutability guards run only when a row change could break a rule (a WHEN clause the
--    executor evaluates without calling PL/pgSQL): the rules are the same, but settling 10,000
--    tasks and futures no longer makes 20,000 PL/pgSQL calls that find nothing wrong. Claims and
--    settlements on the hot path gain the same.
-- 3. cairn_refresh_statistics: a submission that grows `tasks` by a fifth or more (or finds it
--    never analyzed) runs ANALYZE on the engine's tables in its own transaction, before commit
--    (ANALYZE counts the transaction's own rows). Autovacuum would do it within a minute; until
--    then the planner saw a fresh install's 10,000-task graph with no statistics at all (200
--    distinct producers assumed: ~100 futures per task) and planned the cascade's recursion as
--    hash joins over whole tables, once per level. Concurrent analyzers (another submission,
--    autovacuum) make it give up after 50 ms rather than wait: one of them does the work.
-- 4. futures_producer is dropped: futures_producer_output (producer_task, output) serves the
--    same lookups, and each future insert and settlement maintained both.
CREATE OR REPLACE FUNCTION cairn_settle_cascade(p_tasks text[], p_failed_inputs text[] DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
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

DROP TRIGGER futures_immutable ON futures;
CREATE TRIGGER futures_immutable BEFORE UPDATE ON futures FOR EACH ROW
  WHEN (OLD.state <> 'pending' OR NEW.state = 'pending' OR NEW.settled_at IS NULL
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.producer_task IS DISTINCT FROM OLD.producer_task OR NEW.output IS DISTINCT FROM OLD.output
        OR NEW.created_at IS DISTINCT FROM OLD.created_at)
  EXECUTE FUNCTION cairn_future_guard();
CREATE TRIGGER futures_kept BEFORE DELETE ON futures FOR EACH ROW EXECUTE FUNCTION cairn_future_guard();

DROP TRIGGER tasks_immutable ON tasks;
CREATE TRIGGER tasks_immutable BEFORE UPDATE ON tasks FOR EACH ROW
  WHEN (OLD.state IN ('succeeded', 'failed', 'canceled')
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.graph_id IS DISTINCT FROM OLD.graph_id
        OR NEW.node IS DISTINCT FROM OLD.node OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.params IS DISTINCT FROM OLD.params)
  EXECUTE FUNCTION cairn_task_guard();
CREATE TRIGGER tasks_kept BEFORE DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION cairn_task_guard();

DROP INDEX futures_producer;

CREATE FUNCTION cairn_refresh_statistics(p_new_tasks integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_known real;
  v_lock_timeout text := current_setting('lock_timeout');
BEGIN
  IF p_new_tasks < 100 THEN
    RETURN;
  END IF;
  -- reltuples: what the planner last learned (-1: never analyzed nor vacuumed).
  SELECT reltuples INTO v_known FROM pg_class WHERE oid = 'tasks'::regclass;
  IF v_known >= 0 AND p_new_tasks < 0.2 * v_known THEN
    RETURN;
  END IF;
  BEGIN
    PERFORM set_config('lock_timeout', '50ms', true);
    ANALYZE tasks, futures, task_inputs, task_keys;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
  EXCEPTION WHEN lock_not_available THEN
    NULL; -- another transaction is analyzing or vacuuming these tables; its statistics will do
  END;
END $$;
