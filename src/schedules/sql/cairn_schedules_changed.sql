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
