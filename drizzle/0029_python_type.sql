-- The python content type (src/plugins/python/): its row in the registry of types, and what the
-- content store's submit hook holds for python.sync (as for file.sync: the repository's head and
-- the remote revision the sync reads).
INSERT INTO "content_types" ("type") VALUES ('python');
--> statement-breakpoint
INSERT INTO "content_held_params" ("kind", "param", "holds") VALUES
  ('python.sync', 'repository', 'repository'),
  ('python.sync', 'remote', 'remote_revision');
