-- 0004 sync: what a record-by-record sync (OrderStatusSync) keeps between
-- runs and attempts, next to its high-water mark in job_state:
-- sync_done holds the changes already resolved (pushed, refused, skipped)
-- at or after the mark, so a resumed sync pushes none of them again;
-- sync_pending holds the changes the target asked to send later, carried
-- to the next run until delivered. Every statement may run again after a
-- crash. changed_us is the source change time in microseconds since 1970 UTC (compared as a number in both dialects).
CREATE TABLE IF NOT EXISTS sync_done (
  job VARCHAR(100) NOT NULL,
  change_key CHAR(32) NOT NULL,
  changed_us BIGINT NOT NULL,
  PRIMARY KEY (job, change_key),
  KEY sync_done_time (job, changed_us)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS sync_pending (
  job VARCHAR(100) NOT NULL,
  change_key CHAR(32) NOT NULL,
  subject VARCHAR(200) NOT NULL,
  changed_us BIGINT NOT NULL,
  data TEXT NOT NULL,
  attempts INT NOT NULL,
  code VARCHAR(100) NOT NULL,
  message VARCHAR(1000) NOT NULL,
  first_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (job, change_key),
  KEY sync_pending_subject (job, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
