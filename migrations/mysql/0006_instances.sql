-- 0006 instances: each running `serve` writes its row every few seconds
-- (version, workers, what it does not run, clock skew) for the instances
-- view; a row whose heartbeat stopped is shown as gone and deleted after
-- a day. Every statement may run again after a crash.
CREATE TABLE IF NOT EXISTS instances (
  owner VARCHAR(200) NOT NULL,
  version VARCHAR(100) NOT NULL,
  workers INT NOT NULL,
  busy INT NOT NULL,
  scheduler BOOLEAN NOT NULL,
  http_addr VARCHAR(200) NOT NULL,
  unrunnable TEXT NOT NULL,
  clock_skew_ms BIGINT NOT NULL,
  started_at DATETIME(6) NOT NULL,
  heartbeat_at DATETIME(6) NOT NULL,
  PRIMARY KEY (owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
