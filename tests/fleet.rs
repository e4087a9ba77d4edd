//! The fleet's PostgreSQL: the test server answers and tests are isolated in schemas of their own.

#[path = "common/skip.rs"]
mod skip;

#[path = "common/pg.rs"]
mod pg;

#[test]
fn each_test_gets_its_own_schema_and_drops_it() {
    let Some(url) = pg::url() else { return };
    let version: u32 = pg::psql(&url, "SHOW server_version_num").parse().expect("a number");
    assert!(version >= 130000, "the fleet needs PostgreSQL 13 or later, the test server is {version}");
    let (a, b) = (pg::Schema::create(&url, "a"), pg::Schema::create(&url, "b"));
    assert_ne!(a.name, b.name);
    pg::psql(&url, &format!("CREATE TABLE {}.clip (k text PRIMARY KEY)", a.name));
    pg::psql(&url, &format!("CREATE TABLE {}.clip (k text PRIMARY KEY)", b.name));
    pg::psql(&url, &format!("INSERT INTO {}.clip VALUES ('x'), ('y')", a.name));
    assert_eq!(pg::psql(&url, &format!("SELECT count(*) FROM {}.clip", a.name)), "2");
    assert_eq!(pg::psql(&url, &format!("SELECT count(*) FROM {}.clip", b.name)), "0");
    let name = a.name.clone();
    drop(a);
    let left = format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'");
    assert_eq!(pg::psql(&url, &left), "0", "the schema is dropped with the test");
}

/// The fleet's schema and statements (`src/fleet/*.sql`), run as the fleet runs them: one autocommit
/// statement each, `$n` parameters bound through PREPARE/EXECUTE.
struct Fleet {
    schema: pg::Schema,
}

const SCHEMA_SQL: &str = include_str!("../src/fleet/schema.sql");
/// The migrations after version 1, in order, as `Db::connect` runs them.
const MIGRATIONS: [&str; 4] = [
    include_str!("../src/fleet/migrate_2.sql"),
    include_str!("../src/fleet/migrate_3.sql"),
    include_str!("../src/fleet/migrate_4.sql"),
    include_str!("../src/fleet/migrate_5.sql"),
];
const STATEMENTS_SQL: &str = include_str!("../src/fleet/statements.sql");

/// The statement of the `-- name: NAME` section.
fn statement(name: &str) -> String {
    let marker = format!("-- name: {name}\n");
    let start = STATEMENTS_SQL.find(&marker).unwrap_or_else(|| panic!("no statement {name}")) + marker.len();
    let rest = &STATEMENTS_SQL[start..];
    let end = rest.find("-- name: ").unwrap_or(rest.len());
    rest[..end].trim().trim_end_matches(';').to_string()
}

impl Fleet {
    /// A fleet `f` with `clips` pending clips `c000`, `c001`... in a schema of its own.
    fn seed(url: &str, tag: &str, clips: usize) -> Fleet {
        let schema = pg::Schema::create(url, tag);
        let fleet = Fleet { schema };
        fleet.sql(SCHEMA_SQL);
        for sql in MIGRATIONS {
            fleet.sql(sql);
        }
        fleet.sql(
            "INSERT INTO fleet (fleet, config, config_hash, max_expiries) VALUES ('f', '{}', 'h', 3);
             INSERT INTO domain (fleet, domain, base_cooloff, cooloff, max_cooloff)
                  VALUES ('f', 'nat1', '0 s', '0 s', '1 h'), ('f', 'slow', '1 min', '1 min', '3 min')",
        );
        if clips > 0 {
            fleet.sql(&format!(
                "INSERT INTO clip (fleet, clip_key, youtube_id, time_start, time_end, rel_path, order_key)
                 SELECT 'f', format('c%s', lpad(i::text, 3, '0')), 'v' || i, 0, 10, 'a/' || i || '.mp4', i
                   FROM generate_series(0, {}) i",
                clips - 1
            ));
        }
        fleet
    }

    fn sql(&self, sql: &str) -> String {
        pg::psql(&self.schema.url, &format!("SET search_path TO {}; {sql}", self.schema.name))
    }

