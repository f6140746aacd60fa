-- Targeted wake-ups (issue #4, bench:tasking; DESIGN.md §5 and §15).
--
-- Every idle worker process used to claim on every wake-up that made work ready: 26 claim
-- statements per task at 32 single-slot processes, 56 at 64, most of them finding nothing, and on
-- a small machine the CPU of those wasted claims slowed everything else. Now:
--
-- * cairn_notify wakes about as many idle workers as there are ready tasks, plus two: the payload
--   names them (`w`) when more are idle than that. Idle means a `workers` row with a free slot as
--   committed. If no worker is idle, the wake-up says nothing about ready work: every busy worker
--   claims again as soon as a slot frees, and a worker claims when it registers.
-- * cairn_claim passes the baton: a claim that filled every slot it asked for and saw ready work
--   left over wakes idle workers for it (never the claimer). That covers a named worker that was
--   already claiming something else when the wake-up arrived (it looked idle, its claim was not
--   committed yet): whoever took the work it would have taken passes the rest on.
-- The slow poll (CAIRN_POLL_INTERVAL_MS) stays the safety net, as before.
CREATE OR REPLACE FUNCTION cairn_notify(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ready integer := coalesce((p->>'ready')::integer, 0);
  v_futures jsonb := coalesce(p->'futures', '[]'::jsonb);
  v_cancel jsonb := coalesce(p->'cancel', '[]'::jsonb);
  v_dist boolean := coalesce((p->>'distributions')::boolean, false);
  v_wanted integer;
  v_idle text[];
  v_targets text[];
  v_payload jsonb;
BEGIN
  IF p IS NULL THEN
    RETURN p;
  END IF;
  IF v_ready > 0 THEN
    SELECT coalesce(array_agg(w.id ORDER BY random()), '{}') INTO v_idle
    FROM workers w
    WHERE w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')
      AND w.id IS DISTINCT FROM p->>'exclude';
    -- At most 100 names (a NOTIFY payload is limited to 8,000 bytes; the baton wakes more).
    v_wanted := least(v_ready, 98) + 2;
    IF cardinality(v_idle) = 0 THEN
      v_ready := 0;
    ELSIF cardinality(v_idle) > v_wanted THEN
      v_targets := v_idle[1:v_wanted];
    END IF;
  END IF;
  IF v_ready = 0 AND jsonb_array_length(v_futures) = 0 AND jsonb_array_length(v_cancel) = 0 AND NOT v_dist THEN
    RETURN p;
  END IF;
  v_payload := jsonb_build_object(
    'r', v_ready,
    'f', CASE WHEN jsonb_array_length(v_futures) > 60 THEN '"*"'::jsonb ELSE v_futures END,
    'c', CASE WHEN jsonb_array_length(v_cancel) > 60 THEN '"*"'::jsonb ELSE v_cancel END);
  IF v_targets IS NOT NULL THEN v_payload := v_payload || jsonb_build_object('w', to_jsonb(v_targets)); END IF;
  IF v_dist THEN v_payload := v_payload || '{"d": 1}'::jsonb; END IF;
  PERFORM pg_notify('cairn', v_payload::text);
  RETURN p;
END $$;

-- The claim (was a plain statement in src/engine/claim.ts): the oldest ready tasks, SKIP LOCKED,
-- with their resolved inputs and output ids; then the baton.
CREATE FUNCTION cairn_claim(p_worker text, p_limit integer)
RETURNS TABLE (id text, graph_id text, kind text, params jsonb, attempts integer, latency_ms float8, inputs jsonb, outputs jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_claimed integer;
  v_left integer;
BEGIN
  RETURN QUERY
  WITH picked AS (
    SELECT t.id FROM tasks t WHERE t.state = 'ready' ORDER BY t.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
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
    SELECT count(*) INTO v_left FROM (SELECT 1 FROM tasks t WHERE t.state = 'ready' LIMIT 64) s;
    IF v_left > 0 THEN
      PERFORM cairn_notify(jsonb_build_object('ready', v_left, 'exclude', p_worker));
    END IF;
  END IF;
END $$;
