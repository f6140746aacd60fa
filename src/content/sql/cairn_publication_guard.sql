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
