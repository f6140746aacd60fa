-- cairn_distributions_changed: tells content apps that the live distributions changed, on the
-- content store's own channel `cairn_content` (payload {"changed": "distributions"}), from the
-- transaction that changed them. What a content app routes by is `distribution_paths` joined with
-- the revision each distribution's `names` row points at (src/content/app/routing-table.ts), so
-- any write of either notifies. PostgreSQL folds equal notifications of one transaction into one.
-- DESIGN.md §5 "Wake-ups", §12 "The content app and its cache".

CREATE OR REPLACE FUNCTION cairn_distributions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cairn_content', '{"changed": "distributions"}');
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER distribution_paths_changed AFTER INSERT OR UPDATE OR DELETE ON distribution_paths
  FOR EACH STATEMENT EXECUTE FUNCTION cairn_distributions_changed();

CREATE OR REPLACE TRIGGER names_distribution_changed AFTER INSERT OR UPDATE ON names FOR EACH ROW
  WHEN (NEW.kind = 'distribution') EXECUTE FUNCTION cairn_distributions_changed();

CREATE OR REPLACE TRIGGER names_distribution_deleted AFTER DELETE ON names FOR EACH ROW
  WHEN (OLD.kind = 'distribution') EXECUTE FUNCTION cairn_distributions_changed();
