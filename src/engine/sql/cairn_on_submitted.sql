-- cairn_on_submitted: called by the submission (src/engine/submit/write.ts) with the ids of every
-- task it wrote, in its transaction, after the rows and before it commits: the place where other
-- modules hold what those tasks will use, so that nothing they reference is reclaimed before they
-- settle (their settle hooks let go). Like cairn_on_settled, the engine owns nothing there: it runs,
-- in name order, every function registered in `submit_hooks` (name, fn regprocedure taking
-- text[]); each module registers its own (the content store: src/content/sql/
-- cairn_content_on_submitted.sql). A hook refuses the submission by raising SQLSTATE CA002 with a
-- DETAIL that is a JSON object { task id: [sentence, ...] }: the engine answers 400 naming those
-- nodes, and nothing is written. DESIGN.md §4 "Settle", §19 "Holds".

CREATE OR REPLACE FUNCTION cairn_on_submitted(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_hook regproc;
BEGIN
  IF cardinality(p_tasks) = 0 THEN
    RETURN;
  END IF;
  FOR v_hook IN SELECT fn::oid::regproc FROM submit_hooks ORDER BY name LOOP
    EXECUTE format('SELECT %s($1)', v_hook) USING p_tasks;
  END LOOP;
END $$;
