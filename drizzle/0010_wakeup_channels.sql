-- Wake-up channels (issue #4, bench:tasking; DESIGN.md §5). One channel woke every listening
-- process for everything: 32 worker processes were each woken twice per task (its submission and
-- its settlement) only to ignore most of it. cairn_notify now sends:
--   `cairn`          settled futures (`f`) and distribution changes (`d`): API long-polls, content apps;
--   `cairn_work`     ready work for any idle worker (`r`) and cancel requests (`c`): every worker;
--   `cairn_w_<id>`   ready work for the idle workers it names (`r`, `w`), one NOTIFY each.
-- A transaction still queues its notifications once; the listeners of a channel are its only
-- clients that hear of it. Sessions LISTEN on what their users need (src/engine/session.ts).
CREATE OR REPLACE FUNCTION cairn_notify(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ready integer := coalesce((p->>'ready')::integer, 0);
  v_futures jsonb := coalesce(p->'futures', '[]'::jsonb);
  v_cancel jsonb := coalesce(p->'cancel', '[]'::jsonb);
  v_dist boolean := coalesce((p->>'distributions')::boolean, false);
  v_wanted integer;
  v_idle text[];
  v_target text;
  v_payload jsonb;
BEGIN
  IF p IS NULL THEN
    RETURN p;
  END IF;
  -- Clients of futures and distributions: API long-polls, content apps.
  IF jsonb_array_length(v_futures) > 0 OR v_dist THEN
    v_payload := jsonb_build_object('f', CASE WHEN jsonb_array_length(v_futures) > 60 THEN '"*"'::jsonb ELSE v_futures END);
    IF v_dist THEN v_payload := v_payload || '{"d": 1}'::jsonb; END IF;
    PERFORM pg_notify('cairn', v_payload::text);
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
