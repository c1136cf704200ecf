-- 0009 the view run_attempts_all: every attempt of every run. A one-step
-- run whose first attempt succeeded has no run_attempts row (one insert
-- fewer per run); its run row records that attempt, and is the only final
-- run that keeps lease_owner. CREATE OR REPLACE may run again after a
-- crash.
CREATE OR REPLACE VIEW run_attempts_all AS
  SELECT run_id, attempt, step_index, owner, status, started_at, finished_at, error_code, error_message, retry_at
  FROM run_attempts
  UNION ALL
  SELECT id, attempt, 0, lease_owner, 'succeeded', started_at, finished_at, '', NULL, NULL
  FROM runs WHERE status = 'succeeded' AND lease_owner IS NOT NULL;
