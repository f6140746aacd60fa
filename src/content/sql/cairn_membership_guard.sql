-- cairn_membership_guard: a repository_content membership row is closed at most once: removed_in
-- goes from NULL to a later version number, and nothing else of the row changes.
-- DESIGN.md §12 "Content units and versions".

CREATE OR REPLACE FUNCTION cairn_membership_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.removed_in IS NOT NULL OR NEW.removed_in IS NULL OR NEW.removed_in <= OLD.added_in
     OR NEW.repository_id <> OLD.repository_id OR NEW.content_id <> OLD.content_id OR NEW.added_in <> OLD.added_in THEN
    RAISE EXCEPTION 'repository_content: a membership row may only be closed once, by a later version' USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER repository_content_close_once BEFORE UPDATE ON repository_content FOR EACH ROW EXECUTE FUNCTION cairn_membership_guard();
