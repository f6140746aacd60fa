-- Written by `npm run db:functions`: the current definitions of
--   src/engine/sql/cairn_claim.sql
--   src/engine/sql/cairn_fail.sql
--   src/engine/sql/cairn_promote_retries.sql
--   src/engine/sql/cairn_reap.sql
--   src/engine/sql/cairn_retry_delay.sql
--   src/engine/sql/cairn_settle_failed.sql
--   src/engine/sql/cairn_wake_retries.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_claim: retries whose time has come join the ready queue first (cairn_promote_retries; one
-- index probe when none is due). Then the ready tasks of highest priority, oldest first (seq),
-- FOR UPDATE SKIP LOCKED, up to p_limit, with their resolved inputs and output ids, made running
-- under p_worker: one scan of the partial index tasks_ready (priority DESC, seq) WHERE state =
-- 'ready' AND run_after IS NULL, whose cost does not grow with the backlog. Priority only orders
-- tasks that are ready: a task behind an earlier conflicting one on a key is blocked, not ready,
-- so FCFS holds whatever the priorities. Then the baton: a claim that filled every slot it asked for
-- and saw ready work left over wakes idle workers for it (never the claimer), which covers a named
-- worker that was already claiming something else when its wake-up came.
-- DESIGN.md §4 "Claim", "Retries", §5 "Wake-ups".

CREATE OR REPLACE FUNCTION cairn_claim(p_worker text, p_limit integer)
RETURNS TABLE (id text, graph_id text, kind text, params jsonb, attempts integer, latency_ms float8, inputs jsonb, outputs jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_claimed integer;
  v_left integer;
BEGIN
  PERFORM cairn_promote_retries();
  RETURN QUERY
  WITH picked AS (
    SELECT t.id FROM tasks t WHERE t.state = 'ready' AND t.run_after IS NULL
    ORDER BY t.priority DESC, t.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
  )
  UPDATE tasks t
  SET state = 'running', worker_id = p_worker, started_at = clock_timestamp(), attempts = t.attempts + 1
  FROM picked
  WHERE t.id = picked.id
  RETURNING t.id, t.graph_id, t.kind, t.params, t.attempts,
    (extract(epoch FROM clock_timestamp() - t.ready_at) * 1000)::float8,
    (SELECT coalesce(jsonb_object_agg(f.id, jsonb_build_object('kind', f.kind, 'value', f.value)), '{}'::jsonb)
     FROM task_inputs ti JOIN futures f ON f.id = ti.future_id WHERE ti.task_id = t.id),
    (SELECT coalesce(jsonb_object_agg(o.output, o.id), '{}'::jsonb) FROM futures o WHERE o.producer_task = t.id);
  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  IF v_claimed = p_limit THEN
    -- Our own claims are 'running' already; rows other claimers hold count too (a spare wake-up).
    SELECT count(*) INTO v_left FROM (SELECT 1 FROM tasks t WHERE t.state = 'ready' AND t.run_after IS NULL LIMIT 64) s;
    IF v_left > 0 THEN
      PERFORM cairn_notify(jsonb_build_object('ready', v_left, 'exclude', p_worker));
    END IF;
  END IF;
END $$;
--> statement-breakpoint
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
--> statement-breakpoint
-- cairn_promote_retries: ready tasks whose retry time has come (run_after <= now()) join the
-- claimable ready queue: run_after is cleared, and the claim's index (tasks_ready, WHERE state =
-- 'ready' AND run_after IS NULL) then holds them. Rows another transaction holds (a claimer doing
-- the same, a cancel) are skipped, never waited for. One probe of tasks_retry_at when none is
-- due. Returns how many joined. Run first by every claim, and by a worker's retry timer through
-- cairn_wake_retries. DESIGN.md §4 "Retries".

CREATE OR REPLACE FUNCTION cairn_promote_retries() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE v integer;
BEGIN
  WITH due AS (
    SELECT id FROM tasks WHERE state = 'ready' AND run_after <= now() FOR UPDATE SKIP LOCKED
  )
  UPDATE tasks t SET run_after = NULL FROM due WHERE t.id = due.id;
  GET DIAGNOSTICS v = ROW_COUNT;
  RETURN v;
END $$;
--> statement-breakpoint
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
--> statement-breakpoint
-- cairn_retry_delay: how long a task waits before its retry number p_retry (1: the first retry),
-- given its retry_backoff_ms: the backoff doubled for each retry before this one, plus up to a
-- quarter more at random (so that tasks that failed together do not all retry together), capped at
-- 10 minutes. Never less than the doubled backoff (or the cap), so a retry waits at least that long.
-- Callers set no wait at all for a backoff of 0. DESIGN.md §4 "Retries".

CREATE OR REPLACE FUNCTION cairn_retry_delay(p_backoff_ms integer, p_retry integer) RETURNS interval
LANGUAGE sql VOLATILE AS $$
  SELECT make_interval(secs => least(600000, d * (1 + random() / 4)) / 1000)
  FROM (SELECT least(600000, p_backoff_ms * power(2::float8, least(greatest(p_retry, 1), 64) - 1)) AS d) s
$$;
--> statement-breakpoint
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
--> statement-breakpoint
-- cairn_wake_retries: a worker's retry timer went off. Retries whose time has come join the ready
-- queue (cairn_promote_retries). Returns { "ready": <how many>, "retry_in_ms": <until the next
-- retry still waiting, if any> }, for cairn_notify (which wakes idle workers for the ready ones) and
-- for the timer (which sets itself for the next one). Nothing polls for due retries: the worker that
-- scheduled a retry keeps a timer for it, and every claim promotes due retries first, which covers
-- a timer lost with its worker (the safety-net poll claims). DESIGN.md §4 "Retries".

CREATE OR REPLACE FUNCTION cairn_wake_retries() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ready integer := cairn_promote_retries();
  v_next timestamptz;
BEGIN
  -- Due rows that were skipped are another transaction's to promote (or to settle).
  SELECT min(run_after) INTO v_next FROM tasks WHERE state = 'ready' AND run_after > now();
  RETURN jsonb_build_object('ready', v_ready, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb)
    || CASE WHEN v_next IS NULL THEN '{}'::jsonb
            ELSE jsonb_build_object('retry_in_ms', ceil(extract(epoch FROM v_next - now()) * 1000)) END;
END $$;
