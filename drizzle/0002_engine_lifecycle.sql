-- The lifecycle of a task after submission, one function per transition, each one round trip:
-- claim (in TypeScript: src/engine/claim.ts), resolve, fail/requeue, cancel, release, reap.
-- Every transition made by a worker names the worker and the attempt it holds; a worker that lost
-- its task (reaped, canceled, taken over) finds its update matching no row and changes nothing.

-- Settle p_tasks (unsettled, any non-terminal state) as p_state ('failed' or 'canceled') with an
-- error, their pending outputs likewise (cause_task = the task itself), then cascade.
CREATE FUNCTION cairn_settle_failed(p_tasks text[], p_state text, p_code text, p_message text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE v_tasks text[];
BEGIN
  IF p_state NOT IN ('failed', 'canceled') THEN
    RAISE EXCEPTION 'cairn_settle_failed: bad state %', p_state;
  END IF;
  PERFORM cairn_lock_task_keys(p_tasks, true);
  WITH t AS (
    UPDATE tasks SET state = p_state, finished_at = now(), cancel_requested = false,
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
END $$;--> statement-breakpoint

-- A worker finished p_task successfully: resolve each output with p_values->output and cascade.
-- Returns NULL when the worker no longer owns the task at that attempt.
CREATE FUNCTION cairn_resolve(p_task text, p_worker text, p_attempt integer, p_values jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], false);
  UPDATE tasks SET state = 'succeeded', finished_at = now(), error = NULL
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt;
  IF NOT FOUND THEN RETURN NULL; END IF;
  UPDATE futures SET state = 'resolved', settled_at = now(), value = coalesce(p_values -> output, 'null'::jsonb)
  WHERE producer_task = p_task AND state = 'pending';
  RETURN cairn_settle_cascade(ARRAY[p_task]);
END $$;--> statement-breakpoint

-- A worker's handler failed (p_state 'failed') or was interrupted by a cancel (p_state 'canceled').
-- A failure with attempts left goes back to ready (keeping its queue position and keys) with the
-- error recorded; anything else settles. Returns NULL when the worker no longer owns the task.
CREATE FUNCTION cairn_fail(p_task text, p_worker text, p_attempt integer, p_state text, p_code text, p_message text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE v tasks%ROWTYPE;
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], true);
  SELECT * INTO v FROM tasks
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt FOR UPDATE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF p_state = 'failed' AND v.attempts < v.max_attempts AND NOT v.cancel_requested THEN
    UPDATE tasks SET state = 'ready', ready_at = now(), worker_id = NULL,
                     error = jsonb_build_object('code', p_code, 'message', p_message, 'retrying', true)
    WHERE id = p_task;
    RETURN jsonb_build_object('ready', 1, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb);
  END IF;
  IF v.cancel_requested THEN
    RETURN cairn_settle_failed(ARRAY[p_task], 'canceled', 'canceled', 'canceled by request');
  END IF;
  RETURN cairn_settle_failed(ARRAY[p_task], p_state, p_code, p_message);
END $$;--> statement-breakpoint

-- A worker shutting down hands a running task back without spending an attempt.
CREATE FUNCTION cairn_release(p_task text, p_worker text, p_attempt integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cairn_lock_task_keys(ARRAY[p_task], true);
  UPDATE tasks SET state = 'ready', ready_at = now(), worker_id = NULL, attempts = attempts - 1
  WHERE id = p_task AND state = 'running' AND worker_id = p_worker AND attempts = p_attempt AND NOT cancel_requested;
  IF FOUND THEN RETURN jsonb_build_object('ready', 1, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb); END IF;
  RETURN cairn_fail(p_task, p_worker, p_attempt, 'canceled', 'canceled', 'canceled by request');
END $$;--> statement-breakpoint

-- Cancel unsettled tasks: blocked and ready ones settle at once; running ones are flagged and their
-- workers interrupt them (the caller NOTIFYs them). Returns the cascade plus the flagged ids.
CREATE FUNCTION cairn_cancel(p_tasks text[]) RETURNS jsonb
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
END $$;--> statement-breakpoint

-- Find dead workers and settle what they held. A worker is dead when its session advisory lock
-- (2, lock_key) is free (its connection is gone: kill -9, crash, network, database restart), or
-- when its heartbeat is older than p_stale (hung, or partitioned with the session still open: its
-- backend is terminated so that it can no longer act). Its running tasks go back to ready while
-- attempts remain, are canceled if a cancel was requested, and fail with worker_lost otherwise.
-- Only one reaper runs at a time (a try-lock: the others skip this round instead of waiting).
CREATE FUNCTION cairn_reap(p_me text, p_stale interval) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_dead text[];
  v_requeued integer;
  v_lost text[];
  v_canceled text[];
  v_result jsonb := jsonb_build_object('ready', 0, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb);
  v_more jsonb;
BEGIN
  IF NOT pg_try_advisory_xact_lock(3, 0) THEN RETURN NULL; END IF;
  SELECT coalesce(array_agg(w.id), '{}') INTO v_dead
  FROM workers w
  WHERE w.id IS DISTINCT FROM p_me
    AND CASE  -- CASE fixes the order: never signal a backend pid that may already belong to someone else
          WHEN pg_try_advisory_xact_lock(2, w.lock_key::integer) THEN true
          WHEN w.last_heartbeat < now() - p_stale THEN pg_terminate_backend(w.backend_pid) OR true
          ELSE false
        END;
  IF cardinality(v_dead) = 0 THEN RETURN NULL; END IF;
  PERFORM cairn_lock_task_keys(array(SELECT id FROM tasks WHERE state = 'running' AND worker_id = ANY(v_dead)), true);

  UPDATE tasks SET state = 'ready', ready_at = now(), worker_id = NULL,
                   error = jsonb_build_object('code', 'worker_lost', 'message',
                                              format('worker %s was lost while running this task; retrying', worker_id), 'retrying', true)
  WHERE state = 'running' AND worker_id = ANY(v_dead) AND attempts < max_attempts AND NOT cancel_requested;
  GET DIAGNOSTICS v_requeued = ROW_COUNT;
  SELECT coalesce(array_agg(id) FILTER (WHERE cancel_requested), '{}'),
         coalesce(array_agg(id) FILTER (WHERE NOT cancel_requested), '{}')
    INTO v_canceled, v_lost
  FROM tasks WHERE state = 'running' AND worker_id = ANY(v_dead);

  IF cardinality(v_canceled) > 0 THEN
    v_result := cairn_settle_failed(v_canceled, 'canceled', 'canceled', 'canceled by request');
  END IF;
  IF cardinality(v_lost) > 0 THEN
    v_more := cairn_settle_failed(v_lost, 'failed', 'worker_lost', 'the worker running this task was lost');
    v_result := jsonb_build_object(
      'ready', (v_result->>'ready')::int + (v_more->>'ready')::int,
      'tasks', (v_result->'tasks') || (v_more->'tasks'),
      'futures', (v_result->'futures') || (v_more->'futures'));
  END IF;
  DELETE FROM workers WHERE id = ANY(v_dead);
  RETURN v_result || jsonb_build_object('ready', (v_result->>'ready')::int + v_requeued, 'dead', to_jsonb(v_dead));
END $$;
