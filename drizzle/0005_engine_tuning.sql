-- Engine tuning (issue #4). Settling a task used to take four round trips (BEGIN, the settle
-- function, pg_notify, COMMIT); with the wake-up sent from SQL it is one autocommit statement:
--   SELECT cairn_notify(cairn_resolve(...))
-- cairn_notify is also the only encoder of the `cairn` channel's payload (src/engine/notify.ts
-- decodes it): { r: tasks made ready, f: settled future ids or "*" when more than 60,
-- c: task ids whose cancel was requested or "*", d: 1 when distributions changed }.
-- It returns its argument, so a caller reads the changes and wakes everyone in the same statement.
-- Nothing is sent when nothing changed (a settle that found its task gone returns NULL).
CREATE FUNCTION cairn_notify(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_ready integer := coalesce((p->>'ready')::integer, 0);
  v_futures jsonb := coalesce(p->'futures', '[]'::jsonb);
  v_cancel jsonb := coalesce(p->'cancel', '[]'::jsonb);
  v_dist boolean := coalesce((p->>'distributions')::boolean, false);
  v_payload jsonb;
BEGIN
  IF p IS NULL OR (v_ready = 0 AND jsonb_array_length(v_futures) = 0 AND jsonb_array_length(v_cancel) = 0 AND NOT v_dist) THEN
    RETURN p;
  END IF;
  v_payload := jsonb_build_object(
    'r', v_ready,
    'f', CASE WHEN jsonb_array_length(v_futures) > 60 THEN '"*"'::jsonb ELSE v_futures END,
    'c', CASE WHEN jsonb_array_length(v_cancel) > 60 THEN '"*"'::jsonb ELSE v_cancel END);
  IF v_dist THEN v_payload := v_payload || '{"d": 1}'::jsonb; END IF;
  PERFORM pg_notify('cairn', v_payload::text);
  RETURN p;
END $$;
