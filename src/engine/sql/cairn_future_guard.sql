-- cairn_future_guard: a future changes once, from pending to settled, only in its settlement
-- columns (settled_at is filled in when missing), and a pending future is never deleted (a settled
-- one may be, by history.purge, once nothing holds it: DESIGN.md §19). The triggers' WHEN clauses
-- are true exactly when a rule could be broken or settled_at needs filling in, so the executor
-- calls the PL/pgSQL guard only then: settling 10,000 futures, or purging them, makes no guard call.
-- DESIGN.md §2 "Immutability is a property of the schema".

CREATE OR REPLACE FUNCTION cairn_future_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.state = 'pending' THEN
      RAISE EXCEPTION 'future % is pending: only a settled future may be deleted', OLD.id USING ERRCODE = 'CA001';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.state <> 'pending' THEN
    RAISE EXCEPTION 'future % is already %: a settled future is immutable', OLD.id, OLD.state USING ERRCODE = 'CA001';
  END IF;
  IF NEW.state = 'pending' THEN
    RAISE EXCEPTION 'future % is pending: it may change only by settling', OLD.id USING ERRCODE = 'CA001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.producer_task <> OLD.producer_task
     OR NEW.output <> OLD.output OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'future %: only its settlement may be written', OLD.id USING ERRCODE = 'CA001';
  END IF;
  NEW.settled_at := coalesce(NEW.settled_at, now());
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER futures_immutable BEFORE UPDATE ON futures FOR EACH ROW
  WHEN (OLD.state <> 'pending' OR NEW.state = 'pending' OR NEW.settled_at IS NULL
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.producer_task IS DISTINCT FROM OLD.producer_task OR NEW.output IS DISTINCT FROM OLD.output
        OR NEW.created_at IS DISTINCT FROM OLD.created_at)
  EXECUTE FUNCTION cairn_future_guard();

CREATE OR REPLACE TRIGGER futures_kept BEFORE DELETE ON futures FOR EACH ROW
  WHEN (OLD.state = 'pending')
  EXECUTE FUNCTION cairn_future_guard();
