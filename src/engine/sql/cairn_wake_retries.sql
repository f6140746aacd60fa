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