    /// Runs statement `name` with `args` (SQL literals); returns its rows, one per line, fields split by `|`.
    fn run(&self, name: &str, args: &[&str]) -> Vec<String> {
        let text = self.sql(&format!("PREPARE s AS {}; EXECUTE s({})", statement(name), args.join(", ")));
        text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// Claims up to `n` clips for `worker`; returns (clip, token) pairs.
    fn claim(&self, worker: &str, n: u32, ttl: &str, region: &str) -> Vec<(String, String)> {
        let args = [format!("'{worker}'"), n.to_string(), format!("'{ttl}'"), format!("'{region}'")];
        let args: Vec<&str> = std::iter::once("'f'").chain(args.iter().map(String::as_str)).collect();
        self.run("claim", &args)
            .iter()
            .map(|row| {
                let mut fields = row.split('|');
                (fields.next().unwrap().to_string(), fields.next().unwrap().to_string())
            })
            .collect()
    }
}

#[test]
fn the_schema_applies_twice_and_is_versioned() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "schema", 3);
    fleet.sql(SCHEMA_SQL);
    assert_eq!(fleet.sql("SELECT string_agg(version::text, ',') FROM schema_version"), "5", "at the last migration");
    assert_eq!(fleet.sql("SELECT count(*) FROM clip WHERE state = 'pending'"), "3");
}

#[test]
fn concurrent_claims_never_hand_one_clip_to_two_workers() {
    let Some(url) = pg::url() else { return };
    let fleet = std::sync::Arc::new(Fleet::seed(&url, "claim", 60));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let fleet = fleet.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..60 {
                    let claimed = fleet.claim(&format!("w{w}"), 3, "5 min", "unknown");
                    if claimed.is_empty() {
                        break;
                    }
                    got.extend(claimed);
                }
                got
            })
        })
        .collect();
    let got: Vec<(String, String)> = workers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let keys: std::collections::BTreeSet<_> = got.iter().map(|(k, _)| k.clone()).collect();
    let tokens: std::collections::BTreeSet<_> = got.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(got.len(), 60, "every clip claimed once: {got:?}");
    assert_eq!(keys.len(), 60, "no clip claimed twice");
    assert_eq!(tokens.len(), 60, "every lease has its own token");
    assert_eq!(fleet.sql("SELECT count(DISTINCT lease_worker) FROM clip WHERE state = 'leased'"), "4");
}

#[test]
fn a_lost_lease_cannot_complete_and_a_throttle_charges_no_attempt() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "fence", 2);
    // w1's lease on c000 expires at once; the rescue returns it and w2 takes it.
    let old = fleet.claim("w1", 1, "0 s", "unknown");
    assert_eq!(old[0].0, "c000");
    assert_eq!(fleet.run("rescue", &["'f'"]), ["c000|pending"]);
    let new = fleet.claim("w2", 1, "5 min", "unknown");
    assert_eq!(new[0].0, "c000");
    assert_ne!(new[0].1, old[0].1);
    let complete = |worker: &str, token: &str| {
        fleet.run("complete", &["'f'", "'c000'", token, &format!("'{worker}'"), "'a/0.mp4'", "10", "'ab'"])
    };
    assert!(complete("w1", &old[0].1).is_empty(), "the stale token completes nothing");
    assert_eq!(fleet.sql("SELECT state || ' ' || lease_worker FROM clip WHERE clip_key = 'c000'"), "leased w2");
    assert_eq!(complete("w2", &new[0].1), ["c000"]);
    assert!(complete("w2", &new[0].1).is_empty(), "a completion is recorded once");
    assert_eq!(fleet.sql("SELECT done_worker || ' ' || lease_expiries FROM clip WHERE clip_key = 'c000'"), "w2 1");
    // A throttle signal gives c001 back: no attempt, one throttle return, claimable again.
    let c1 = fleet.claim("w1", 1, "5 min", "unknown");
    assert_eq!(fleet.run("give_back", &["'f'", "'c001'", &c1[0].1]), ["c001"]);
    assert_eq!(
        fleet.sql("SELECT state || ' ' || attempts || ' ' || throttle_returns FROM clip WHERE clip_key = 'c001'"),
        "pending 0 1"
    );
    assert_eq!(fleet.claim("w2", 1, "5 min", "unknown")[0].0, "c001");
    // The heartbeat extends only the worker's own live leases.
    assert_eq!(fleet.run("heartbeat", &["'f'", "'w2'", "'5 min'"]).len(), 1);
    assert!(fleet.run("heartbeat", &["'f'", "'w1'", "'5 min'"]).is_empty(), "w1 holds nothing any more");
}

