-- cairn_lock_task_keys: lock ordering, the rule that keeps settlements from deadlocking each other.
-- A transaction takes the key locks of every task it will settle -- and, when the settlement can
-- fail or cancel, of every blocked task downstream that it will cascade into -- before it locks or
-- updates any task or future row. A key's holder updates the rows of tasks queued on that key
-- (releasing the queue), so rows first and keys second would wait in a cycle.
-- A generic plan (index probes for the arrays; §15 "Generic plans"). DESIGN.md §4 "FCFS queues"
-- (Lock order: keys before rows).

CREATE OR REPLACE FUNCTION cairn_lock_task_keys(p_tasks text[], p_downstream boolean) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_keys text[];
BEGIN
  IF p_downstream THEN
    PERFORM cairn_lock_keys(array(
      WITH RECURSIVE cone(task_id) AS (
        SELECT unnest(p_tasks)
        UNION
        SELECT ti.task_id
        FROM cone c
        JOIN futures f ON f.producer_task = c.task_id AND f.state = 'pending'
        JOIN task_inputs ti ON ti.future_id = f.id
        JOIN tasks t ON t.id = ti.task_id AND t.state = 'blocked'
      )
      SELECT tk.key FROM cone JOIN task_keys tk ON tk.task_id = cone.task_id));
  ELSE
    -- Most tasks have no keys: then one index probe and no lock call.
    SELECT array_agg(key) INTO v_keys FROM task_keys WHERE task_id = ANY(p_tasks);
    IF v_keys IS NOT NULL THEN
      PERFORM cairn_lock_keys(v_keys);
    END IF;
  END IF;
END $$;
