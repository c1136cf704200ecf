-- 0001 init: the run model for every capability (runs, parameters index,
-- attempts, steps, logs, per-job state). Times are DATETIME(6) in UTC.
--
-- runs has few secondary indexes on purpose: every index on a column that
-- claims, heartbeats or completions change is rewritten per run. The claim
-- index (status, not_before, id) also finds running runs (rescue) and
-- filters by status; heartbeats change no indexed column.
CREATE TABLE IF NOT EXISTS runs (
  id BIGINT NOT NULL AUTO_INCREMENT,
  job VARCHAR(100) NOT NULL,
  definition_version VARCHAR(64) NOT NULL DEFAULT '',
  parameters LONGTEXT NOT NULL,
  trigger_kind VARCHAR(20) NOT NULL,
  triggered_by VARCHAR(200) NOT NULL DEFAULT '',
  idempotency_key VARCHAR(200) NULL,
  request_hash CHAR(64) NULL,
  unique_key CHAR(64) NULL,
  scheduled_for DATETIME(6) NULL,
  status VARCHAR(32) NOT NULL,
  preview TINYINT(1) NOT NULL DEFAULT 0,
  attempt INT NOT NULL DEFAULT 0,
  max_attempts INT NOT NULL,
  snoozes INT NOT NULL DEFAULT 0,
  not_before DATETIME(6) NOT NULL,
  lease_owner VARCHAR(100) NULL,
  lease_token CHAR(32) NULL,
  lease_expires_at DATETIME(6) NULL,
  cancel_requested TINYINT(1) NOT NULL DEFAULT 0,
  cancelled_by VARCHAR(200) NOT NULL DEFAULT '',
  parent_run_id BIGINT NULL,
  retry_of_run_id BIGINT NULL,
  created_at DATETIME(6) NOT NULL,
  started_at DATETIME(6) NULL,
  finished_at DATETIME(6) NULL,
  updated_at DATETIME(6) NOT NULL,
  result LONGTEXT NULL,
  error_code VARCHAR(100) NOT NULL DEFAULT '',
  error_message TEXT NULL,
  progress INT NOT NULL DEFAULT 0,
  records_read BIGINT NOT NULL DEFAULT 0,
  records_changed BIGINT NOT NULL DEFAULT 0,
  record_errors BIGINT NOT NULL DEFAULT 0,
  record_warnings BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_runs_idempotency (idempotency_key),
  UNIQUE KEY uq_runs_active (unique_key),
  UNIQUE KEY uq_runs_tick (job, scheduled_for),
  KEY ix_runs_claim (status, not_before, id),
  KEY ix_runs_job (job, id),
  KEY ix_runs_created (created_at),
  KEY ix_runs_parent (parent_run_id),
  KEY ix_runs_retry_of (retry_of_run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS run_params (
  run_id BIGINT NOT NULL,
  name VARCHAR(100) NOT NULL,
  value VARCHAR(255) NOT NULL,
  PRIMARY KEY (run_id, name),
  KEY ix_run_params_value (name, value, run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS run_attempts (
  id BIGINT NOT NULL AUTO_INCREMENT,
  run_id BIGINT NOT NULL,
  attempt INT NOT NULL,
  step_index INT NOT NULL DEFAULT 0,
  owner VARCHAR(100) NOT NULL DEFAULT '',
  status VARCHAR(32) NOT NULL,
  started_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NOT NULL,
  error_code VARCHAR(100) NOT NULL DEFAULT '',
  error_message TEXT NULL,
  retry_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_run_attempts (run_id, attempt, step_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS run_steps (
  id BIGINT NOT NULL AUTO_INCREMENT,
  run_id BIGINT NOT NULL,
  step_index INT NOT NULL,
  name VARCHAR(100) NOT NULL,
  processor VARCHAR(100) NOT NULL,
  connection_name VARCHAR(100) NOT NULL DEFAULT '',
  status VARCHAR(32) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  skipped_from_run_id BIGINT NULL,
  started_at DATETIME(6) NULL,
  finished_at DATETIME(6) NULL,
  result LONGTEXT NULL,
  error_code VARCHAR(100) NOT NULL DEFAULT '',
  error_message TEXT NULL,
  records_read BIGINT NOT NULL DEFAULT 0,
  records_changed BIGINT NOT NULL DEFAULT 0,
  record_errors BIGINT NOT NULL DEFAULT 0,
  record_warnings BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_run_steps (run_id, step_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS run_logs (
  id BIGINT NOT NULL AUTO_INCREMENT,
  run_id BIGINT NOT NULL,
  attempt INT NOT NULL DEFAULT 0,
  step_index INT NOT NULL DEFAULT 0,
  ts DATETIME(6) NOT NULL,
  level VARCHAR(10) NOT NULL,
  message TEXT NOT NULL,
  fields TEXT NULL,
  PRIMARY KEY (id),
  KEY ix_run_logs_run (run_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS job_state (
  job VARCHAR(100) NOT NULL,
  name VARCHAR(100) NOT NULL,
  value TEXT NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (job, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
