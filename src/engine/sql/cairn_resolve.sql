-- cairn_resolve: a worker finished p_task successfully: resolve each output with p_values->output
-- and cascade. Returns NULL when the worker no longer owns the task at that attempt.
-- Called as `SELECT cairn_notify(cairn_resolve(...))`. DESIGN.md §4 "Settle".

CREATE OR REPLACE FUNCTION cairn_resolve(p_task text, p_worker text, p_attempt integer, p_values jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], false);
  UPDATE tasks SET state = 'succeeded', finished_at = now(), error = NULL
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt;
  IF NOT FOUND THEN RETURN NULL; END IF;
  UPDATE futures SET state = 'resolved', settled_at = now(), value = coalesce(p_values -> output, 'null'::jsonb)
  WHERE producer_task = p_task AND state = 'pending';
  RETURN cairn_settle_cascade(ARRAY[p_task]);
END $$;
