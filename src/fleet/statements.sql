-- The fleet's statements, one per `-- name:` section, each a single autocommit statement with $n parameters.
-- All times are the database's now(), never a worker's clock.

-- name: claim
-- $1 fleet, $2 worker, $3 how many, $4 lease length, $5 the worker's region ('unknown' when not given)
UPDATE clip c SET state = 'leased', lease_token = nextval('lease_token'), lease_worker = $2,
       lease_expires_at = now() + $4::interval
  FROM (SELECT fleet, clip_key FROM clip
         WHERE fleet = $1 AND state = 'pending' AND not_before <= now()
           AND NOT (excluded_regions @> ARRAY[$5::text])
         ORDER BY order_key LIMIT $3
         FOR UPDATE SKIP LOCKED) p
 WHERE c.fleet = p.fleet AND c.clip_key = p.clip_key
RETURNING c.clip_key, c.lease_token, c.youtube_id, c.time_start, c.time_end, c.rel_path;

-- name: heartbeat
-- $1 fleet, $2 worker, $3 lease length: extends the worker's leases; a lease missing from the answer is lost
UPDATE clip SET lease_expires_at = now() + $3::interval
 WHERE fleet = $1 AND lease_worker = $2 AND state = 'leased'
RETURNING clip_key, lease_token;

-- name: rescue
-- $1 fleet: expired leases go back to the pool, or fail as worker_crash after the fleet's max_expiries
UPDATE clip c
   SET state = CASE WHEN c.lease_expiries + 1 >= f.max_expiries THEN 'failed' ELSE 'pending' END,
       category = CASE WHEN c.lease_expiries + 1 >= f.max_expiries THEN 'worker_crash' ELSE c.category END,
       lease_expiries = c.lease_expiries + 1, lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
  FROM (SELECT fleet, clip_key FROM clip
         WHERE fleet = $1 AND state = 'leased' AND lease_expires_at < now()
         LIMIT 500 FOR UPDATE SKIP LOCKED) x, fleet f
 WHERE c.fleet = x.fleet AND c.clip_key = x.clip_key AND f.fleet = c.fleet
RETURNING c.clip_key, c.state;

-- name: complete
-- $1 fleet, $2 clip, $3 lease token, $4 worker, $5 location, $6 size, $7 sha256: no row means the lease was lost
UPDATE clip SET state = 'done', done_worker = $4, done_at = now(), location = $5, size_bytes = $6,
       sha256 = $7, category = NULL, lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
 WHERE fleet = $1 AND clip_key = $2 AND lease_token = $3 AND state = 'leased'
RETURNING clip_key;

-- name: give_back
-- $1 fleet, $2 clip, $3 lease token: a throttle signal returns the clip with no attempt charged
UPDATE clip SET state = 'pending', throttle_returns = throttle_returns + 1,
       lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
 WHERE fleet = $1 AND clip_key = $2 AND lease_token = $3 AND state = 'leased'
RETURNING clip_key;

-- name: breaker_open
-- $1 fleet, $2 domain: idempotent, so many workers seeing one ban double the cool-off once
WITH opened AS (
  UPDATE domain SET breaker = 'open', open_until = now() + cooloff,
         cooloff = least(cooloff * 2, max_cooloff), probe_worker = NULL, probe_since = NULL
   WHERE fleet = $1 AND domain = $2 AND breaker <> 'open'
  RETURNING open_until)
INSERT INTO domain_event (fleet, domain, kind, open_until) SELECT $1, $2, 'open', open_until FROM opened
RETURNING open_until;

-- name: probe
-- $1 fleet, $2 domain, $3 worker, $4 how long a probe may take: exactly one worker wins it; a prober older
-- than $4 is taken to be dead and the probe goes to another
UPDATE domain SET breaker = 'half_open', probe_worker = $3, probe_since = now()
 WHERE fleet = $1 AND domain = $2
   AND ((breaker = 'open' AND open_until <= now())
        OR (breaker = 'half_open' AND probe_since < now() - $4::interval))
