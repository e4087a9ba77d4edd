-- Version 5 of the fleet's tables: each throttle domain's learned request rate, beside its breaker, so that
-- the workers behind one address pace themselves as one. `rate_per_min` is what the domain's last ban left
-- for all its workers together (requests a minute) and `rate_since` when; it grows by a tenth of itself
-- every minute from then (each worker computes it and takes its share). NULL until a ban teaches a rate.
-- Run once, inside the migration's lock.
ALTER TABLE domain ADD COLUMN IF NOT EXISTS rate_per_min double precision,
                   ADD COLUMN IF NOT EXISTS rate_since timestamptz;

UPDATE schema_version SET version = 5;
