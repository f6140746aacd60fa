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
