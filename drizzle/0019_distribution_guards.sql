ALTER TABLE "distribution_revisions" ADD COLUMN "guard" jsonb;--> statement-breakpoint
ALTER TABLE "distribution_revisions" ADD CONSTRAINT "distribution_revisions_guard_shape" CHECK ("distribution_revisions"."guard" IS NULL
          OR ("distribution_revisions"."guard"->>'type' = 'token' AND jsonb_typeof("distribution_revisions"."guard"->'sha256') = 'array' AND "distribution_revisions"."guard"->'sha256' <> '[]'::jsonb)
          OR ("distribution_revisions"."guard"->>'type' = 'signed' AND "distribution_revisions"."guard"->>'key' ~ '^[0-9a-f]{64}$'));