-- cairn_cancel: cancel unsettled tasks. Blocked and ready ones settle at once; running ones are
-- flagged and their workers interrupt them (the caller sends the wake-up that names them).
-- Returns the cascade plus the flagged ids. DESIGN.md §7 "Cancellation and shutdown".

CREATE OR REPLACE FUNCTION cairn_cancel(p_tasks text[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_now text[];
  v_running text[];
  v_result jsonb;
BEGIN
  PERFORM cairn_lock_task_keys(p_tasks, true);
  SELECT coalesce(array_agg(id) FILTER (WHERE state IN ('blocked', 'ready')), '{}'),
         coalesce(array_agg(id) FILTER (WHERE state = 'running'), '{}')
    INTO v_now, v_running
  FROM (SELECT id, state FROM tasks WHERE id = ANY(p_tasks) ORDER BY id FOR UPDATE) s;
  UPDATE tasks SET cancel_requested = true WHERE id = ANY(v_running);
  v_result := cairn_settle_failed(v_now, 'canceled', 'canceled', 'canceled by request');
  RETURN v_result || jsonb_build_object('cancel', to_jsonb(v_running));
END $$;
