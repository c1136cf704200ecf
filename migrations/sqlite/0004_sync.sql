-- 0004 sync: see the MySQL migration of the same number.
CREATE TABLE IF NOT EXISTS sync_done (
  job TEXT NOT NULL,
  change_key TEXT NOT NULL,
  changed_us INTEGER NOT NULL,
  PRIMARY KEY (job, change_key)
);
CREATE INDEX IF NOT EXISTS sync_done_time ON sync_done (job, changed_us);
CREATE TABLE IF NOT EXISTS sync_pending (
  job TEXT NOT NULL,
  change_key TEXT NOT NULL,
  subject TEXT NOT NULL,
  changed_us INTEGER NOT NULL,
  data TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  first_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  PRIMARY KEY (job, change_key)
);
CREATE INDEX IF NOT EXISTS sync_pending_subject ON sync_pending (job, subject);
