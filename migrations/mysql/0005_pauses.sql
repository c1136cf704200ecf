-- 0005 pauses: what operators (and the circuit breaker) paused: a job (its
-- schedule and its queued runs), a schedule only, or a connection (every
-- run that would call it waits queued), until resumed or until a time.
-- Every instance reads this table each poll. Every statement may run again
-- after a crash.
CREATE TABLE IF NOT EXISTS pauses (
  kind VARCHAR(20) NOT NULL,
  name VARCHAR(100) NOT NULL,
  until_at DATETIME(6) NULL,
  reason VARCHAR(500) NOT NULL,
  paused_by VARCHAR(200) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (kind, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
