-- cairn_retry_delay: how long a task waits before its retry number p_retry (1: the first retry),
-- given its retry_backoff_ms: the backoff doubled for each retry before this one, plus up to a
-- quarter more at random (so that tasks that failed together do not all retry together), capped at
-- 10 minutes. Never less than the doubled backoff (or the cap), so a retry waits at least that long.
-- Callers set no wait at all for a backoff of 0. DESIGN.md §4 "Retries".

CREATE OR REPLACE FUNCTION cairn_retry_delay(p_backoff_ms integer, p_retry integer) RETURNS interval
LANGUAGE sql VOLATILE AS $$
  SELECT make_interval(secs => least(600000, d * (1 + random() / 4)) / 1000)
  FROM (SELECT least(600000, p_backoff_ms * power(2::float8, least(greatest(p_retry, 1), 64) - 1)) AS d) s
$$;