#[test]
fn a_clip_that_kills_its_workers_fails_as_worker_crash_after_the_bound() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "poison", 1);
    let mut states = Vec::new();
    for w in 0..5 {
        if fleet.claim(&format!("w{w}"), 1, "0 s", "unknown").is_empty() {
            break;
        }
        states.extend(fleet.run("rescue", &["'f'"]));
    }
    assert_eq!(states, ["c000|pending", "c000|pending", "c000|failed"]);
    assert_eq!(fleet.sql("SELECT category || ' ' || lease_expiries || ' ' || attempts FROM clip"), "worker_crash 3 0");
}

#[test]
fn a_clip_geo_blocked_in_one_region_goes_to_another() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "geo", 1);
    fleet.sql("UPDATE clip SET excluded_regions = ARRAY['AA']");
    assert!(fleet.claim("wa", 1, "5 min", "AA").is_empty());
    assert_eq!(fleet.claim("wb", 1, "5 min", "BB")[0].0, "c000");
}

#[test]
fn a_ban_opens_the_domain_once_and_one_worker_in_the_fleet_wins_the_probe() {
    let Some(url) = pg::url() else { return };
    let fleet = std::sync::Arc::new(Fleet::seed(&url, "breaker", 0));
    // Ten workers see the same ban: the cool-off doubles once.
    let opened = fleet.run("breaker_open", &["'f'", "'slow'"]);
    assert_eq!(opened.len(), 1);
    for _ in 0..3 {
        assert!(fleet.run("breaker_open", &["'f'", "'slow'"]).is_empty());
    }
    assert_eq!(fleet.sql("SELECT breaker || ' ' || cooloff FROM domain WHERE domain = 'slow'"), "open 00:02:00");
    // Nobody probes before the cool-off ends.
    assert!(fleet.run("probe", &["'f'", "'slow'", "'w0'", "'5 min'"]).is_empty());
    // nat1's cool-off is zero: ten workers race for its probe at once and exactly one wins.
    assert_eq!(fleet.run("breaker_open", &["'f'", "'nat1'"]).len(), 1);
    let racers: Vec<_> = (0..10)
        .map(|w| {
            let fleet = fleet.clone();
            std::thread::spawn(move || fleet.run("probe", &["'f'", "'nat1'", &format!("'w{w}'"), "'5 min'"]).len())
        })
        .collect();
    let winners: usize = racers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(winners, 1, "exactly one probe per cool-off, fleet-wide");
    let prober = fleet.sql("SELECT probe_worker FROM domain WHERE domain = 'nat1'");
    // Only the prober closes the breaker; a prober that died (older than the probe bound) loses the probe.
    assert!(fleet.run("breaker_close", &["'f'", "'nat1'", "'nobody'"]).is_empty());
    assert!(fleet.run("probe", &["'f'", "'nat1'", "'late'", "'5 min'"]).is_empty(), "the live prober keeps it");
    assert_eq!(fleet.run("probe", &["'f'", "'nat1'", "'heir'", "'0 s'"]).len(), 1, "a dead prober is replaced");
    assert!(fleet.run("breaker_close", &["'f'", "'nat1'", &format!("'{prober}'")]).is_empty());
    assert_eq!(fleet.run("breaker_close", &["'f'", "'nat1'", "'heir'"]).len(), 1);
    assert_eq!(fleet.sql("SELECT breaker FROM domain WHERE domain = 'nat1'"), "closed");
    // The breakers' history holds exactly what happened: one opening per ban, one closing by the prober.
    assert_eq!(
        fleet
            .run("domain_events", &["'f'"])
            .iter()
            .map(|r| r.split('|').take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["slow open", "nat1 open", "nat1 close"]
    );
    assert_eq!(fleet.sql("SELECT worker FROM domain_event WHERE kind = 'close'"), "heir");
}

/// A throttle domain's learned request rate: a ban sets it for the whole domain, many workers meeting one ban
/// leave the lowest of their answers (never halving once each), a rate lower already (as grown since it was
/// set) stays, and it is shared among the domain's live workers.
#[test]
fn a_ban_sets_the_domains_learned_rate_once_and_its_live_workers_share_it() {
    let Some(url) = pg::url() else { return };
    let fleet = std::sync::Arc::new(Fleet::seed(&url, "rate", 0));
    let rate = |fleet: &Fleet| fleet.run("domain_rate", &["'f'", "'nat1'"])[0].clone();
    assert_eq!(rate(&fleet), "||0", "no ban yet, no worker");
    // Two live workers behind nat1, one that stopped, one silent for longer than the lease, one elsewhere.
    for (w, domain) in [("a", "nat1"), ("b", "nat1"), ("c", "nat1"), ("d", "nat1"), ("e", "slow")] {
        fleet.run("worker_start", &[&format!("'{w}'"), "'f'", "'host'", "1", "'ZZ'", &format!("'{domain}'")]);
    }
    fleet.run("worker_stop", &["'c'", "'done'"]);
    fleet.sql("UPDATE worker SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'd'");
    let cut =
        |fleet: &Fleet, per_min: f64| fleet.run("domain_rate_cut", &["'f'", "'nat1'", &per_min.to_string(), "0.1"]);
    assert_eq!(cut(&fleet, 30.0), ["30"]);
    assert!(cut(&fleet, 40.0).is_empty(), "a higher answer leaves the rate");
    // Ten workers answer one ban at once: the lowest answer stays, whatever the order.
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let fleet = fleet.clone();
            std::thread::spawn(move || cut(&fleet, 15.0 + i as f64).len())
        })
        .collect();
    assert!(racers.into_iter().map(|t| t.join().unwrap()).sum::<usize>() >= 1);
    let fields = |fleet: &Fleet| -> (f64, f64, u64) {
        let row = rate(fleet);
        let f: Vec<&str> = row.split('|').collect();
        (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap())
    };
    let (per_min, age_s, live) = fields(&fleet);
    assert_eq!((per_min, live), (15.0, 2), "the lowest answer, shared by the two live workers of nat1");
    assert!((0.0..5.0).contains(&age_s), "set just now: {age_s} s ago");
    // Ten minutes later the rate has grown to 30 (a tenth of 15 a minute): 25 is lower and cuts it, 35 not.
    fleet.sql("UPDATE domain SET rate_since = now() - interval '10 min' WHERE domain = 'nat1'");
    assert!(cut(&fleet, 35.0).is_empty(), "35 is above the grown rate");
    assert_eq!(cut(&fleet, 25.0), ["25"]);
    assert_eq!(fields(&fleet).0, 25.0);
    // The other domain never heard of it.
    assert_eq!(fleet.run("domain_rate", &["'f'", "'slow'"])[0], "||1");
}

