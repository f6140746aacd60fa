-- cairn_content_on_submitted: what a newly submitted task will use is held until it settles
-- (cairn_content_on_settled lets go), so that queued work never fails because something it
-- references was released or reclaimed meanwhile. Registered as the engine's submit hook "content"
-- (src/engine/sql/cairn_on_submitted.sql). DESIGN.md §19 "Holds".
--
-- What is held, one task_holds row per target:
--   * every resolved input future of kind repository_version or publication: the version or
--     publication its value names (any kind of task: a task holds the rows behind its inputs). An
--     input still pending is held by the commit that resolves it (cairn_hold_consumers);
--   * the params `content_held_params` names per kind: a repository (its head, so its latest
--     version and its open membership rows: file.sync, repository.modify, repository.prune, a
--     plugin's sync) or a remote (the revision a sync reads). A content-type plugin registers its
--     kinds' rows there in its migration instead of editing this function;
--   * the units and uploaded artifacts repository.modify adds or removes.
-- Each target is locked FOR KEY SHARE first (a cleanup deleting it at this moment is waited for,
-- and then it is simply not found), then held. A target that is gone refuses the submission: SQLSTATE
-- CA002 with a DETAIL naming each task's problems (the engine answers 400 naming the nodes). Tasks
-- the submission settled at once (an input had failed) need nothing and hold nothing: their settle
-- hook has run already.

CREATE OR REPLACE FUNCTION cairn_content_on_submitted(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_task text[];
  v_what text[];
  v_id text[];
  v_said text[];
  v_problems jsonb;
  v_tasks text[];
BEGIN
  SELECT coalesce(array_agg(id), '{}') INTO v_tasks FROM tasks WHERE id = ANY(p_tasks) AND state IN ('blocked', 'ready', 'running');
  SELECT coalesce(array_agg(task_id ORDER BY what, id), '{}'), coalesce(array_agg(what ORDER BY what, id), '{}'),
         coalesce(array_agg(id ORDER BY what, id), '{}'), coalesce(array_agg(said ORDER BY what, id), '{}')
    INTO v_task, v_what, v_id, v_said
  FROM (
    SELECT ti.task_id,
           CASE f.kind WHEN 'repository_version' THEN 'version' ELSE 'publication' END AS what,
           f.value ->> CASE f.kind WHEN 'repository_version' THEN 'version' ELSE 'publication' END AS id,
           format('input %s: the %s it resolved to was released and has been reclaimed', f.id,
                  CASE f.kind WHEN 'repository_version' THEN 'repository version' ELSE 'publication' END) AS said
    FROM task_inputs ti JOIN futures f ON f.id = ti.future_id
    WHERE ti.task_id = ANY(v_tasks) AND f.state = 'resolved' AND f.kind IN ('repository_version', 'publication')
    UNION
    SELECT t.id, h.holds, t.params -> h.param ->> CASE h.holds WHEN 'repository' THEN 'id' ELSE 'revision' END,
           format('params.%s: %s %s was deleted', h.param, CASE h.holds WHEN 'repository' THEN 'repository' ELSE 'remote' END,
                  t.params -> h.param ->> 'name')
    FROM tasks t JOIN content_held_params h ON h.kind = t.kind WHERE t.id = ANY(v_tasks)
    UNION
    SELECT t.id,
           CASE jsonb_typeof(e) WHEN 'string' THEN 'content' ELSE 'artifact' END,
           CASE jsonb_typeof(e) WHEN 'string' THEN e #>> '{}' ELSE e ->> 'artifact' END,
           CASE jsonb_typeof(e) WHEN 'string' THEN format('params.add: no content unit %s', e #>> '{}')
                ELSE format('params.add: no artifact %s (an upload that expired is cleaned up)', e ->> 'artifact') END
    FROM tasks t
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(t.params -> 'add') = 'array' THEN t.params -> 'add' ELSE '[]'::jsonb END) AS e
    WHERE t.id = ANY(v_tasks) AND t.kind = 'repository.modify' AND jsonb_typeof(e) IN ('string', 'object')
    UNION
    SELECT t.id, 'content', e #>> '{}', format('params.remove: no content unit %s', e #>> '{}')
    FROM tasks t
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(t.params -> 'remove') = 'array' THEN t.params -> 'remove' ELSE '[]'::jsonb END) AS e
    WHERE t.id = ANY(v_tasks) AND t.kind = 'repository.modify' AND jsonb_typeof(e) = 'string'
  ) w
  WHERE id IS NOT NULL;
  IF cardinality(v_id) = 0 THEN
    RETURN;
  END IF;

  WITH w AS (
    SELECT * FROM unnest(v_task, v_what, v_id, v_said) AS w(task_id, what, id, said)
  ), lv AS (
    SELECT id FROM repository_versions WHERE id IN (SELECT id FROM w WHERE what = 'version') ORDER BY id FOR KEY SHARE
  ), lp AS (
    SELECT id FROM publications WHERE id IN (SELECT id FROM w WHERE what = 'publication') ORDER BY id FOR KEY SHARE
  ), lr AS (
    SELECT repository_id AS id FROM repository_heads WHERE repository_id IN (SELECT id FROM w WHERE what = 'repository')
    ORDER BY repository_id FOR KEY SHARE
  ), lm AS (
    SELECT id FROM remote_revisions WHERE id IN (SELECT id FROM w WHERE what = 'remote_revision') ORDER BY id FOR KEY SHARE
  ), lc AS (
    SELECT id FROM content_units WHERE id IN (SELECT id FROM w WHERE what = 'content') ORDER BY id FOR KEY SHARE
  ), la AS (
    SELECT id FROM artifacts WHERE id IN (SELECT id FROM w WHERE what = 'artifact') ORDER BY id FOR KEY SHARE
  ), present AS (
    SELECT 'version' AS what, id FROM lv UNION ALL SELECT 'publication', id FROM lp
    UNION ALL SELECT 'repository', id FROM lr UNION ALL SELECT 'remote_revision', id FROM lm
    UNION ALL SELECT 'content', id FROM lc UNION ALL SELECT 'artifact', id FROM la
  ), held AS (
    INSERT INTO task_holds (task_id, repository_id, version_id, publication_id, content_id, artifact_id, remote_revision_id)
    SELECT DISTINCT w.task_id,
           CASE w.what WHEN 'repository' THEN w.id END, CASE w.what WHEN 'version' THEN w.id END,
           CASE w.what WHEN 'publication' THEN w.id END, CASE w.what WHEN 'content' THEN w.id END,
           CASE w.what WHEN 'artifact' THEN w.id END, CASE w.what WHEN 'remote_revision' THEN w.id END
    FROM w JOIN present p ON p.what = w.what AND p.id = w.id
  ), missing AS (
    SELECT w.task_id, jsonb_agg(DISTINCT w.said) AS said
    FROM w LEFT JOIN present p ON p.what = w.what AND p.id = w.id
    WHERE p.id IS NULL GROUP BY w.task_id
  )
  SELECT jsonb_object_agg(task_id, said) INTO v_problems FROM missing;

  IF v_problems IS NOT NULL THEN
    RAISE EXCEPTION 'the submission references what no longer exists' USING ERRCODE = 'CA002', DETAIL = v_problems::text;
  END IF;
END $$;

INSERT INTO submit_hooks (name, fn) VALUES ('content', 'cairn_content_on_submitted(text[])')
  ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn;
