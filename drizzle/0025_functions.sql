-- Written by `npm run db:functions`: the current definitions of
--   src/schedules/sql/cairn_schedule_revision_guard.sql
--   src/schedules/sql/cairn_schedules_changed.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_schedule_revision_guard: a schedule's revisions are history: never changed, never
-- deleted. A tick submits the graph of the revision that was current at the tick, possibly after a
-- later edit (src/schedules/due.ts), so an old revision must still say what it said.
-- DESIGN.md §2 "Immutability is a property of the schema", "Schedules".

CREATE OR REPLACE FUNCTION cairn_schedule_revision_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'schedule_revisions rows are never %', CASE TG_OP WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END
    USING ERRCODE = 'CA001';
END $$;

CREATE OR REPLACE TRIGGER schedule_revisions_immutable BEFORE UPDATE OR DELETE ON schedule_revisions
  FOR EACH ROW EXECUTE FUNCTION cairn_schedule_revision_guard();
--> statement-breakpoint
-- cairn_schedules_changed: tells schedulers that the schedules changed, on their own channel
-- `cairn_schedules` (payload {"changed": "schedules"}), from the transaction that changed them. A
-- scheduler sleeps until the earliest next tick of the schedules it knows; a schedule created,
-- edited, disabled or deleted can move that tick, so every write of a schedule's `names` row wakes
-- it to compute it again (src/schedules/scheduler.ts). Claiming a tick sends nothing: the other
-- schedulers are awake at that tick anyway. DESIGN.md §5 "Wake-ups", "Schedules".

CREATE OR REPLACE FUNCTION cairn_schedules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cairn_schedules', '{"changed": "schedules"}');
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER names_schedule_changed AFTER INSERT OR UPDATE ON names FOR EACH ROW
  WHEN (NEW.kind = 'schedule') EXECUTE FUNCTION cairn_schedules_changed();

CREATE OR REPLACE TRIGGER names_schedule_deleted AFTER DELETE ON names FOR EACH ROW
  WHEN (OLD.kind = 'schedule') EXECUTE FUNCTION cairn_schedules_changed();
