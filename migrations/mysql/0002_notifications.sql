-- 0002 notifications: the outbox of run notifications (webhook, e-mail)
-- and the scanner's bookkeeping. Times are DATETIME(6) in UTC. Every
-- statement may run again after a crash half-way.
--
-- notifications: one row per (run, channel, kind), unique, so that a
-- scanner that inserts twice (crash, two instances) never sends twice.
-- status: pending -> sending (claimed, lease until next_attempt_at) ->
-- sent | failed; a sending row whose lease lapsed is claimed again.
-- payload is the run summary JSON that is sent (no secrets).
CREATE TABLE IF NOT EXISTS notifications (
  id BIGINT NOT NULL AUTO_INCREMENT,
  run_id BIGINT NOT NULL,
  job VARCHAR(100) NOT NULL,
  channel VARCHAR(20) NOT NULL,
  kind VARCHAR(20) NOT NULL,
  status VARCHAR(20) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(6) NOT NULL,
  lease_token VARCHAR(64) NULL,
  last_error TEXT NULL,
  created_at DATETIME(6) NOT NULL,
  sent_at DATETIME(6) NULL,
  payload LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_notifications (run_id, channel, kind),
  KEY ix_notifications_due (status, next_attempt_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- notification_runs: the finished runs at or above the scanner's cursor
-- that it has already handled (rows below the cursor are deleted).
CREATE TABLE IF NOT EXISTS notification_runs (
  run_id BIGINT NOT NULL,
  job VARCHAR(100) NOT NULL,
  handled_at DATETIME(6) NOT NULL,
  PRIMARY KEY (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The scanner's cursor (job_state '_notify'/'cursor'): runs below it are
-- done. Runs that finished before this migration never notify.
INSERT IGNORE INTO job_state (job, name, value, updated_at)
SELECT '_notify', 'cursor',
  CAST(COALESCE((SELECT MIN(id) FROM runs WHERE status IN ('queued', 'running')), (SELECT COALESCE(MAX(id), 0) + 1 FROM runs)) AS CHAR),
  UTC_TIMESTAMP(6);
INSERT IGNORE INTO notification_runs (run_id, job, handled_at)
SELECT r.id, r.job, UTC_TIMESTAMP(6) FROM runs r JOIN job_state c ON c.job = '_notify' AND c.name = 'cursor'
WHERE r.id >= CAST(c.value AS UNSIGNED) AND r.status IN ('succeeded', 'succeeded_with_warnings', 'failed', 'cancelled');