RETURNING domain;

-- name: breaker_close
-- $1 fleet, $2 domain, $3 worker: the probe succeeded; only the prober closes it, back to the base cool-off
WITH closed AS (
  UPDATE domain SET breaker = 'closed', cooloff = base_cooloff, open_until = NULL,
         probe_worker = NULL, probe_since = NULL
   WHERE fleet = $1 AND domain = $2 AND breaker = 'half_open' AND probe_worker = $3
  RETURNING domain)
INSERT INTO domain_event (fleet, domain, kind, worker) SELECT $1, $2, 'close', $3 FROM closed
RETURNING domain;

-- name: release
-- $1 fleet, $2 clip, $3 lease token: a lease the fleet gives this worker but the worker never learned of (its
-- claim committed as the connection died) goes back with no attempt charged and no lease expiry counted
UPDATE clip SET state = 'pending', lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
 WHERE fleet = $1 AND clip_key = $2 AND lease_token = $3 AND state = 'leased'
RETURNING clip_key;

-- name: release_all
-- $1 fleet, $2 worker: a worker that cannot work (no yt-dlp, no ffmpeg) gives back every lease it holds, with
-- no attempt charged and no lease expiry counted, then exits 2
UPDATE clip SET state = 'pending', lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
 WHERE fleet = $1 AND lease_worker = $2 AND state = 'leased'
RETURNING clip_key;

-- name: done_clips
-- $1 fleet: the record `merge` takes as arbiter, one row per done clip: which worker made it, where it is
SELECT clip_key, done_worker, location, size_bytes, sha256 FROM clip
 WHERE fleet = $1 AND state = 'done' ORDER BY order_key;

-- name: done_bytes
-- $1 fleet, $2 clip, $3 worker, $4 bytes fetched for it: the record of a clip this worker just completed
UPDATE clip SET bytes_fetched = $4 WHERE fleet = $1 AND clip_key = $2 AND done_worker = $3 AND state = 'done';

-- name: pin
-- $1 fleet, $2 pinned settings (JSON text), $3 their hash, $4 lease length: the first run creates the fleet
INSERT INTO fleet (fleet, config, config_hash, lease_ttl) VALUES ($1, $2::text::jsonb, $3, $4::interval)
ON CONFLICT (fleet) DO NOTHING;

-- name: pinned
-- $1 fleet: the settings the fleet was created with
SELECT config::text, config_hash FROM fleet WHERE fleet = $1;

-- name: seed
-- $1 fleet, then one array per column (labels and boxes as JSON text): adds the clips not there yet and
-- leaves the others as they are, except that a clip seeded without labels and boxes (by a kinetics-dl older
-- than version 4 of these tables) takes them; one row per clip added (true) or filled in (false)
INSERT INTO clip AS c (fleet, clip_key, youtube_id, time_start, time_end, rel_path, order_key, label, split,
                       labels, boxes)
SELECT $1, k, y, s, e, p, o, l, sp, ls::jsonb, b::jsonb
  FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[], $7::int8[], $8::text[], $9::text[],
              $10::text[], $11::text[])
       AS t (k, y, s, e, p, o, l, sp, ls, b)
ON CONFLICT (fleet, clip_key) DO UPDATE SET labels = excluded.labels, boxes = excluded.boxes
 WHERE c.labels IS NULL AND c.boxes IS NULL AND (excluded.labels IS NOT NULL OR excluded.boxes IS NOT NULL)
RETURNING c.xmax = 0;

-- name: claimed
-- $1 fleet, $2 clips: what a worker needs of the clips it just claimed
SELECT clip_key, youtube_id, time_start, time_end, rel_path, label, split, attempts, cardinality(excluded_regions),
       labels::text, boxes::text
  FROM clip WHERE fleet = $1 AND clip_key = ANY($2::text[]);

