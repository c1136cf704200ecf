-- 0010 run_keys and run_ticks take over the unique keys of runs (see the
-- MySQL migration).
CREATE TABLE IF NOT EXISTS run_keys (
  k TEXT NOT NULL PRIMARY KEY,
  run_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_run_keys_run ON run_keys (run_id);
CREATE TABLE IF NOT EXISTS run_ticks (
  job TEXT NOT NULL,
  scheduled_for DATETIME NOT NULL,
  run_id INTEGER NOT NULL,
  PRIMARY KEY (job, scheduled_for)
);
CREATE INDEX IF NOT EXISTS ix_run_ticks_run ON run_ticks (run_id);
INSERT OR IGNORE INTO run_keys (k, run_id) SELECT 'i:' || idempotency_key, id FROM runs WHERE idempotency_key IS NOT NULL;
INSERT OR IGNORE INTO run_keys (k, run_id) SELECT 'u:' || unique_key, id FROM runs WHERE unique_key IS NOT NULL;
INSERT OR IGNORE INTO run_ticks (job, scheduled_for, run_id) SELECT job, scheduled_for, id FROM runs WHERE scheduled_for IS NOT NULL;
DROP INDEX IF EXISTS uq_runs_idempotency;
DROP INDEX IF EXISTS uq_runs_active;
DROP INDEX IF EXISTS uq_runs_tick;
