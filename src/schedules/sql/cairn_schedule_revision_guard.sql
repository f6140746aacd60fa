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
