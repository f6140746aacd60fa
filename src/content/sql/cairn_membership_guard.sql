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
