-- 0006 instances: see the MySQL migration of the same number.
CREATE TABLE IF NOT EXISTS instances (
  owner TEXT NOT NULL,
  version TEXT NOT NULL,
  workers INTEGER NOT NULL,
  busy INTEGER NOT NULL,
  scheduler BOOLEAN NOT NULL,
  http_addr TEXT NOT NULL,
  unrunnable TEXT NOT NULL,
  clock_skew_ms INTEGER NOT NULL,
  started_at DATETIME NOT NULL,
  heartbeat_at DATETIME NOT NULL,
  PRIMARY KEY (owner)
);
