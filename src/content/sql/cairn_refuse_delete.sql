-- cairn_refuse_delete: versions, revisions and publications are history: never deleted.
-- DESIGN.md §2 "Immutability is a property of the schema", §12 "The content store".

CREATE OR REPLACE FUNCTION cairn_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'CA001';
END $$;

CREATE OR REPLACE TRIGGER repository_versions_kept BEFORE DELETE ON repository_versions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();
CREATE OR REPLACE TRIGGER publications_kept BEFORE DELETE ON publications FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();
CREATE OR REPLACE TRIGGER repository_revisions_kept BEFORE DELETE ON repository_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();
CREATE OR REPLACE TRIGGER remote_revisions_kept BEFORE DELETE ON remote_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();
CREATE OR REPLACE TRIGGER distribution_revisions_kept BEFORE DELETE ON distribution_revisions FOR EACH ROW EXECUTE FUNCTION cairn_refuse_delete();
