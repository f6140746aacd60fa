-- cairn_make_ready: tasks whose two counters (pending_inputs, blocked_keys) reached zero become
-- ready. Returns how many. DESIGN.md §4 "Scheduling without a dispatcher".

CREATE OR REPLACE FUNCTION cairn_make_ready(p_tasks text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE v integer;
BEGIN
  UPDATE tasks SET state = 'ready', ready_at = now()
  WHERE id = ANY(p_tasks) AND state = 'blocked' AND pending_inputs = 0 AND blocked_keys = 0;
  GET DIAGNOSTICS v = ROW_COUNT;
  RETURN v;
END $$;
