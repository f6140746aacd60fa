-- Content-type plugins (src/content/plugin.ts): the registry of types, with the file type's row;
-- a type on units, repositories and remotes (existing ones are files); a unit's repository key
-- (null: its relative path, as for every file); the plugin fields of a remote; the generated files
-- of a publication (an existing publication's manifest becomes its PULP_MANIFEST row); the params
-- the submit hook holds, per kind (the rows below are what the hook had hard-coded).
CREATE TABLE "content_held_params" (
	"kind" text NOT NULL,
	"param" text NOT NULL,
	"holds" text NOT NULL,
	CONSTRAINT "content_held_params_kind_param_pk" PRIMARY KEY("kind","param")
);
--> statement-breakpoint
CREATE TABLE "content_types" (
	"type" text PRIMARY KEY NOT NULL
);
--> statement-breakpoint
INSERT INTO "content_types" ("type") VALUES ('file');
--> statement-breakpoint
INSERT INTO "content_held_params" ("kind", "param", "holds") VALUES
  ('file.sync', 'repository', 'repository'),
  ('file.sync', 'remote', 'remote_revision'),
  ('repository.modify', 'repository', 'repository'),
  ('repository.prune', 'repository', 'repository');
--> statement-breakpoint
CREATE TABLE "publication_files" (
	"publication_id" text NOT NULL,
	"relative_path" text NOT NULL,
	"media_type" text NOT NULL,
	"position" integer NOT NULL,
	"artifact_id" text NOT NULL,
	CONSTRAINT "publication_files_publication_id_relative_path_media_type_pk" PRIMARY KEY("publication_id","relative_path","media_type")
);
--> statement-breakpoint
ALTER TABLE "publications" DROP CONSTRAINT "publications_manifest_artifact_id_artifacts_id_fk";
--> statement-breakpoint
DROP INDEX "publications_manifest";--> statement-breakpoint
DROP INDEX "content_units_natural";--> statement-breakpoint
ALTER TABLE "content_units" ADD COLUMN "type" text DEFAULT 'file' NOT NULL;--> statement-breakpoint
ALTER TABLE "content_units" ADD COLUMN "repo_key" text;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "type" text DEFAULT 'file' NOT NULL;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "type_fields" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "repository_revisions" ADD COLUMN "type" text DEFAULT 'file' NOT NULL;--> statement-breakpoint
ALTER TABLE "publication_files" ADD CONSTRAINT "publication_files_publication_id_publications_id_fk" FOREIGN KEY ("publication_id") REFERENCES "public"."publications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "publication_files" ADD CONSTRAINT "publication_files_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "publication_files_artifact" ON "publication_files" USING btree ("artifact_id");--> statement-breakpoint
ALTER TABLE "content_units" ADD CONSTRAINT "content_units_type_content_types_type_fk" FOREIGN KEY ("type") REFERENCES "public"."content_types"("type") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD CONSTRAINT "remote_revisions_type_content_types_type_fk" FOREIGN KEY ("type") REFERENCES "public"."content_types"("type") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_revisions" ADD CONSTRAINT "repository_revisions_type_content_types_type_fk" FOREIGN KEY ("type") REFERENCES "public"."content_types"("type") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "content_units_natural" ON "content_units" USING btree ("type","relative_path","sha256","size");--> statement-breakpoint
INSERT INTO "publication_files" ("publication_id", "relative_path", "media_type", "position", "artifact_id")
  SELECT "id", 'PULP_MANIFEST', 'text/plain; charset=utf-8', 0, "manifest_artifact_id" FROM "publications";
--> statement-breakpoint
ALTER TABLE "publications" DROP COLUMN "manifest_artifact_id";