-- cairn_lock_keys: per-key serialization. Submission and settlement of tasks that share a resource
-- key take the key's transaction-scoped advisory lock (class 1 of src/db/locks.ts, in hash order,
-- so two transactions never wait on each other in a cycle). That makes seq order equal commit
-- order per key, and makes "release a key" and "enqueue behind a key" see each other. Unrelated
-- keys never wait on each other. DESIGN.md §4 "FCFS queues".

CREATE OR REPLACE FUNCTION cairn_lock_keys(p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1, h)
  FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(p_keys) AS k ORDER BY 1) AS s;
END $$;
