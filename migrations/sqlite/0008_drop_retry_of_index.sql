-- 0008 runs loses ix_runs_retry_of (see the MySQL migration).
DROP INDEX IF EXISTS ix_runs_retry_of;
