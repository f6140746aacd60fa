-- cairn_on_settled: called by cairn_settle_cascade with every task a cascade settled, in the settle
-- transaction, after the FCFS and data release: the place where what other modules keep on behalf
-- of a task is released. The engine owns nothing there and knows none of their tables: it runs,
-- in name order, every function registered in `settle_hooks` (name, fn regprocedure taking
-- text[]); each module registers its own (the content store: src/content/sql/
-- cairn_content_on_settled.sql), so a second module cannot replace the first one's release. A
-- hook must only release what its module owns, and must not fail: an error rolls back the
-- settlement. DESIGN.md §4 "Settle".

CREATE OR REPLACE FUNCTION cairn_on_settled(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_hook regproc;
BEGIN
  IF cardinality(p_tasks) = 0 THEN
    RETURN;
  END IF;
  FOR v_hook IN SELECT fn::oid::regproc FROM settle_hooks ORDER BY name LOOP
    EXECUTE format('SELECT %s($1)', v_hook) USING p_tasks;
  END LOOP;
END $$;
