-- 0009 the view run_attempts_all (see the MySQL migration).
DROP VIEW IF EXISTS run_attempts_all;
CREATE VIEW run_attempts_all AS
  SELECT run_id, attempt, step_index, owner, status, started_at, finished_at, error_code, error_message, retry_at
  FROM run_attempts
  UNION ALL
  SELECT id, attempt, 0, lease_owner, 'succeeded', started_at, finished_at, '', NULL, NULL
  FROM runs WHERE status = 'succeeded' AND lease_owner IS NOT NULL;
