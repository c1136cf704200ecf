-- 0005 pauses: see the MySQL migration of the same number.
CREATE TABLE IF NOT EXISTS pauses (
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  until_at DATETIME NULL,
  reason TEXT NOT NULL,
  paused_by TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  PRIMARY KEY (kind, name)
);
