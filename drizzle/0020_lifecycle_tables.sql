CREATE TABLE "submit_hooks" (
	"name" text PRIMARY KEY NOT NULL,
	"fn" "regprocedure" NOT NULL
);
--> statement-breakpoint
CREATE TABLE "repository_heads" (
	"repository_id" text PRIMARY KEY NOT NULL,
	"version_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "task_holds" (
	"task_id" text NOT NULL,
	"repository_id" text,
	"version_id" text,
	"publication_id" text,
	"content_id" text,
	"artifact_id" text,
	"remote_revision_id" text
);
--> statement-breakpoint
CREATE TABLE "version_keeps" (
	"version_id" text PRIMARY KEY NOT NULL,
	"repository_id" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "distribution_revisions" DROP CONSTRAINT "distribution_revisions_publication_id_publications_id_fk";
--> statement-breakpoint
ALTER TABLE "distribution_paths" ADD COLUMN "publication_id" text;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD COLUMN "publication_future_id" text;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD COLUMN "future_id" text;--> statement-breakpoint
ALTER TABLE "repository_revisions" ADD COLUMN "retain_versions" integer;--> statement-breakpoint
ALTER TABLE "repository_heads" ADD CONSTRAINT "repository_heads_repository_id_resources_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_heads" ADD CONSTRAINT "repository_heads_version_id_repository_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."repository_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_repository_id_repository_heads_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repository_heads"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_version_id_repository_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."repository_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_publication_id_publications_id_fk" FOREIGN KEY ("publication_id") REFERENCES "public"."publications"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_remote_revision_id_remote_revisions_id_fk" FOREIGN KEY ("remote_revision_id") REFERENCES "public"."remote_revisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_keeps" ADD CONSTRAINT "version_keeps_version_id_repository_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."repository_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_keeps" ADD CONSTRAINT "version_keeps_repository_id_resources_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "repository_heads_version" ON "repository_heads" USING btree ("version_id");--> statement-breakpoint
CREATE INDEX "task_holds_task" ON "task_holds" USING btree ("task_id");--> statement-breakpoint
CREATE INDEX "task_holds_repository" ON "task_holds" USING btree ("repository_id") WHERE repository_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_holds_version" ON "task_holds" USING btree ("version_id") WHERE version_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_holds_publication" ON "task_holds" USING btree ("publication_id") WHERE publication_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_holds_content" ON "task_holds" USING btree ("content_id") WHERE content_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_holds_artifact" ON "task_holds" USING btree ("artifact_id") WHERE artifact_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_holds_remote_revision" ON "task_holds" USING btree ("remote_revision_id") WHERE remote_revision_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "version_keeps_repository" ON "version_keeps" USING btree ("repository_id");--> statement-breakpoint
ALTER TABLE "distribution_paths" ADD CONSTRAINT "distribution_paths_publication_id_publications_id_fk" FOREIGN KEY ("publication_id") REFERENCES "public"."publications"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD CONSTRAINT "distribution_revisions_future_id_futures_id_fk" FOREIGN KEY ("future_id") REFERENCES "public"."futures"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "content_sources_remote_revision" ON "content_sources" USING btree ("remote_revision_id");--> statement-breakpoint
CREATE INDEX "distribution_paths_publication" ON "distribution_paths" USING btree ("publication_id");--> statement-breakpoint
CREATE UNIQUE INDEX "names_revision" ON "names" USING btree ("revision_id");--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD CONSTRAINT "distribution_revisions_future_id_unique" UNIQUE("future_id");