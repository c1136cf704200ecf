-- 0008 runs loses ix_runs_retry_of: no query looks runs up by the run they
-- retry (a retry names its source in retry_of_run_id, which the run's own
-- page reads from the row), and every index on runs is written on every
-- enqueue. Dropping an index is in place and quick even on a big table;
-- the statement may run again after a crash (a missing index is skipped).
ALTER TABLE runs DROP INDEX ix_runs_retry_of;
