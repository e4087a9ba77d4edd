-- Version 3 of the fleet's tables: the history of each throttle domain's breaker, for `report --db` to draw
-- bans on the throughput's time axis. Written by the statements that open and close a breaker, in the same
-- statement, so the history is exactly the breaker's. Run once, inside the migration's lock.
CREATE TABLE IF NOT EXISTS domain_event (
  fleet      text NOT NULL REFERENCES fleet,
  domain     text NOT NULL,
  at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind       text NOT NULL CHECK (kind IN ('open', 'close')),
  open_until timestamptz,     -- 'open': when the cool-off ends
  worker     text);           -- 'close': the prober whose probe got through
CREATE INDEX IF NOT EXISTS domain_event_at ON domain_event (fleet, at);

UPDATE schema_version SET version = 3;
