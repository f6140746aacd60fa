ALTER TABLE "graphs" ADD COLUMN "parent_task" text;--> statement-breakpoint
ALTER TABLE "graphs" ADD COLUMN "parent_attempt" integer;--> statement-breakpoint
CREATE INDEX "graphs_parent_task" ON "graphs" USING btree ("parent_task") WHERE parent_task IS NOT NULL;