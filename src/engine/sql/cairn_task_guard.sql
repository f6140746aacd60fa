-- cairn_task_guard: a settled task never changes, no task's identity or params ever change, and
-- an unsettled task is never deleted (a settled one may be, with its graph, by history.purge:
-- DESIGN.md §19). As for futures, the triggers' WHEN clauses call the guard only when a rule could
-- be broken. DESIGN.md §2 "Immutability is a property of the schema".

CREATE OR REPLACE FUNCTION cairn_task_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.state NOT IN ('succeeded', 'failed', 'canceled') THEN
      RAISE EXCEPTION 'task % is %: only a settled task may be deleted', OLD.id, OLD.state USING ERRCODE = 'CA001';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.state IN ('succeeded', 'failed', 'canceled') THEN
    RAISE EXCEPTION 'task % is already %: a settled task is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.graph_id <> OLD.graph_id OR NEW.node <> OLD.node OR NEW.kind <> OLD.kind
     OR NEW.seq <> OLD.seq OR NEW.params <> OLD.params THEN
    RAISE EXCEPTION 'task %: its identity and params are immutable', OLD.id USING ERRCODE = 'CA001';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tasks_immutable BEFORE UPDATE ON tasks FOR EACH ROW
  WHEN (OLD.state IN ('succeeded', 'failed', 'canceled')
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.graph_id IS DISTINCT FROM OLD.graph_id
        OR NEW.node IS DISTINCT FROM OLD.node OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.seq IS DISTINCT FROM OLD.seq OR NEW.params IS DISTINCT FROM OLD.params)
  EXECUTE FUNCTION cairn_task_guard();

CREATE OR REPLACE TRIGGER tasks_kept BEFORE DELETE ON tasks FOR EACH ROW
  WHEN (OLD.state NOT IN ('succeeded', 'failed', 'canceled'))
  EXECUTE FUNCTION cairn_task_guard();
