-- cairn_settle_failed: settle p_tasks (unsettled, any non-terminal state) as p_state ('failed' or
-- 'canceled') with an error, their pending outputs likewise (cause_task = the task itself), then
-- cascade. Used by cairn_fail, cairn_cancel and cairn_reap. DESIGN.md §4 "Settle".

CREATE OR REPLACE FUNCTION cairn_settle_failed(p_tasks text[], p_state text, p_code text, p_message text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE v_tasks text[];
BEGIN
  IF p_state NOT IN ('failed', 'canceled') THEN
    RAISE EXCEPTION 'cairn_settle_failed: bad state %', p_state;
  END IF;
  PERFORM cairn_lock_task_keys(p_tasks, true);
  WITH t AS (
    UPDATE tasks SET state = p_state, finished_at = now(), cancel_requested = false, run_after = NULL,
                     error = jsonb_build_object('code', p_code, 'message', p_message)
    WHERE id = ANY(p_tasks) AND state IN ('blocked', 'ready', 'running')
    RETURNING id
  ), f AS (
    UPDATE futures fu SET state = p_state, settled_at = now(),
                          error = jsonb_build_object('code', p_code, 'message', p_message, 'cause_task', t.id)
    FROM t WHERE fu.producer_task = t.id AND fu.state = 'pending'
    RETURNING fu.id
  )
  -- (f runs to completion although nothing reads it: data-modifying CTEs always do.)
  SELECT coalesce(array_agg(id), '{}') INTO v_tasks FROM t;
  RETURN cairn_settle_cascade(v_tasks);
END $$;
