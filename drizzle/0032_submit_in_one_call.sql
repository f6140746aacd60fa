-- Written by `npm run db:functions`: the current definitions of
--   src/engine/sql/cairn_submit.sql
-- Read and change them there; this migration is history (drizzle/README.md).
-- cairn_submit: writes a validated, planned graph (src/engine/submit/) in one call, so that a
-- submission is one autocommit statement (one round trip) or one statement of a transaction the
-- caller owns (a schedule's tick, src/schedules/ticks.ts). The rows come as jsonb arrays, tasks in
-- FCFS order: p_tasks {id, node, kind, params, exclusive, shared, max_attempts, priority,
-- retry_backoff_ms}, p_futures {id, kind, producer, output}, p_inputs {task, future} (one per
-- distinct input of a task), p_keys {task, key, exclusive}.
--
--   1. lock every resource key the graph uses (cairn_lock_keys: keys before any row lock, the
--      engine's lock order);
--   2. lock the graph's external inputs (futures of earlier graphs) FOR SHARE and read their
--      states: a settle of one of them either committed before, and we see it settled, or waits
--      for us, and then sees our consumers. One that is gone (history.purge deleted it after
--      validation saw it) refuses the submission like a submit hook does: SQLSTATE CA002 with a
--      DETAIL { task id: [sentence, ...] }, which the engine answers with a 400 naming the nodes;
--   3. insert graph, tasks (`blocked`, seq drawn in FCFS order; since PostgreSQL 9.6 volatile
--      target-list functions are evaluated after ORDER BY), futures, input edges and key rows in
--      one statement (foreign keys between them are checked at its end). A task's pending_inputs
--      counts every input except a resolved external one: the graph's own futures and pending
--      external ones are released when they settle; failed or canceled ones never are, because
--      their consumers are settled at once:
--   4. the cascade from failed or canceled external inputs (cairn_settle_cascade);
--   5. the submit hooks (cairn_on_submitted: other modules hold what the tasks will use, or refuse
--      with CA002), enqueue behind the keys (cairn_enqueue), the transaction's one NOTIFY, and
--      ANALYZE of the engine's tables if the graph is large next to what the planner knows of
--      (cairn_refresh_statistics).
-- Nothing is written if any step raises. DESIGN.md §4 "FCFS queues", §15 "Submission's round trips".

CREATE OR REPLACE FUNCTION cairn_submit(p_graph text, p_label text, p_tasks jsonb, p_futures jsonb, p_inputs jsonb, p_keys jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_tasks text[] := ARRAY(SELECT t->>'id' FROM jsonb_array_elements(p_tasks) AS t);
  v_external text[];
  v_locked text[] := '{}';
  v_resolved text[] := '{}';
  v_failed text[] := '{}';
  v_gone jsonb;
  v_changes jsonb := '{}';
BEGIN
  IF jsonb_array_length(p_keys) > 0 THEN
    PERFORM cairn_lock_keys(ARRAY(SELECT k->>'key' FROM jsonb_array_elements(p_keys) AS k));
  END IF;

  v_external := ARRAY(SELECT i->>'future' FROM jsonb_array_elements(p_inputs) AS i
                      EXCEPT SELECT f->>'id' FROM jsonb_array_elements(p_futures) AS f);
  IF cardinality(v_external) > 0 THEN
    SELECT coalesce(array_agg(id), '{}'),
           coalesce(array_agg(id) FILTER (WHERE state = 'resolved'), '{}'),
           coalesce(array_agg(id) FILTER (WHERE state IN ('failed', 'canceled')), '{}')
      INTO v_locked, v_resolved, v_failed
    FROM (SELECT id, state FROM futures WHERE id = ANY(v_external) ORDER BY id FOR SHARE) AS f;
    IF cardinality(v_locked) < cardinality(v_external) THEN
      SELECT jsonb_object_agg(s.task, s.sentences) INTO v_gone
      FROM (SELECT i.task, jsonb_agg(format('input %s no longer exists (its graph was purged)', i.future) ORDER BY i.ord) AS sentences
            FROM ROWS FROM (jsonb_to_recordset(p_inputs) AS (task text, future text)) WITH ORDINALITY AS i(task, future, ord)
            WHERE i.future IN (SELECT unnest(v_external) EXCEPT SELECT unnest(v_locked))
            GROUP BY i.task) AS s;
      RAISE EXCEPTION 'the submission references futures that no longer exist' USING ERRCODE = 'CA002', DETAIL = v_gone::text;
    END IF;
  END IF;

  WITH g AS (
    INSERT INTO graphs (id, label) VALUES (p_graph, p_label)
  ), pending AS (
    SELECT i.task, count(*)::int AS n
    FROM jsonb_to_recordset(p_inputs) AS i(task text, future text)
    WHERE i.future NOT IN (SELECT unnest(v_resolved))
    GROUP BY i.task
  ), t AS (
    INSERT INTO tasks (id, graph_id, node, kind, seq, params, state, pending_inputs, blocked_keys, exclusive, shared,
                       max_attempts, priority, retry_backoff_ms)
    SELECT t.id, p_graph, t.node, t.kind, nextval('tasks_seq_seq'), t.params, 'blocked', coalesce(pending.n, 0),
           cardinality(t.exclusive) + cardinality(t.shared), t.exclusive, t.shared, t.max_attempts, t.priority, t.retry_backoff_ms
    FROM ROWS FROM (jsonb_to_recordset(p_tasks)
           AS (id text, node text, kind text, params jsonb, exclusive text[], shared text[], max_attempts int,
               priority int, retry_backoff_ms int))
         WITH ORDINALITY AS t(id, node, kind, params, exclusive, shared, max_attempts, priority, retry_backoff_ms, ord)
    LEFT JOIN pending ON pending.task = t.id
    ORDER BY t.ord
    RETURNING id, seq
  ), f AS (
    INSERT INTO futures (id, kind, state, producer_task, output)
    SELECT f.id, f.kind, 'pending', f.producer, f.output
    FROM jsonb_to_recordset(p_futures) AS f(id text, kind text, producer text, output text)
  ), i AS (
    INSERT INTO task_inputs (task_id, future_id)
    SELECT i.task, i.future FROM jsonb_to_recordset(p_inputs) AS i(task text, future text)
  )
  INSERT INTO task_keys (task_id, key, exclusive, seq)
  SELECT k.task, k.key, k.exclusive, t.seq
  FROM jsonb_to_recordset(p_keys) AS k(task text, key text, exclusive boolean)
  JOIN t ON t.id = k.task;

  IF cardinality(v_failed) > 0 THEN
    v_changes := cairn_settle_cascade('{}'::text[], v_failed);
  END IF;
  PERFORM cairn_on_submitted(v_tasks);
  PERFORM cairn_notify(jsonb_set(v_changes, '{ready}', to_jsonb(coalesce((v_changes->>'ready')::int, 0) + cairn_enqueue(v_tasks))));
  PERFORM cairn_refresh_statistics(cardinality(v_tasks));
END $$;
