-- Written by `npm run db:functions`: the current definitions of
--   src/content/sql/cairn_content_on_settled.sql
--   src/content/sql/cairn_content_on_submitted.sql
--   src/content/sql/cairn_head_guard.sql
--   src/content/sql/cairn_hold_consumers.sql
--   src/content/sql/cairn_membership_guard.sql
--   src/content/sql/cairn_publication_guard.sql
--   src/content/sql/cairn_refuse_update.sql
--   src/content/sql/cairn_revision_guard.sql
--   src/engine/sql/cairn_future_guard.sql
--   src/engine/sql/cairn_on_submitted.sql
--   src/engine/sql/cairn_task_guard.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_content_on_settled: what a task owned in the content store is released when it settles:
-- the artifacts it was using (task_artifacts; by then its commit has made a content unit or a
-- publication own them, in the same transaction), its slot locks, and what it held since its
-- submission (task_holds: versions, publications, units, artifacts, its repository, its remote's
-- revision). Registered as the engine's settle hook "content" (src/engine/sql/cairn_on_settled.sql).
-- DESIGN.md §12 "Artifacts and storage layout", "Slot locks"; §19 "Holds".

CREATE OR REPLACE FUNCTION cairn_content_on_settled(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM task_artifacts WHERE task_id = ANY(p_tasks);
  DELETE FROM slot_locks WHERE owner_task = ANY(p_tasks);
  DELETE FROM task_holds WHERE task_id = ANY(p_tasks);
END $$;

INSERT INTO settle_hooks (name, fn) VALUES ('content', 'cairn_content_on_settled(text[])')
  ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn;
--> statement-breakpoint
-- cairn_content_on_submitted: what a newly submitted task will use is held until it settles
-- (cairn_content_on_settled lets go), so that queued work never fails because something it
-- references was released or reclaimed meanwhile. Registered as the engine's submit hook "content"
-- (src/engine/sql/cairn_on_submitted.sql). DESIGN.md §19 "Holds".
--
-- What is held, one task_holds row per target:
--   * every resolved input future of kind repository_version or publication: the version or
--     publication its value names (any kind of task: a task holds the rows behind its inputs). An
--     input still pending is held by the commit that resolves it (cairn_hold_consumers);
--   * the content kinds' params: the repository of file.sync, repository.modify and
--     repository.prune (its head, so its latest version and its open membership rows), the remote
--     revision file.sync reads, the units and uploaded artifacts repository.modify adds or removes.
--     A content-type plugin whose kinds take such params adds its kinds' names here.
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
    SELECT t.id, 'repository', t.params -> 'repository' ->> 'id',
           format('params.repository: repository %s was deleted', t.params -> 'repository' ->> 'name')
    FROM tasks t WHERE t.id = ANY(v_tasks) AND t.kind IN ('file.sync', 'repository.modify', 'repository.prune')
    UNION
    SELECT t.id, 'remote_revision', t.params -> 'remote' ->> 'revision',
           format('params.remote: remote %s was deleted', t.params -> 'remote' ->> 'name')
    FROM tasks t WHERE t.id = ANY(v_tasks) AND t.kind = 'file.sync'
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
--> statement-breakpoint
-- cairn_head_guard: a repository whose name exists holds its head (and through it its latest
-- version): deleting the head is refused (SQLSTATE 23503). Unsettled tasks hold it by foreign key
-- (task_holds.repository_id). Race-free: a repository's name, once deleted, never comes back, so
-- once this check passes no name can hold the head again. DESIGN.md §19.

CREATE OR REPLACE FUNCTION cairn_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM names WHERE kind = 'repository' AND resource_id = OLD.repository_id) THEN
    RAISE EXCEPTION 'repository_heads %: a repository whose name exists holds its head', OLD.repository_id USING ERRCODE = '23503';
  END IF;
  RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER repository_heads_kept BEFORE DELETE ON repository_heads FOR EACH ROW EXECUTE FUNCTION cairn_head_guard();
--> statement-breakpoint
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
--> statement-breakpoint
-- cairn_membership_guard: a repository_content membership row is closed at most once (removed_in
-- goes from NULL to a later version number, nothing else of the row changes), and is held by every
-- version whose number lies in its range [added_in, removed_in): deleting a row that an existing
-- version, or (for a row still open) the repository's head, holds is refused (SQLSTATE 23503).
-- Race-free: new versions are numbered above every existing one, so no version is ever created in a
-- closed range; an open row's range grows only while the head exists, and a head, once deleted,
-- never comes back. DESIGN.md §12 "Content units and versions", §19.

