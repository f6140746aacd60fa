CREATE TABLE "artifacts" (
	"id" text PRIMARY KEY NOT NULL,
	"sha256" text NOT NULL,
	"size" bigint NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "artifacts_sha256_unique" UNIQUE("sha256")
);
--> statement-breakpoint
CREATE TABLE "content_artifacts" (
	"content_id" text PRIMARY KEY NOT NULL,
	"artifact_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "content_sources" (
	"content_id" text NOT NULL,
	"remote_revision_id" text NOT NULL,
	"url" text NOT NULL,
	CONSTRAINT "content_sources_content_id_remote_revision_id_pk" PRIMARY KEY("content_id","remote_revision_id")
);
--> statement-breakpoint
CREATE TABLE "content_units" (
	"id" text PRIMARY KEY NOT NULL,
	"relative_path" text NOT NULL,
	"sha256" text NOT NULL,
	"size" bigint NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "distribution_paths" (
	"distribution_id" text PRIMARY KEY NOT NULL,
	"base_path" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "distribution_revisions" (
	"id" text PRIMARY KEY NOT NULL,
	"distribution_id" text NOT NULL,
	"name" text NOT NULL,
	"base_path" text NOT NULL,
	"publication_id" text,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "names" (
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"resource_id" text NOT NULL,
	"revision_id" text NOT NULL,
	CONSTRAINT "names_kind_name_pk" PRIMARY KEY("kind","name")
);
--> statement-breakpoint
CREATE TABLE "publications" (
	"id" text PRIMARY KEY NOT NULL,
	"version_id" text NOT NULL,
	"future_id" text,
	"manifest_artifact_id" text NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "publications_future_id_unique" UNIQUE("future_id")
);
--> statement-breakpoint
CREATE TABLE "remote_revisions" (
	"id" text PRIMARY KEY NOT NULL,
	"remote_id" text NOT NULL,
	"name" text NOT NULL,
	"url" text NOT NULL,
	"policy" text NOT NULL,
	"download_concurrency" integer NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "repository_content" (
	"repository_id" text NOT NULL,
	"content_id" text NOT NULL,
	"added_in" integer NOT NULL,
	"removed_in" integer,
	CONSTRAINT "repository_content_repository_id_content_id_added_in_pk" PRIMARY KEY("repository_id","content_id","added_in")
);
--> statement-breakpoint
CREATE TABLE "repository_revisions" (
	"id" text PRIMARY KEY NOT NULL,
	"repository_id" text NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "repository_versions" (
	"id" text PRIMARY KEY NOT NULL,
	"repository_id" text NOT NULL,
	"number" integer NOT NULL,
	"base_version_id" text,
	"future_id" text,
	"content_count" integer NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "repository_versions_future_id_unique" UNIQUE("future_id")
);
--> statement-breakpoint
CREATE TABLE "resources" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "slot_locks" (
	"name" text PRIMARY KEY NOT NULL,
	"owner_task" text NOT NULL,
	"owner_worker" text,
	"acquired_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "task_artifacts" (
	"task_id" text NOT NULL,
	"artifact_id" text NOT NULL,
	CONSTRAINT "task_artifacts_task_id_artifact_id_pk" PRIMARY KEY("task_id","artifact_id")
);
--> statement-breakpoint
CREATE TABLE "uploads" (
	"id" text PRIMARY KEY NOT NULL,
	"artifact_id" text NOT NULL,
	"expires_at" timestamp (6) with time zone NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "content_artifacts" ADD CONSTRAINT "content_artifacts_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_artifacts" ADD CONSTRAINT "content_artifacts_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_sources" ADD CONSTRAINT "content_sources_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_sources" ADD CONSTRAINT "content_sources_remote_revision_id_remote_revisions_id_fk" FOREIGN KEY ("remote_revision_id") REFERENCES "public"."remote_revisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "distribution_paths" ADD CONSTRAINT "distribution_paths_distribution_id_resources_id_fk" FOREIGN KEY ("distribution_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD CONSTRAINT "distribution_revisions_distribution_id_resources_id_fk" FOREIGN KEY ("distribution_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD CONSTRAINT "distribution_revisions_publication_id_publications_id_fk" FOREIGN KEY ("publication_id") REFERENCES "public"."publications"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "names" ADD CONSTRAINT "names_resource_id_resources_id_fk" FOREIGN KEY ("resource_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "publications" ADD CONSTRAINT "publications_version_id_repository_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."repository_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "publications" ADD CONSTRAINT "publications_future_id_futures_id_fk" FOREIGN KEY ("future_id") REFERENCES "public"."futures"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "publications" ADD CONSTRAINT "publications_manifest_artifact_id_artifacts_id_fk" FOREIGN KEY ("manifest_artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD CONSTRAINT "remote_revisions_remote_id_resources_id_fk" FOREIGN KEY ("remote_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_content" ADD CONSTRAINT "repository_content_repository_id_resources_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_content" ADD CONSTRAINT "repository_content_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_revisions" ADD CONSTRAINT "repository_revisions_repository_id_resources_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_versions" ADD CONSTRAINT "repository_versions_repository_id_resources_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."resources"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_versions" ADD CONSTRAINT "repository_versions_future_id_futures_id_fk" FOREIGN KEY ("future_id") REFERENCES "public"."futures"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "slot_locks" ADD CONSTRAINT "slot_locks_owner_task_tasks_id_fk" FOREIGN KEY ("owner_task") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "slot_locks" ADD CONSTRAINT "slot_locks_owner_worker_workers_id_fk" FOREIGN KEY ("owner_worker") REFERENCES "public"."workers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_artifacts" ADD CONSTRAINT "task_artifacts_task_id_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_artifacts" ADD CONSTRAINT "task_artifacts_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "uploads" ADD CONSTRAINT "uploads_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "content_artifacts_artifact" ON "content_artifacts" USING btree ("artifact_id");--> statement-breakpoint
CREATE UNIQUE INDEX "content_units_natural" ON "content_units" USING btree ("relative_path","sha256","size");--> statement-breakpoint
CREATE INDEX "content_units_sha256" ON "content_units" USING btree ("sha256");--> statement-breakpoint
CREATE INDEX "distribution_revisions_dist" ON "distribution_revisions" USING btree ("distribution_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "names_resource" ON "names" USING btree ("resource_id");--> statement-breakpoint
CREATE INDEX "publications_version" ON "publications" USING btree ("version_id");--> statement-breakpoint
CREATE INDEX "publications_manifest" ON "publications" USING btree ("manifest_artifact_id");--> statement-breakpoint
CREATE INDEX "remote_revisions_remote" ON "remote_revisions" USING btree ("remote_id","id");--> statement-breakpoint
CREATE INDEX "repository_content_content" ON "repository_content" USING btree ("content_id");--> statement-breakpoint
CREATE INDEX "repository_revisions_repo" ON "repository_revisions" USING btree ("repository_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "repository_versions_number" ON "repository_versions" USING btree ("repository_id","number");--> statement-breakpoint
CREATE INDEX "slot_locks_owner" ON "slot_locks" USING btree ("owner_task");--> statement-breakpoint
CREATE INDEX "slot_locks_worker" ON "slot_locks" USING btree ("owner_worker");--> statement-breakpoint
CREATE INDEX "task_artifacts_artifact" ON "task_artifacts" USING btree ("artifact_id");--> statement-breakpoint
CREATE INDEX "uploads_artifact" ON "uploads" USING btree ("artifact_id");