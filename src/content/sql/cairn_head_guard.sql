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
