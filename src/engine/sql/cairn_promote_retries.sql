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