#[test]
fn workers_of_one_domain_share_one_pace() {
    let Some(url) = pg::url() else { return };
    let fleet = std::sync::Arc::new(Fleet::seed(&url, "pace", 0));
    // Eight workers reserve start slots 10 s apart at once: each gets its own, 0, 10, ..., 70 s from now.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let fleet = fleet.clone();
            std::thread::spawn(move || fleet.run("pace", &["'f'", "'nat1'", "10"])[0].parse::<f64>().unwrap())
        })
        .collect();
    let mut waits: Vec<f64> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    waits.sort_by(f64::total_cmp);
    // Each reservation's wait is measured from its own now(), which moves by the statements' run time.
    for (i, w) in waits.iter().enumerate() {
        let want = 10.0 * i as f64;
        assert!((w - want).abs() < 5.0 && *w <= want + 0.01, "slot {i}: wait {w} s, want about {want} s: {waits:?}");
    }
    // Another domain keeps its own pace.
    assert_eq!(fleet.run("pace", &["'f'", "'slow'", "10"])[0].parse::<f64>().unwrap().max(0.0), 0.0);
}

#[test]
fn a_broken_worker_gives_back_its_leases_and_merge_reads_who_made_each_clip() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "release", 3);
    let held = fleet.claim("broken", 2, "5 min", "unknown");
    let good = fleet.claim("good", 1, "5 min", "unknown");
    assert_eq!(fleet.run("release_all", &["'f'", "'broken'"]).len(), 2);
    assert_eq!(
        fleet.sql("SELECT count(*) FROM clip WHERE state = 'pending' AND attempts = 0 AND lease_expiries = 0"),
        "2",
        "no clip is charged for the broken worker"
    );
    assert!(fleet.run("release_all", &["'f'", "'broken'"]).is_empty());
    fleet.run("complete", &["'f'", &format!("'{}'", good[0].0), &good[0].1, "'good'", "'a/2.mp4'", "7", "'cd'"]);
    assert_eq!(fleet.run("done_clips", &["'f'"]), [format!("{}|good|a/2.mp4|7|cd", good[0].0)]);
    assert_eq!(held.len(), 2);
}