-- name: failure
-- $1 fleet, $2 clip, $3 lease token, $4 'pending' (retry) or 'failed', $5 category, $6 message, $7 seconds
-- until a retry, $8 bytes fetched: a clip-attributable failure, one attempt charged
UPDATE clip SET state = $4, attempts = attempts + 1, category = $5, message = $6,
       not_before = now() + make_interval(secs => $7::float8), bytes_fetched = $8,
       lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
 WHERE fleet = $1 AND clip_key = $2 AND lease_token = $3 AND state = 'leased'
RETURNING clip_key;

-- name: geo_block
-- $1 fleet, $2 clip, $3 lease token, $4 region, $5 message: blocked from this region; another region's worker
-- may take it, and it fails only when every region the fleet's workers come from has been blocked
UPDATE clip c SET excluded_regions = array_append(c.excluded_regions, $4),
       state = CASE WHEN cardinality(c.excluded_regions) + 1 >= r.regions THEN 'failed' ELSE 'pending' END,
       category = 'geo_blocked', message = $5,
       lease_token = NULL, lease_worker = NULL, lease_expires_at = NULL
  FROM (SELECT greatest(count(DISTINCT region), 1) AS regions FROM worker WHERE fleet = $1) r
 WHERE c.fleet = $1 AND c.clip_key = $2 AND c.lease_token = $3 AND c.state = 'leased'
RETURNING c.state;

-- name: left
-- $1 fleet: clips pending or leased (a worker ends only when none is), seconds until the earliest retry,
-- and all, done and failed clips
SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'leased'),
       extract(epoch FROM greatest(min(not_before) FILTER (WHERE state = 'pending'), now()) - now())::float8,
       count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed')
  FROM clip WHERE fleet = $1;

-- name: worker_start
-- $1 worker, $2 fleet, $3 host, $4 pid, $5 region, $6 throttle domain
INSERT INTO worker (worker_id, fleet, host, pid, region, domain) VALUES ($1, $2, $3, $4, $5, $6);

-- name: worker_beat
-- $1 worker
UPDATE worker SET heartbeat_at = now() WHERE worker_id = $1;

-- name: worker_stop
-- $1 worker, $2 why it stopped
UPDATE worker SET stopped_at = now(), stop_reason = $2 WHERE worker_id = $1;

-- name: domain_add
-- $1 fleet, $2 domain, $3 base cool-off, $4 longest cool-off: the first worker of a domain creates its row
INSERT INTO domain (fleet, domain, base_cooloff, cooloff, max_cooloff) VALUES ($1, $2, $3, $3, $4)
ON CONFLICT (fleet, domain) DO NOTHING;

-- name: domain_state
-- $1 fleet, $2 domain: the breaker, and seconds until it may be probed (NULL when closed)
SELECT breaker, extract(epoch FROM open_until - now())::float8, probe_worker FROM domain
 WHERE fleet = $1 AND domain = $2;

-- name: domain_rate
-- $1 fleet, $2 domain: the domain's learned request rate (requests a minute, for all its workers together;
-- NULL before any ban), seconds since it was set, and the domain's live workers (a heartbeat within the
-- lease and not stopped), among whom it is shared
SELECT d.rate_per_min, extract(epoch FROM now() - d.rate_since)::float8,
       (SELECT count(*) FROM worker w
         WHERE w.fleet = d.fleet AND w.domain = d.domain AND w.stopped_at IS NULL
           AND w.heartbeat_at > now() - f.lease_ttl)
  FROM domain d JOIN fleet f ON f.fleet = d.fleet
 WHERE d.fleet = $1 AND d.domain = $2;

-- name: domain_rate_cut
-- $1 fleet, $2 domain, $3 the rate a worker learned from a ban, for the whole domain (requests a minute), $4
-- the growth a minute: the domain's rate drops to it unless it is lower already, as grown since it was set,
-- so that workers meeting the same ban cut it once (the lowest of their answers), never once each
UPDATE domain SET rate_per_min = $3::float8, rate_since = now()
 WHERE fleet = $1 AND domain = $2
   AND (rate_per_min IS NULL
        OR rate_per_min * (1 + $4::float8 * extract(epoch FROM now() - rate_since)::float8 / 60) > $3::float8)
