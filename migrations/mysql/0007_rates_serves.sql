-- 0007 rate limits and placement: connection_rates holds, per connection
-- with a rateLimit, the next free request slot (microseconds since the
-- epoch, the database's clock): every request of every instance reserves
-- the next slot in one locked row. instances.serves lists the connections
-- an instance serves (serve --connections). Every statement may run again
-- after a crash (a duplicate column is skipped).
CREATE TABLE IF NOT EXISTS connection_rates (
  name VARCHAR(200) NOT NULL,
  next_us BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
ALTER TABLE instances ADD COLUMN serves VARCHAR(2000) NOT NULL DEFAULT '';
