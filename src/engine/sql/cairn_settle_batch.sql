-- cairn_settle_batch: the settles of one worker generation (p_worker) that its process coalesced
-- into one statement (src/engine/worker/completer.ts), in one transaction. p_settles is an array of
--   {"t": task, "a": attempt, "v": output values}                      succeeded (as cairn_resolve)
--   {"t": task, "a": attempt, "s": 'failed'|'canceled', "c": code, "m": message}  (as cairn_fail)
-- each with "n": how many tasks to claim for the slot it frees. Every settle is fenced as on its own
-- (`state = 'running' AND worker_id = p_worker AND attempts = a`): one that matches nothing changes
-- nothing and its result is NULL. The successes are settled together: one update of their task
-- rows and of their outputs, one cascade (cairn_settle_cascade), so that their releases and settle
-- hooks run once for the batch; failures go through cairn_fail one by one. Every key the batch
-- can release is locked first, in one call (hash order: keys before rows, and no two batches
-- wait on each other in a cycle). One NOTIFY for the whole batch (cairn_notify).
-- Returns {"results": [per settle, in order: its changes or NULL], "claim": the sum of "n" of
-- the settles that matched}, for the claim that follows in the same statement (queries/settle.ts).
-- DESIGN.md §4 "Settle", "Settle and claim".

CREATE OR REPLACE FUNCTION cairn_settle_batch(p_worker text, p_settles jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_tasks text[];
  v_fails boolean;
  v_resolved text[] := '{}';
  v_matched text[] := '{}';
  v_changes jsonb;
  v_one jsonb;
  v_results jsonb := '[]'::jsonb;
  v_claim integer := 0;
  e record;
BEGIN
  SELECT array_agg(x->>'t'), bool_or(x ? 's') INTO v_tasks, v_fails FROM jsonb_array_elements(p_settles) x;
  IF v_tasks IS NULL THEN
    RETURN jsonb_build_object('results', '[]'::jsonb, 'claim', 0);
  END IF;
  -- A failure can cascade: then the keys of the blocked tasks downstream too (cairn_fail's order).
  PERFORM cairn_lock_task_keys(v_tasks, v_fails);

  WITH s AS (
    SELECT x->>'t' AS id, (x->>'a')::integer AS attempt, x->'v' AS v
    FROM jsonb_array_elements(p_settles) x WHERE NOT x ? 's'
  ), u AS (
    UPDATE tasks t SET state = 'succeeded', finished_at = now(), error = NULL
    FROM s
    WHERE t.id = s.id AND t.state = 'running' AND t.worker_id = p_worker AND t.attempts = s.attempt
    RETURNING t.id, s.attempt, s.v
  ), f AS (
    UPDATE futures fu SET state = 'resolved', settled_at = now(), value = coalesce(u.v -> fu.output, 'null'::jsonb)
    FROM u WHERE fu.producer_task = u.id AND fu.state = 'pending'
  )
  -- (f runs to completion although nothing reads it: data-modifying CTEs always do.)
  SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(id || '/' || attempt), '{}') INTO v_resolved, v_matched FROM u;
  IF cardinality(v_resolved) > 0 THEN
    v_changes := cairn_settle_cascade(v_resolved);
  END IF;

  FOR e IN SELECT x, ord FROM jsonb_array_elements(p_settles) WITH ORDINALITY AS a(x, ord) ORDER BY ord LOOP
    IF e.x ? 's' THEN
      v_one := cairn_fail(e.x->>'t', p_worker, (e.x->>'a')::integer, e.x->>'s', e.x->>'c', e.x->>'m');
      IF v_one IS NOT NULL THEN
        v_changes := CASE WHEN v_changes IS NULL THEN v_one - 'retry_in_ms' ELSE jsonb_build_object(
          'ready', (v_changes->>'ready')::integer + (v_one->>'ready')::integer,
          'tasks', (v_changes->'tasks') || (v_one->'tasks'),
          'futures', (v_changes->'futures') || (v_one->'futures')) END;
      END IF;
    ELSIF (e.x->>'t') || '/' || (e.x->>'a') = ANY(v_matched) THEN
      -- What it changed is announced below with the batch's; the worker needs only "it was ours".
      -- A second copy of the same settle in the batch matched nothing (the row was updated once).
      v_one := jsonb_build_object('ready', 0, 'tasks', '[]'::jsonb, 'futures', '[]'::jsonb);
      v_matched := array_remove(v_matched, (e.x->>'t') || '/' || (e.x->>'a'));
    ELSE
      v_one := NULL;
    END IF;
    v_results := v_results || jsonb_build_array(v_one);
    IF v_one IS NOT NULL THEN
      v_claim := v_claim + coalesce((e.x->>'n')::integer, 0);
    END IF;
  END LOOP;

  PERFORM cairn_notify(v_changes);
  RETURN jsonb_build_object('results', v_results, 'claim', v_claim);
END $$;
