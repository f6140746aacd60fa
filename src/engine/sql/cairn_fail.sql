-- cairn_fail: a worker's handler failed (p_state 'failed') or was interrupted by a cancel (p_state
-- 'canceled'). A failure with attempts left goes back to ready (keeping its queue position and
-- keys) with the error recorded; with a retry_backoff_ms it waits for its retry there (run_after:
-- not claimable before then, cairn_retry_delay) and the result says how long (retry_in_ms), so that
-- the worker keeps a timer to wake it (cairn_wake_retries). Anything else settles. Returns NULL when
-- the worker no longer owns the task. DESIGN.md §4 "Settle", "Retries".

CREATE OR REPLACE FUNCTION cairn_fail(p_task text, p_worker text, p_attempt integer, p_state text, p_code text, p_message text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v tasks%ROWTYPE;
  v_wait interval;
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], true);
  SELECT * INTO v FROM tasks
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt FOR UPDATE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF p_state = 'failed' AND v.attempts < v.max_attempts AND NOT v.cancel_requested THEN
    IF v.retry_backoff_ms > 0 THEN
      v_wait := cairn_retry_delay(v.retry_backoff_ms, v.attempts);
    END IF;
    UPDATE tasks SET state = 'ready', ready_at = now() + coalesce(v_wait, interval '0'), run_after = now() + v_wait,
                     worker_id = NULL,
                     error = jsonb_build_object('code', p_code, 'message', p_message, 'retrying', true)
    WHERE id = p_task;
    IF v_wait IS NULL THEN
      RETURN jsonb_build_object('ready', 1, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb);
    END IF;
    RETURN jsonb_build_object('ready', 0, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb,
                              'retry_in_ms', ceil(extract(epoch FROM v_wait) * 1000));
  END IF;
  IF v.cancel_requested THEN
    RETURN cairn_settle_failed(ARRAY[p_task], 'canceled', 'canceled', 'canceled by request');
  END IF;
  RETURN cairn_settle_failed(ARRAY[p_task], p_state, p_code, p_message);
END $$;
