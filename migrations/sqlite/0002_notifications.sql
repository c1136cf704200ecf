-- 0002 notifications: the outbox of run notifications (webhook, e-mail)
-- and the scanner's bookkeeping. Times are UTC text, as in 0001. Every
-- statement may run again after a crash half-way.
--
-- notifications: one row per (run, channel, kind), unique, so that a
-- scanner that inserts twice never sends twice. status: pending ->
-- sending (claimed, lease until next_attempt_at) -> sent | failed; a
-- sending row whose lease lapsed is claimed again. payload is the run
-- summary JSON that is sent (no secrets).
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL,
  job TEXT NOT NULL,
  channel TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at DATETIME NOT NULL,
  lease_token TEXT NULL,
  last_error TEXT NULL,
  created_at DATETIME NOT NULL,
  sent_at DATETIME NULL,
  payload TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_notifications ON notifications (run_id, channel, kind);
CREATE INDEX IF NOT EXISTS ix_notifications_due ON notifications (status, next_attempt_at, id);

-- notification_runs: the finished runs at or above the scanner's cursor
-- that it has already handled (rows below the cursor are deleted).
CREATE TABLE IF NOT EXISTS notification_runs (
  run_id INTEGER NOT NULL PRIMARY KEY,
  job TEXT NOT NULL,
  handled_at DATETIME NOT NULL
);

-- The scanner's cursor (job_state '_notify'/'cursor'): runs below it are
-- done. Runs that finished before this migration never notify.
INSERT OR IGNORE INTO job_state (job, name, value, updated_at)
SELECT '_notify', 'cursor',
  CAST(COALESCE((SELECT MIN(id) FROM runs WHERE status IN ('queued', 'running')), (SELECT COALESCE(MAX(id), 0) + 1 FROM runs)) AS TEXT),
  strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00:00';
INSERT OR IGNORE INTO notification_runs (run_id, job, handled_at)
SELECT r.id, r.job, strftime('%Y-%m-%d %H:%M:%f', 'now') || '+00:00' FROM runs r JOIN job_state c ON c.job = '_notify' AND c.name = 'cursor'
WHERE r.id >= CAST(c.value AS INTEGER) AND r.status IN ('succeeded', 'succeeded_with_warnings', 'failed', 'cancelled');
