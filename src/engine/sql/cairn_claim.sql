-- cairn_claim: retries whose time has come join the ready queue first (cairn_promote_retries; one
-- index probe when none is due). Then the ready tasks of highest priority, oldest first (seq),
-- FOR UPDATE SKIP LOCKED, up to p_limit, with their resolved inputs and output ids, made running
-- under p_worker: one scan of the partial index tasks_ready (priority DESC, seq) WHERE state =
-- 'ready' AND run_after IS NULL, whose cost does not grow with the backlog. Priority only orders
-- tasks that are ready: a task behind an earlier conflicting one on a key is blocked, not ready,
-- so FCFS holds whatever the priorities. Then the baton: a claim that filled every slot it asked for
-- and saw ready work left over wakes idle workers for it (never the claimer), which covers a named
-- worker that was already claiming something else when its wake-up came; it looks for ready work
-- left only when some other worker is idle (the same test cairn_notify makes).
-- Plans: generic (plan_cache_mode below). With `LIMIT p_limit` the plan cache found every custom
-- plan (LIMIT 1 or 2) cheaper than the generic one (which assumes a tenth of the ready rows) and
-- planned the claim afresh on every call, 0.25 ms, more than running it. The picked ids are an
-- array (`= ANY(ARRAY(...))`), which the generic plan probes through the primary key whatever the
-- backlog; joined to a CTE, the generic plan hash-joined a scan of all of `tasks`.
-- DESIGN.md §4 "Claim", "Retries", §5 "Wake-ups"; §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_claim(p_worker text, p_limit integer)
RETURNS TABLE (id text, graph_id text, kind text, params jsonb, attempts integer, latency_ms float8, inputs jsonb, outputs jsonb)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  v_claimed integer;
  v_left integer;
BEGIN
  -- A settle that also claims asks for nothing when its task was no longer its own (queries/settle.ts).
  IF p_limit < 1 THEN
    RETURN;
  END IF;
  PERFORM cairn_promote_retries();
  RETURN QUERY
  UPDATE tasks t
  SET state = 'running', worker_id = p_worker, started_at = clock_timestamp(), attempts = t.attempts + 1
  WHERE t.id = ANY(ARRAY(
    SELECT p.id FROM tasks p WHERE p.state = 'ready' AND p.run_after IS NULL
    ORDER BY p.priority DESC, p.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
  ))
  RETURNING t.id, t.graph_id, t.kind, t.params, t.attempts,
    (extract(epoch FROM clock_timestamp() - t.ready_at) * 1000)::float8,
    (SELECT coalesce(jsonb_object_agg(f.id, jsonb_build_object('kind', f.kind, 'value', f.value)), '{}'::jsonb)
     FROM task_inputs ti JOIN futures f ON f.id = ti.future_id WHERE ti.task_id = t.id),
    (SELECT coalesce(jsonb_object_agg(o.output, o.id), '{}'::jsonb) FROM futures o WHERE o.producer_task = t.id);
  GET DIAGNOSTICS v_claimed = ROW_COUNT;
  -- Only when another worker is idle: cairn_notify wakes nobody else, and the count below (a walk
  -- of the ready index past the entries of rows just claimed) was a third of a busy claim's cost.
  IF v_claimed = p_limit AND EXISTS (
    SELECT 1 FROM workers w
    WHERE w.id <> p_worker AND w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')
  ) THEN
    -- Our own claims are 'running' already; rows other claimers hold count too (a spare wake-up).
    SELECT count(*) INTO v_left FROM (SELECT 1 FROM tasks t WHERE t.state = 'ready' AND t.run_after IS NULL LIMIT 64) s;
    IF v_left > 0 THEN
      PERFORM cairn_notify(jsonb_build_object('ready', v_left, 'exclude', p_worker));
    END IF;
  END IF;
END $$;
