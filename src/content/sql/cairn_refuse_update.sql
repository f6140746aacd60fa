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
CREATE OR REPLACE TRIGGER publication_files_immutable BEFORE UPDATE ON publication_files FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER version_keeps_immutable BEFORE UPDATE ON version_keeps FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER task_holds_immutable BEFORE UPDATE ON task_holds FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
CREATE OR REPLACE TRIGGER uploads_immutable BEFORE UPDATE ON uploads FOR EACH ROW EXECUTE FUNCTION cairn_refuse_update();
