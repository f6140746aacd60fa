-- cairn_enqueue: a submission has inserted p_tasks (state blocked, pending_inputs counted,
-- blocked_keys = number of keys) and their task_keys rows (free = false), holding the keys' locks.
-- Mark every key row that has no earlier unsettled conflicting row as free, and make tasks with
-- nothing left ready. DESIGN.md §4 "FCFS queues" (Enqueue).

CREATE OR REPLACE FUNCTION cairn_enqueue(p_tasks text[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  WITH f AS (
    UPDATE task_keys tk SET free = true
    WHERE tk.task_id = ANY(p_tasks) AND NOT tk.free
      AND NOT EXISTS (SELECT 1 FROM task_keys o WHERE o.key = tk.key AND o.seq < tk.seq AND o.exclusive)
      AND NOT (tk.exclusive AND EXISTS (SELECT 1 FROM task_keys o WHERE o.key = tk.key AND o.seq < tk.seq))
    RETURNING tk.task_id
  ), c AS (SELECT task_id, count(*)::int AS n FROM f GROUP BY task_id)
  UPDATE tasks t SET blocked_keys = t.blocked_keys - c.n FROM c WHERE t.id = c.task_id;
  RETURN cairn_make_ready(p_tasks);
END $$;
