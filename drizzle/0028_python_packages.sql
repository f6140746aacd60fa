CREATE TABLE "python_packages" (
	"content_id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"project" text NOT NULL,
	"version" text NOT NULL,
	"filename" text NOT NULL,
	"packagetype" text NOT NULL,
	"requires_python" text
);
--> statement-breakpoint
ALTER TABLE "python_packages" ADD CONSTRAINT "python_packages_content_id_content_units_id_fk" FOREIGN KEY ("content_id") REFERENCES "public"."content_units"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "python_packages_project" ON "python_packages" USING btree ("project");