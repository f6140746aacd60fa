-- cairn_claim: the oldest ready tasks, FOR UPDATE SKIP LOCKED, up to p_limit, with their resolved
-- inputs and output ids, made running under p_worker; then the baton: a claim that filled every
-- slot it asked for and saw ready work left over wakes idle workers for it (never the claimer),
-- which covers a named worker that was already claiming something else when its wake-up came.
-- DESIGN.md §4 "Claim", §5 "Wake-ups".

CREATE OR REPLACE FUNCTION cairn_claim(p_worker text, p_limit integer)
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