/// The claim statement's order, the rules the one-machine store follows too (`download/local/queue_tests.rs`):
/// new clips in the fleet's order (`order_key`), a clip that went back (given back, a retry come due) before
/// any new one, a retry not before its time, a geo-blocked clip only in other regions, nothing charged for a
/// give-back.
#[test]
fn claims_come_in_order_with_the_clips_that_went_back_first() {
    let Some(url) = pg::url() else { return };
    let fleet = Fleet::seed(&url, "order", 6);
    fleet.sql("INSERT INTO worker (worker_id, fleet, host, pid, region, domain) VALUES ('wa', 'f', 'h', 1, 'AA', 'd'), ('wb', 'f', 'h', 2, 'BB', 'd')");
    // (RETURNING gives no order: the LIMIT decides which clips a claim takes.)
    let keys = |claimed: &[(String, String)]| {
        let mut keys: Vec<String> = claimed.iter().map(|c| c.0.clone()).collect();
        keys.sort();
        keys
    };
    let first = fleet.claim("w", 2, "5 min", "AA");
    assert_eq!(keys(&first), ["c000", "c001"], "new clips in order");
    // A throttle gives c001 back: it comes before every new clip, uncharged.
    assert_eq!(fleet.run("give_back", &["'f'", "'c001'", &first[1].1]), ["c001"]);
    let c1 = fleet.claim("w", 1, "5 min", "AA");
    assert_eq!(keys(&c1), ["c001"]);
    assert_eq!(fleet.sql("SELECT attempts FROM clip WHERE clip_key = 'c001'"), "0");
    // A retry in an hour: c000 is not claimed before then.
    let fail = |key: &str, token: &str, secs: &str| {
        let args = ["'f'", &format!("'{key}'"), token, "'pending'", "'network'", "'reset'", secs, "0"];
        assert_eq!(fleet.run("failure", &args), [key.to_string()]);
    };
    fail("c000", &first[0].1, "3600");
    let c2 = fleet.claim("w", 1, "5 min", "AA");
    assert_eq!(keys(&c2), ["c002"]);
    // Geo-blocked in AA: c002 goes to BB's workers only.
    assert_eq!(fleet.run("geo_block", &["'f'", "'c002'", &c2[0].1, "'AA'", "'blocked'"]), ["pending"]);
    let c3 = fleet.claim("w", 1, "5 min", "AA");
    assert_eq!(keys(&c3), ["c003"], "not c002, blocked in AA");
    let c2 = fleet.claim("w", 1, "5 min", "BB");
    assert_eq!(keys(&c2), ["c002"]);
    // What went back (c001, c003 given back; c002's retry due now) before the new c004 and c005; c000 waits.
    fleet.run("give_back", &["'f'", "'c001'", &c1[0].1]);
    fleet.run("give_back", &["'f'", "'c003'", &c3[0].1]);
    fail("c002", &c2[0].1, "0");
    let back = fleet.claim("w", 3, "5 min", "BB");
    assert_eq!(keys(&back), ["c001", "c002", "c003"]);
    let rest = fleet.claim("w", 10, "5 min", "BB");
    assert_eq!(keys(&rest), ["c004", "c005"], "c000 still waits out its hour");
}
