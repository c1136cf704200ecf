-- 0010 the keys that name one run move out of runs into their own tables,
-- written only for the runs that have them: run_keys holds idempotency
-- keys ('i:' || key) and active-run keys of a job's uniqueBy parameters
-- ('u:' || hash), run_ticks the schedule ticks (job, scheduled_for). Most
-- runs have none of the three, yet each unique index of runs took an
-- entry for every insert: without them a batch of plain runs is stored
-- in about a third less of the server's time. The runs columns stay (the
-- API shows them). An active-run key is taken over by the next run once
-- the run it names is final (see jobs/keys.go). Statements may run again
-- after a crash: IF NOT EXISTS, INSERT IGNORE, and a DROP INDEX of an
-- index already gone is skipped.
CREATE TABLE IF NOT EXISTS run_keys (
  k VARCHAR(255) NOT NULL,
  run_id BIGINT NOT NULL,
  PRIMARY KEY (k),
  KEY ix_run_keys_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS run_ticks (
  job VARCHAR(100) NOT NULL,
  scheduled_for DATETIME(6) NOT NULL,
  run_id BIGINT NOT NULL,
  PRIMARY KEY (job, scheduled_for),
  KEY ix_run_ticks_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO run_keys (k, run_id) SELECT CONCAT('i:', idempotency_key), id FROM runs WHERE idempotency_key IS NOT NULL;
INSERT IGNORE INTO run_keys (k, run_id) SELECT CONCAT('u:', unique_key), id FROM runs WHERE unique_key IS NOT NULL;
INSERT IGNORE INTO run_ticks (job, scheduled_for, run_id) SELECT job, scheduled_for, id FROM runs WHERE scheduled_for IS NOT NULL;
ALTER TABLE runs DROP INDEX uq_runs_idempotency;
ALTER TABLE runs DROP INDEX uq_runs_active;
ALTER TABLE runs DROP INDEX uq_runs_tick;
