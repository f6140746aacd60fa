-- cairn_make_ready: tasks whose two counters (pending_inputs, blocked_keys) reached zero become
-- ready. Returns how many. A generic plan (primary-key probes for the array): the plan cache kept
-- planning the update afresh at every settle, the custom plan for a one-element array being
-- cheaper on paper. DESIGN.md §4 "Scheduling without a dispatcher"; §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_make_ready(p_tasks text[]) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE v integer;
BEGIN
  UPDATE tasks SET state = 'ready', ready_at = now()
  WHERE id = ANY(p_tasks) AND state = 'blocked' AND pending_inputs = 0 AND blocked_keys = 0;
  GET DIAGNOSTICS v = ROW_COUNT;
  RETURN v;
END $$;
