-- Version 2 of the fleet's tables: what a worker needs to keep its own journal and the record a failure
-- leaves, and one row per worker (status shows live and dead ones). Run once, inside the migration's lock.
ALTER TABLE clip ADD COLUMN IF NOT EXISTS label text,
                 ADD COLUMN IF NOT EXISTS split text,
                 ADD COLUMN IF NOT EXISTS message text,
                 ADD COLUMN IF NOT EXISTS bytes_fetched bigint;

CREATE TABLE IF NOT EXISTS worker (
  worker_id    text PRIMARY KEY,
  fleet        text NOT NULL REFERENCES fleet,
  host         text NOT NULL,
  pid          integer NOT NULL,
  region       text NOT NULL,
  domain       text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at   timestamptz,
  stop_reason  text);

UPDATE schema_version SET version = 2;