CREATE OR REPLACE FUNCTION cairn_membership_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF EXISTS (SELECT 1 FROM repository_versions v
               WHERE v.repository_id = OLD.repository_id AND v.number >= OLD.added_in
                 AND (OLD.removed_in IS NULL OR v.number < OLD.removed_in))
       OR (OLD.removed_in IS NULL AND EXISTS (SELECT 1 FROM repository_heads h WHERE h.repository_id = OLD.repository_id)) THEN
      RAISE EXCEPTION 'repository_content: the membership of % in % from version % is held by a version', OLD.content_id,
        OLD.repository_id, OLD.added_in USING ERRCODE = '23503';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.removed_in IS NOT NULL OR NEW.removed_in IS NULL OR NEW.removed_in <= OLD.added_in
     OR NEW.repository_id <> OLD.repository_id OR NEW.content_id <> OLD.content_id OR NEW.added_in <> OLD.added_in THEN
    RAISE EXCEPTION 'repository_content: a membership row may only be closed once, by a later version' USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER repository_content_close_once BEFORE UPDATE ON repository_content FOR EACH ROW EXECUTE FUNCTION cairn_membership_guard();
CREATE OR REPLACE TRIGGER repository_content_kept BEFORE DELETE ON repository_content FOR EACH ROW EXECUTE FUNCTION cairn_membership_guard();
--> statement-breakpoint
-- cairn_publication_guard: a version the repository keeps holds its publications: deleting one is
-- refused (SQLSTATE 23503). Live distributions and unsettled tasks hold publications by foreign key
-- (distribution_paths.publication_id, task_holds.publication_id). Race-free: a version is kept from
-- the transaction that writes it, and keeps are only ever deleted afterwards, so once this check
-- passes no keep can hold the publication again. DESIGN.md §19.

CREATE OR REPLACE FUNCTION cairn_publication_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM version_keeps WHERE version_id = OLD.version_id) THEN
    RAISE EXCEPTION 'publication %: its version is kept by its repository, which holds it', OLD.id USING ERRCODE = '23503';
  END IF;
  RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER publications_kept BEFORE DELETE ON publications FOR EACH ROW EXECUTE FUNCTION cairn_publication_guard();
--> statement-breakpoint
-- cairn_refuse_update: payload rows of the content store never change, nor do holds (inserted and
-- deleted, never rewritten). Attached (BEFORE UPDATE) to every payload and hold table; membership
-- rows have their own guard (cairn_membership_guard). The live pointers (names, distribution_paths,
-- repository_heads) are the only rows that change.
-- DESIGN.md §2 "Immutability is a property of the schema", §12 "The content store".

CREATE OR REPLACE FUNCTION cairn_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'CA001';
END $$;

CREATE OR REPLACE TRIGGER resources_immutable BEFORE UPDATE ON resources FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER repository_revisions_immutable BEFORE UPDATE ON repository_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER remote_revisions_immutable BEFORE UPDATE ON remote_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER distribution_revisions_immutable BEFORE UPDATE ON distribution_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER artifacts_immutable BEFORE UPDATE ON artifacts FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER content_units_immutable BEFORE UPDATE ON content_units FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER content_artifacts_immutable BEFORE UPDATE ON content_artifacts FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER content_sources_immutable BEFORE UPDATE ON content_sources FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER repository_versions_immutable BEFORE UPDATE ON repository_versions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER publications_immutable BEFORE UPDATE ON publications FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER version_keeps_immutable BEFORE UPDATE ON version_keeps FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER task_holds_immutable BEFORE UPDATE ON task_holds FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER uploads_immutable BEFORE UPDATE ON uploads FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
--> statement-breakpoint
-- cairn_revision_guard: the current revision of a name is held by it: deleting it is refused
-- (SQLSTATE 23503, like a foreign key: "still referenced"). names.revision_id names revisions of
-- three tables, so this is a trigger, not a foreign key. It is race-free because a revision that
-- is not current never becomes current again (a change writes a new revision), so once this check
-- passes no holder can appear. History (old revisions) is purged by history.purge. DESIGN.md §19.

