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
