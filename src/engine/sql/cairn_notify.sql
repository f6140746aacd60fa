-- cairn_notify: the only encoder of the engine's wake-ups (src/engine/notify.ts decodes them). It
-- takes what an engine function returned and returns it unchanged, so that a worker settles a task
-- and wakes everyone in one autocommit statement: SELECT cairn_notify(cairn_resolve(...)).
-- Nothing is sent when nothing changed (a settle that found its task gone returns NULL).
--   `cairn`          settled futures (`f`, "*" when more than 60): API long-polls;
--   `cairn_work`     ready work for any idle worker (`r`) and cancel requests (`c`): every worker;
--   `cairn_w_<id>`   ready work for the idle workers it names (`r`, `w`), one NOTIFY each: about
--                    as many idle workers as there is ready work, plus two, when more are idle
--                    than that. Idle means a `workers` row with a free slot as committed. If no
--                    worker is idle, it says nothing about ready work (a busy worker claims as
--                    soon as a slot frees; a worker claims when it registers). `exclude` (from the
--                    claim's baton) is never named.
-- DESIGN.md §5 "Wake-ups".

CREATE OR REPLACE FUNCTION cairn_notify(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ready integer := coalesce((p->>'ready')::integer, 0);
  v_futures jsonb := coalesce(p->'futures', '[]'::jsonb);
  v_cancel jsonb := coalesce(p->'cancel', '[]'::jsonb);
  v_wanted integer;
  v_idle text[];
  v_target text;
BEGIN
  IF p IS NULL THEN
    RETURN p;
  END IF;
  -- Clients of futures: API long-polls.
  IF jsonb_array_length(v_futures) > 0 THEN
    PERFORM pg_notify('cairn', jsonb_build_object(
      'f', CASE WHEN jsonb_array_length(v_futures) > 60 THEN '"*"'::jsonb ELSE v_futures END)::text);
  END IF;
  -- Workers: ready work for a few idle ones by name, or for all of them; cancel requests.
  IF v_ready > 0 THEN
    SELECT coalesce(array_agg(w.id ORDER BY random()), '{}') INTO v_idle
    FROM workers w
    WHERE w.slots > (SELECT count(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'running')
      AND w.id IS DISTINCT FROM p->>'exclude';
    -- At most 64 named (the baton wakes more when there is more).
    v_wanted := least(v_ready, 62) + 2;
    IF cardinality(v_idle) = 0 THEN
      v_ready := 0;
    ELSIF cardinality(v_idle) > v_wanted THEN
      FOREACH v_target IN ARRAY v_idle[1:v_wanted] LOOP
        PERFORM pg_notify('cairn_w_' || lower(v_target), jsonb_build_object('r', v_ready, 'w', jsonb_build_array(v_target))::text);
      END LOOP;
      v_ready := 0;
    END IF;
  END IF;
  IF v_ready > 0 OR jsonb_array_length(v_cancel) > 0 THEN
    PERFORM pg_notify('cairn_work', jsonb_build_object(
      'r', v_ready,
      'c', CASE WHEN jsonb_array_length(v_cancel) > 60 THEN '"*"'::jsonb ELSE v_cancel END)::text);
  END IF;
  RETURN p;
END $$;