CREATE OR REPLACE FUNCTION cairn_revision_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM names WHERE revision_id = OLD.id) THEN
    RAISE EXCEPTION '% %: the current revision of a name is held by it', TG_TABLE_NAME, OLD.id USING ERRCODE = '23503';
  END IF;
  RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER repository_revisions_kept BEFORE DELETE ON repository_revisions FOR EACH ROW EXECUTE FUNCTION cairn_revision_guard();
CREATE OR REPLACE TRIGGER remote_revisions_kept BEFORE DELETE ON remote_revisions FOR EACH ROW EXECUTE FUNCTION cairn_revision_guard();
CREATE OR REPLACE TRIGGER distribution_revisions_kept BEFORE DELETE ON distribution_revisions FOR EACH ROW EXECUTE FUNCTION cairn_revision_guard();
--> statement-breakpoint
-- cairn_future_guard: a future changes once, from pending to settled, only in its settlement
-- columns (settled_at is filled in when missing), and a pending future is never deleted (a settled
-- one may be, by history.purge, once nothing holds it: DESIGN.md §19). The triggers' WHEN clauses
-- are true exactly when a rule could be broken or settled_at needs filling in, so the executor
-- calls the PL/pgSQL guard only then: settling 10,000 futures, or purging them, makes no guard call.
-- DESIGN.md §2 "Immutability is a property of the schema".

CREATE OR REPLACE FUNCTION cairn_future_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.state = 'pending' THEN
      RAISE EXCEPTION 'future % is pending: only a settled future may be deleted', OLD.id USING ERRCODE = 'CA001';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.state <> 'pending' THEN
    RAISE EXCEPTION 'future % is already %: a settled future is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.state = 'pending' THEN
    RAISE EXCEPTION 'future % is pending: it may change only by settling', OLD.id USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.producer_task <> OLD.producer_task
     OR NEW.output <> OLD.output OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'future %: only its settlement may be written', OLD.id USING ERRCODE = 'CA001';
  END IF;
  NEW.settled_at := coalesce(NEW.settled_at, now());
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER futures_immutable BEFORE UPDATE ON futures FOR EACH ROW
  WHEN (OLD.state <> 'pending' OR NEW.state = 'pending' OR NEW.settled_at IS NULL
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.producer_task IS DISTINCT FROM OLD.producer_task OR NEW.output IS DISTINCT FROM OLD.output
        OR NEW.created_at IS DISTINCT FROM OLD.created_at)
  EXECUTE FUNCTION cairn_future_guard();

CREATE OR REPLACE TRIGGER futures_kept BEFORE DELETE ON futures FOR EACH ROW
  WHEN (OLD.state = 'pending')
  EXECUTE FUNCTION cairn_future_guard();
--> statement-breakpoint
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
--> statement-breakpoint
-- cairn_task_guard: a settled task never changes, no task's identity or params ever change, and
-- an unsettled task is never deleted (a settled one may be, with its graph, by history.purge:
-- DESIGN.md §19). As for futures, the triggers' WHEN clauses call the guard only when a rule could
-- be broken. DESIGN.md §2 "Immutability is a property of the schema".

CREATE OR REPLACE FUNCTION cairn_task_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.state NOT IN ('succeeded', 'failed', 'canceled') THEN
      RAISE EXCEPTION 'task % is %: only a settled task may be deleted', OLD.id, OLD.state USING ERRCODE = 'CA001';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.state IN ('succeeded', 'failed', 'canceled') THEN
    RAISE EXCEPTION 'task % is already %: a settled task is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.graph_id <> OLD.graph_id OR NEW.node <> OLD.node OR NEW.kind <> OLD.kind
     OR NEW.seq <> OLD.seq OR NEW.params <> OLD.params THEN
    RAISE EXCEPTION 'task %: its identity and params are immutable', OLD.id USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tasks_immutable BEFORE UPDATE ON tasks FOR EACH ROW
  WHEN (OLD.state IN ('succeeded', 'failed', 'canceled')
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.graph_id IS DISTINCT FROM OLD.graph_id
        OR NEW.node IS DISTINCT FROM OLD.node OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.params IS DISTINCT FROM OLD.params)
  EXECUTE FUNCTION cairn_task_guard();

CREATE OR REPLACE TRIGGER tasks_kept BEFORE DELETE ON tasks FOR EACH ROW
  WHEN (OLD.state NOT IN ('succeeded', 'failed', 'canceled'))
  EXECUTE FUNCTION cairn_task_guard();
