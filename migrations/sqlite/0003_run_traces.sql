-- 0003 run_traces: see the MySQL migration of the same number.
CREATE TABLE IF NOT EXISTS run_traces (
  run_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  PRIMARY KEY (run_id, attempt)
);
