-- The fleet's tables, version 1. Run with search_path set to the fleet's schema (`kdl` unless overridden), so
-- one server can hold several. Every statement is idempotent: running the file again changes nothing.
CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL);
INSERT INTO schema_version SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);

CREATE TABLE IF NOT EXISTS fleet (
  fleet        text PRIMARY KEY,
  config       jsonb NOT NULL,             -- the settings that change a clip's bytes, pinned by the first run
  config_hash  text NOT NULL,
  lease_ttl    interval NOT NULL DEFAULT '5 min',
  max_attempts smallint NOT NULL DEFAULT 5, -- clip-attributable failures
  max_expiries smallint NOT NULL DEFAULT 3, -- leases that expired on it (a worker died holding it)
  created_at   timestamptz NOT NULL DEFAULT now());

CREATE SEQUENCE IF NOT EXISTS lease_token;

CREATE TABLE IF NOT EXISTS clip (
  fleet            text NOT NULL REFERENCES fleet,
  clip_key         text NOT NULL,           -- the journal's key: {youtube_id}_{start:06}_{end:06}
  youtube_id       text NOT NULL,
  time_start       double precision NOT NULL,
  time_end         double precision NOT NULL,
  rel_path         text NOT NULL,           -- decided once by the planner at seed time
  order_key        bigint NOT NULL,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done', 'failed')),
  not_before       timestamptz NOT NULL DEFAULT '-infinity',
  attempts         smallint NOT NULL DEFAULT 0,
  throttle_returns integer NOT NULL DEFAULT 0,
  lease_expiries   smallint NOT NULL DEFAULT 0,
  excluded_regions text[] NOT NULL DEFAULT '{}',
  lease_token      bigint,
  lease_worker     text,
  lease_expires_at timestamptz,
  category         text,
  done_worker      text,
  done_at          timestamptz,
  location         text,
  size_bytes       bigint,
  sha256           text,
  PRIMARY KEY (fleet, clip_key)) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS clip_pending ON clip (fleet, order_key) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS clip_leased ON clip (fleet, lease_expires_at) WHERE state = 'leased';

-- One row per throttle domain (a public IP or proxy several workers may share): breaker and pacer.
CREATE TABLE IF NOT EXISTS domain (
  fleet        text NOT NULL REFERENCES fleet,
  domain       text NOT NULL,
  breaker      text NOT NULL DEFAULT 'closed' CHECK (breaker IN ('closed', 'open', 'half_open')),
  open_until   timestamptz,
  base_cooloff interval NOT NULL,
  cooloff      interval NOT NULL,
  max_cooloff  interval NOT NULL,
  probe_worker text,
  probe_since  timestamptz,
  next_slot_at timestamptz NOT NULL DEFAULT '-infinity',
  PRIMARY KEY (fleet, domain));
