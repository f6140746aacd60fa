CREATE TABLE "remote_rate_buckets" (
	"remote_id" text PRIMARY KEY NOT NULL,
	"next_at" timestamp (6) with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "proxy_url" text;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "ca_cert" text;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "client_cert" text;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "username" text;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "header_names" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "connect_timeout_ms" integer;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "total_timeout_ms" integer;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "max_retries" integer;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "rate_limit" double precision;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "secret_fields" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "remote_revisions" ADD COLUMN "secrets" text;