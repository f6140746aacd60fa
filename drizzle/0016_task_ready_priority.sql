-- Priorities and retry backoff (DESIGN.md §4 "Claim", "Retries"). The claim takes ready tasks of
-- highest priority first, then in seq order, from a partial index that holds only claimable rows:
-- ready ones that are not waiting for a retry. Retries waiting for their time are found through
-- their own index by time (cairn_promote_retries), so neither the claim nor anything else scans
-- for them.
DROP INDEX tasks_ready;--> statement-breakpoint
CREATE INDEX tasks_ready ON tasks (priority DESC, seq) WHERE state = 'ready' AND run_after IS NULL;--> statement-breakpoint
CREATE INDEX tasks_retry_at ON tasks (run_after) WHERE state = 'ready' AND run_after IS NOT NULL;--> statement-breakpoint
ALTER TABLE tasks ADD CONSTRAINT tasks_retry_backoff_check CHECK (retry_backoff_ms >= 0);--> statement-breakpoint
ALTER TABLE tasks ADD CONSTRAINT tasks_run_after_ready CHECK (run_after IS NULL OR state = 'ready');
