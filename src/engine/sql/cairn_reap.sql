-- cairn_reap: find dead workers and settle what they held. A worker is dead when its session
-- advisory lock (class 2 of src/db/locks.ts, lock_key) is free (its connection is gone: kill -9,
-- crash, network, database restart), or when its heartbeat is older than p_stale (hung, or
-- partitioned with the session still open: its backend is terminated so that it can no longer
-- act). Orphans count too: running tasks whose worker row is gone (a claim in flight on a killed
-- worker's pool can commit after the worker was reaped), once older than half of p_stale. Running
-- tasks of dead workers go back to ready while attempts remain (waiting for their retry like a
-- failure does, when they have a retry_backoff_ms; retry_in_ms in the result is the first such
-- wait), are canceled if a cancel was requested, and fail with worker_lost otherwise. Only one reaper runs at a time (a try-lock on
-- class 3: the others skip this round instead of waiting). DESIGN.md §6 "Liveness".

CREATE OR REPLACE FUNCTION cairn_reap(p_me text, p_stale interval) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_dead text[];
  v_requeued integer;
  v_wait interval;
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
  -- Orphans: running tasks whose worker row is gone. A worker's claim can commit just after the
  -- worker was reaped (its session died while its pool still worked); nobody would ever reap
  -- those tasks, and their keys would block everything behind them. Half the stale interval
  -- gives the lost worker's process time to have stopped them.
  v_dead := v_dead || coalesce((
    SELECT array_agg(DISTINCT t.worker_id) FROM tasks t
    WHERE t.state = 'running' AND t.started_at < now() - p_stale / 2
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = t.worker_id)), '{}');
  IF cardinality(v_dead) = 0 THEN RETURN NULL; END IF;
  PERFORM cairn_lock_task_keys(array(SELECT id FROM tasks WHERE state = 'running' AND worker_id = ANY(v_dead)), true);

  WITH retry AS (
    SELECT id, CASE WHEN retry_backoff_ms > 0 THEN cairn_retry_delay(retry_backoff_ms, attempts) END AS wait
    FROM tasks
    WHERE state = 'running' AND worker_id = ANY(v_dead) AND attempts < max_attempts AND NOT cancel_requested
  ), requeued AS (
    UPDATE tasks t SET state = 'ready', ready_at = now() + coalesce(r.wait, interval '0'), run_after = now() + r.wait,
                       worker_id = NULL,
                       error = jsonb_build_object('code', 'worker_lost', 'message',
                                                  format('worker %s was lost while running this task; retrying', t.worker_id), 'retrying', true)
    FROM retry r WHERE t.id = r.id
    RETURNING r.wait
  )
  SELECT count(*) FILTER (WHERE wait IS NULL), min(wait) INTO v_requeued, v_wait FROM requeued;
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
  RETURN v_result || jsonb_build_object('ready', (v_result->>'ready')::int + v_requeued, 'dead', to_jsonb(v_dead))
    || CASE WHEN v_wait IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('retry_in_ms', ceil(extract(epoch FROM v_wait) * 1000)) END;
END $$;
