-- The lifecycle (DESIGN.md §19): payload rows may now be deleted once nothing holds them, and the
-- holds say what is held. This migration holds the rules drizzle-kit does not express, and gives
-- the rows that exist already the holds they have had all along:
--   * checks: one target per task hold; retain_versions >= 1;
--   * versions, publications and revisions are no longer refused deletion outright: the triggers
--     and the function that did it go; their guards now are foreign keys from the holds and the
--     trigger functions of src/content/sql/ (cairn_revision_guard, cairn_publication_guard,
--     cairn_head_guard, cairn_membership_guard), installed by the next migration;
--   * every version of a repository whose name exists is kept (there was no retention before);
--     every repository has its head (its latest version); every live distribution's path row
--     names the publication it serves; every distribution revision records its publication's
--     future (written with the immutability trigger disabled for this one statement: the column is
--     new, and it records what the row already said through its publication).
ALTER TABLE task_holds ADD CONSTRAINT task_holds_one_target
  CHECK (num_nonnulls(repository_id, version_id, publication_id, content_id, artifact_id, remote_revision_id) = 1);--> statement-breakpoint
ALTER TABLE repository_revisions ADD CONSTRAINT repository_revisions_retain_versions
  CHECK (retain_versions IS NULL OR retain_versions >= 1);--> statement-breakpoint
DROP TRIGGER repository_versions_kept ON repository_versions;--> statement-breakpoint
DROP TRIGGER publications_kept ON publications;--> statement-breakpoint
DROP TRIGGER repository_revisions_kept ON repository_revisions;--> statement-breakpoint
DROP TRIGGER remote_revisions_kept ON remote_revisions;--> statement-breakpoint
DROP TRIGGER distribution_revisions_kept ON distribution_revisions;--> statement-breakpoint
DROP FUNCTION cairn_refuse_delete();--> statement-breakpoint
INSERT INTO version_keeps (version_id, repository_id)
  SELECT v.id, v.repository_id FROM repository_versions v
  WHERE EXISTS (SELECT 1 FROM names n WHERE n.kind = 'repository' AND n.resource_id = v.repository_id);--> statement-breakpoint
INSERT INTO repository_heads (repository_id, version_id)
  SELECT DISTINCT ON (repository_id) repository_id, id FROM repository_versions ORDER BY repository_id, number DESC;--> statement-breakpoint
UPDATE distribution_paths dp SET publication_id = r.publication_id
  FROM names n JOIN distribution_revisions r ON r.id = n.revision_id
  WHERE n.kind = 'distribution' AND n.resource_id = dp.distribution_id;--> statement-breakpoint
ALTER TABLE distribution_revisions DISABLE TRIGGER distribution_revisions_immutable;--> statement-breakpoint
UPDATE distribution_revisions d SET publication_future_id = p.future_id FROM publications p WHERE p.id = d.publication_id;--> statement-breakpoint
ALTER TABLE distribution_revisions ENABLE TRIGGER distribution_revisions_immutable;
