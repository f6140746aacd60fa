ALTER TABLE "content_artifacts" DROP CONSTRAINT "content_artifacts_content_id_content_units_id_fk";
--> statement-breakpoint
ALTER TABLE "content_artifacts" DROP CONSTRAINT "content_artifacts_artifact_id_artifacts_id_fk";
--> statement-breakpoint
ALTER TABLE "content_sources" DROP CONSTRAINT "content_sources_content_id_content_units_id_fk";
--> statement-breakpoint
ALTER TABLE "publication_files" DROP CONSTRAINT "publication_files_artifact_id_artifacts_id_fk";
--> statement-breakpoint
ALTER TABLE "repository_content" DROP CONSTRAINT "repository_content_content_id_content_units_id_fk";
--> statement-breakpoint
ALTER TABLE "task_artifacts" DROP CONSTRAINT "task_artifacts_artifact_id_artifacts_id_fk";
--> statement-breakpoint
ALTER TABLE "task_holds" DROP CONSTRAINT "task_holds_content_id_content_units_id_fk";
--> statement-breakpoint
ALTER TABLE "task_holds" DROP CONSTRAINT "task_holds_artifact_id_artifacts_id_fk";
--> statement-breakpoint
ALTER TABLE "uploads" DROP CONSTRAINT "uploads_artifact_id_artifacts_id_fk";
--> statement-breakpoint
ALTER TABLE "content_artifacts" ADD CONSTRAINT "content_artifacts_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_artifacts" ADD CONSTRAINT "content_artifacts_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_sources" ADD CONSTRAINT "content_sources_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "publication_files" ADD CONSTRAINT "publication_files_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "repository_content" ADD CONSTRAINT "repository_content_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_artifacts" ADD CONSTRAINT "task_artifacts_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_holds" ADD CONSTRAINT "task_holds_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "uploads" ADD CONSTRAINT "uploads_artifact_id_artifacts_id_fk" FOREIGN KEY ("artifact_id") REFERENCES "public"."artifacts"("id") ON DELETE restrict ON UPDATE no action;