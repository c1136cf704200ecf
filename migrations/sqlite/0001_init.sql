-- 0001 init: the run model for every capability (runs, parameters index,
-- attempts, steps, logs, per-job state). Times are UTC, stored as text in
-- Go's "2006-01-02 15:04:05.999999999-07:00" form, which sorts correctly.
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job TEXT NOT NULL,
  definition_version TEXT NOT NULL DEFAULT '',
  parameters TEXT NOT NULL,
  trigger_kind TEXT NOT NULL,
  triggered_by TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT NULL,
  request_hash TEXT NULL,
  unique_key TEXT NULL,
  scheduled_for DATETIME NULL,
  status TEXT NOT NULL,
  preview INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  snoozes INTEGER NOT NULL DEFAULT 0,
  not_before DATETIME NOT NULL,
  lease_owner TEXT NULL,
  lease_token TEXT NULL,
  lease_expires_at DATETIME NULL,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  cancelled_by TEXT NOT NULL DEFAULT '',
  parent_run_id INTEGER NULL,
  retry_of_run_id INTEGER NULL,
  created_at DATETIME NOT NULL,
  started_at DATETIME NULL,
  finished_at DATETIME NULL,
  updated_at DATETIME NOT NULL,
  result TEXT NULL,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NULL,
  progress INTEGER NOT NULL DEFAULT 0,
  records_read INTEGER NOT NULL DEFAULT 0,
  records_changed INTEGER NOT NULL DEFAULT 0,
  record_errors INTEGER NOT NULL DEFAULT 0,
  record_warnings INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_runs_idempotency ON runs (idempotency_key);
CREATE UNIQUE INDEX IF NOT EXISTS uq_runs_active ON runs (unique_key);
CREATE UNIQUE INDEX IF NOT EXISTS uq_runs_tick ON runs (job, scheduled_for);
CREATE INDEX IF NOT EXISTS ix_runs_claim ON runs (status, not_before, id);
CREATE INDEX IF NOT EXISTS ix_runs_job ON runs (job, id);
CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS ix_runs_parent ON runs (parent_run_id);
CREATE INDEX IF NOT EXISTS ix_runs_retry_of ON runs (retry_of_run_id);

CREATE TABLE IF NOT EXISTS run_params (
  run_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS ix_run_params_value ON run_params (name, value, run_id);

CREATE TABLE IF NOT EXISTS run_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  step_index INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  started_at DATETIME NOT NULL,
  finished_at DATETIME NOT NULL,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NULL,
  retry_at DATETIME NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_run_attempts ON run_attempts (run_id, attempt, step_index);

CREATE TABLE IF NOT EXISTS run_steps (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL,
  step_index INTEGER NOT NULL,
  name TEXT NOT NULL,
  processor TEXT NOT NULL,
  connection_name TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  skipped_from_run_id INTEGER NULL,
  started_at DATETIME NULL,
  finished_at DATETIME NULL,
  result TEXT NULL,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NULL,
  records_read INTEGER NOT NULL DEFAULT 0,
  records_changed INTEGER NOT NULL DEFAULT 0,
  record_errors INTEGER NOT NULL DEFAULT 0,
  record_warnings INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_run_steps ON run_steps (run_id, step_index);

CREATE TABLE IF NOT EXISTS run_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  step_index INTEGER NOT NULL DEFAULT 0,
  ts DATETIME NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  fields TEXT NULL
);
CREATE INDEX IF NOT EXISTS ix_run_logs_run ON run_logs (run_id, id);

CREATE TABLE IF NOT EXISTS job_state (
  job TEXT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at DATETIME NOT NULL,
  PRIMARY KEY (job, name)
);