RETURNING rate_per_min;

-- name: status_clips
-- $1 fleet: clips by state and category, with the bytes fetched and kept
SELECT state, coalesce(category, ''), count(*), coalesce(sum(bytes_fetched), 0)::int8,
       coalesce(sum(size_bytes), 0)::int8
  FROM clip WHERE fleet = $1 GROUP BY 1, 2 ORDER BY 1, 2;

-- name: status_classes
-- $1 fleet: clips, done and failed per class, a clip with several labels counted in each of them
SELECT l, count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed')
  FROM clip, LATERAL jsonb_array_elements_text(coalesce(labels, jsonb_build_array(label))) AS t (l)
 WHERE fleet = $1 AND l IS NOT NULL
 GROUP BY l ORDER BY l;

-- name: status_workers
-- $1 fleet: every worker with its age, its heartbeat's age, whether it is alive (a heartbeat within the lease
-- and not stopped), the clips it made, those it holds and those it made in the last 10 minutes
SELECT w.worker_id, w.host, w.pid, w.region, w.domain,
       extract(epoch FROM now() - w.started_at)::float8, extract(epoch FROM now() - w.heartbeat_at)::float8,
       w.stopped_at IS NULL AND w.heartbeat_at > now() - f.lease_ttl, coalesce(w.stop_reason, ''),
       (SELECT count(*) FROM clip c WHERE c.fleet = w.fleet AND c.state = 'done' AND c.done_worker = w.worker_id),
       (SELECT count(*) FROM clip c WHERE c.fleet = w.fleet AND c.state = 'leased' AND c.lease_worker = w.worker_id),
       (SELECT count(*) FROM clip c WHERE c.fleet = w.fleet AND c.state = 'done' AND c.done_worker = w.worker_id
           AND c.done_at > now() - interval '10 minutes')
  FROM worker w JOIN fleet f ON f.fleet = w.fleet
 WHERE w.fleet = $1 ORDER BY w.started_at, w.worker_id;

-- name: status_domains
-- $1 fleet: each throttle domain's breaker, seconds until it may be probed, its cool-off, its prober, and its
-- learned rate (requests a minute) with its age in seconds
SELECT domain, breaker, extract(epoch FROM open_until - now())::float8, extract(epoch FROM cooloff)::float8,
       probe_worker, rate_per_min, extract(epoch FROM now() - rate_since)::float8
  FROM domain WHERE fleet = $1 ORDER BY domain;

-- name: pace
-- $1 fleet, $2 domain, $3 seconds between two clips of the domain: reserves the domain's next start slot
-- (one row, so the whole domain shares one pace) and returns the seconds to wait for it
UPDATE domain SET next_slot_at = greatest(next_slot_at, now()) + make_interval(secs => $3::float8)
 WHERE fleet = $1 AND domain = $2
RETURNING extract(epoch FROM next_slot_at - now())::float8 - $3::float8;

-- name: done_per_bucket
-- $1 fleet, $2 bucket length in ms: done clips per worker per time bucket (bucket = floor(done_at / $2))
SELECT done_worker, floor(extract(epoch FROM done_at) * 1000 / $2::bigint)::bigint AS bucket, count(*)
  FROM clip WHERE fleet = $1 AND state = 'done' AND done_at IS NOT NULL
 GROUP BY 1, 2 ORDER BY 2, 1;

-- name: done_span
-- $1 fleet: the first and last completion (Unix ms), for choosing the report's time buckets
SELECT (extract(epoch FROM min(done_at)) * 1000)::bigint, (extract(epoch FROM max(done_at)) * 1000)::bigint
  FROM clip WHERE fleet = $1 AND state = 'done';

-- name: domain_events
-- $1 fleet: every breaker opening and closing, oldest first (Unix ms)
SELECT domain, kind, (extract(epoch FROM at) * 1000)::bigint,
       (extract(epoch FROM open_until) * 1000)::bigint, worker
  FROM domain_event WHERE fleet = $1 ORDER BY at;
