-- cairn_content_on_settled: what a task owned in the content store is released when it settles:
-- the artifacts it was using (task_artifacts; by then its commit has made a content unit or a
-- publication own them, in the same transaction), its slot locks, and what it held since its
-- submission (task_holds: versions, publications, units, artifacts, its repository, its remote's
-- revision). Registered as the engine's settle hook "content" (src/engine/sql/cairn_on_settled.sql).
-- Generic plans (index probes for the array), as cairn_make_ready: the custom ones were made
-- afresh at every settle. DESIGN.md §12 "Artifacts and storage layout", "Slot locks"; §19 "Holds";
-- §15 "Generic plans".

CREATE OR REPLACE FUNCTION cairn_content_on_settled(p_tasks text[]) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  DELETE FROM task_artifacts WHERE task_id = ANY(p_tasks);
  DELETE FROM slot_locks WHERE owner_task = ANY(p_tasks);
  DELETE FROM task_holds WHERE task_id = ANY(p_tasks);
END $$;

INSERT INTO settle_hooks (name, fn) VALUES ('content', 'cairn_content_on_settled(text[])')
  ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn;
