-- cairn_release: a worker shutting down hands a running task back without spending an attempt (a
-- task whose cancel was requested settles canceled instead). DESIGN.md §7 "Cancellation and
-- shutdown".

CREATE OR REPLACE FUNCTION cairn_release(p_task text, p_worker text, p_attempt integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], true);
  UPDATE tasks SET state = 'ready', ready_at = now(), worker_id = NULL, attempts = attempts - 1
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt AND NOT cancel_requested;
  IF FOUND THEN RETURN jsonb_build_object('ready', 1, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb); END IF;
  RETURN cairn_fail(p_task, p_worker, p_attempt, 'canceled', 'canceled', 'canceled by request');
END $$;
