-- The content store's rules that live in the database: immutability of every payload row, the
-- base-path overlap rule as an exclusion constraint, and the release of what a task owns when it
-- settles. DESIGN.md ("The content store") explains why each holds under concurrency.

-- Payload rows never change. (Membership rows may be closed once; see below.)
CREATE TRIGGER resources_immutable BEFORE UPDATE ON resources FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER repository_revisions_immutable BEFORE UPDATE ON repository_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER remote_revisions_immutable BEFORE UPDATE ON remote_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER distribution_revisions_immutable BEFORE UPDATE ON distribution_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER artifacts_immutable BEFORE UPDATE ON artifacts FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER content_units_immutable BEFORE UPDATE ON content_units FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER content_artifacts_immutable BEFORE UPDATE ON content_artifacts FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER content_sources_immutable BEFORE UPDATE ON content_sources FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER repository_versions_immutable BEFORE UPDATE ON repository_versions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER publications_immutable BEFORE UPDATE ON publications FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
CREATE TRIGGER uploads_immutable BEFORE UPDATE ON uploads FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();--> statement-breakpoint
-- Versions, revisions and publications are history: never deleted.
CREATE FUNCTION cairn_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'CA001';
END $$;--> statement-breakpoint
CREATE TRIGGER repository_versions_kept BEFORE DELETE ON repository_versions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();--> statement-breakpoint
CREATE TRIGGER publications_kept BEFORE DELETE ON publications FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();--> statement-breakpoint
CREATE TRIGGER repository_revisions_kept BEFORE DELETE ON repository_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();--> statement-breakpoint
CREATE TRIGGER remote_revisions_kept BEFORE DELETE ON remote_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();--> statement-breakpoint
CREATE TRIGGER distribution_revisions_kept BEFORE DELETE ON distribution_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();--> statement-breakpoint

-- A membership row is closed at most once: removed_in goes from NULL to a later version number.
CREATE FUNCTION cairn_membership_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.removed_in IS NOT NULL OR NEW.removed_in IS NULL OR NEW.removed_in <= OLD.added_in
     OR NEW.repository_id <> OLD.repository_id OR NEW.content_id <> OLD.content_id OR NEW.added_in <> OLD.added_in THEN
    RAISE EXCEPTION 'repository_content: a membership row may only be closed once, by a later version' USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER repository_content_close_once BEFORE UPDATE ON repository_content FOR EACH ROW EXECUTE FUNCTION cairn_membership_guard();--> statement-breakpoint
CREATE INDEX repository_content_current ON repository_content (repository_id, content_id) WHERE removed_in IS NULL;--> statement-breakpoint
CREATE INDEX repository_content_added ON repository_content (repository_id, added_in);--> statement-breakpoint

-- Base paths. Two live distributions may not have base paths that are equal or where one is a
-- path-prefix of the other. Map a path P to the set of strings that start with "P/": two such sets
-- intersect exactly when one path is a path-prefix of (or equal to) the other ("a" and "ab" do not
-- overlap: "a/" vs "ab/"). In the C collation that set is the range ["P/", "P0") ('0' follows '/').
-- An exclusion constraint over it holds under any concurrency: a racing insert waits for the other
-- transaction and fails if it committed.
CREATE TYPE textrange AS RANGE (subtype = text, collation = "C");--> statement-breakpoint
ALTER TABLE distribution_paths ADD COLUMN span textrange
  GENERATED ALWAYS AS (textrange(base_path || '/', base_path || '0', '[)')) STORED;--> statement-breakpoint
ALTER TABLE distribution_paths ADD CONSTRAINT distribution_paths_no_overlap EXCLUDE USING gist (span WITH &&);--> statement-breakpoint

-- What a task owns is released when it settles: artifacts it was using, its slot locks.
CREATE OR REPLACE FUNCTION cairn_on_settled(p_tasks text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM task_artifacts WHERE task_id = ANY(p_tasks);
  DELETE FROM slot_locks WHERE owner_task = ANY(p_tasks);
END $$;
