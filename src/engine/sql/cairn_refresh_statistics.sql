-- cairn_refresh_statistics: a submission that grows `tasks` by a fifth or more (or finds it never
-- analyzed) runs ANALYZE on the engine's tables in its own transaction, before commit (ANALYZE
-- counts the transaction's own rows), so that the graph's first failure cascade is never planned
-- from statistics that predate it. Concurrent analyzers (another submission, autovacuum) make it
-- give up after 50 ms rather than wait: one of them does the work. DESIGN.md §15 "Failure cascade".

CREATE OR REPLACE FUNCTION cairn_refresh_statistics(p_new_tasks integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_known real;
  v_lock_timeout text := current_setting('lock_timeout');
BEGIN
  IF p_new_tasks < 100 THEN
    RETURN;
  END IF;
  -- reltuples: what the planner last learned (-1: never analyzed nor vacuumed).
  SELECT reltuples INTO v_known FROM pg_class WHERE oid = 'tasks'::regclass;
  IF v_known >= 0 AND p_new_tasks < 0.2 * v_known THEN
    RETURN;
  END IF;
  BEGIN
    PERFORM set_config('lock_timeout', '50ms', true);
    ANALYZE tasks, futures, task_inputs, task_keys;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
  EXCEPTION WHEN lock_not_available THEN
    NULL; -- another transaction is analyzing or vacuuming these tables; its statistics will do
  END;
END $$;
