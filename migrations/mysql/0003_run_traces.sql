-- 0003 run_traces: the OpenTelemetry trace of each attempt of a run, and
-- (attempt 0) the trace context of the request that triggered it, so that
-- `runs show`, the API and the run page can name the trace. Rows exist only
-- while traces are on. Every statement may run again after a crash.
CREATE TABLE IF NOT EXISTS run_traces (
  run_id BIGINT NOT NULL,
  attempt INT NOT NULL,
  trace_id CHAR(32) NOT NULL,
  span_id CHAR(16) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (run_id, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
