-- 0007 rate limits and placement: see the MySQL migration of the same number.
CREATE TABLE IF NOT EXISTS connection_rates (
  name TEXT NOT NULL,
  next_us INTEGER NOT NULL,
  PRIMARY KEY (name)
);
ALTER TABLE instances ADD COLUMN serves TEXT NOT NULL DEFAULT '';
