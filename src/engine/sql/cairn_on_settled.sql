-- cairn_on_settled: called by cairn_settle_cascade with every task a cascade settled, in the settle
-- transaction: the place where what a task owns is released. The engine owns nothing itself; this
-- body is the content store's (task_artifacts, slot locks), which drizzle/0004_content_rules.sql
-- installed by replacing the engine's empty hook. DESIGN.md §4 "Settle", §12 "Slot locks".

CREATE OR REPLACE FUNCTION cairn_on_settled(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM task_artifacts WHERE task_id = ANY(p_tasks);
  DELETE FROM slot_locks WHERE owner_task = ANY(p_tasks);
END $$;
