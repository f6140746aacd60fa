-- cairn_hold_consumers: called by the commit that resolves a content future (a repository version
-- from cutVersion, a publication from file.publish), in its transaction: every unsettled task that
-- takes this future as input holds what it resolves to, from now until it settles. Tasks submitted
-- while the future was pending could hold nothing then (cairn_content_on_submitted holds only the
-- rows behind resolved inputs). Exactly one of p_version, p_publication is given.
--
-- Late joiners: a submission that references the future locks it FOR SHARE until it commits. The
-- future is locked FOR UPDATE first, so either that submission committed before, and the INSERT
-- (a later statement: a new snapshot) sees its task, or it waits for this commit and then finds the
-- future resolved and holds the row itself. DESIGN.md §19 "Holds".

CREATE OR REPLACE FUNCTION cairn_hold_consumers(p_future text, p_version text, p_publication text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM futures WHERE id = p_future FOR UPDATE;
  INSERT INTO task_holds (task_id, version_id, publication_id)
  SELECT ti.task_id, p_version, p_publication
  FROM task_inputs ti JOIN tasks t ON t.id = ti.task_id
  WHERE ti.future_id = p_future AND t.state IN ('blocked', 'ready', 'running');
END $$;
