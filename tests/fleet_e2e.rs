//! End-to-end tests of the fleet (`download --db URL --fleet NAME`): several real worker processes against
//! the test PostgreSQL (`KDL_TEST_PG`, a schema of each test's own), the real yt-dlp and ffmpeg, and the
//! local test source. Workers bound to different `--source-address` addresses play separate machines; two
//! on one address with one `--throttle-domain` play machines behind one NAT.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/skip.rs"]
mod skip;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, Config, TestServer};

/// Every worker run of these tests ends well within this, even on a loaded 2-core machine.
const WORKER_LIMIT: Duration = Duration::from_secs(600);

/// `download -j 2` as one worker of fleet `f` in `schema`, leaving through `addr`; `extra` comes last (an
/// option may not be given twice).
fn worker_args(server: &TestServer, schema: &pg::Schema, out: &Path, addr: &str, extra: &[&str]) -> Vec<OsString> {
    worker_args_j(server, schema, out, addr, 2, extra)
}

fn worker_args_j(
    server: &TestServer,
    schema: &pg::Schema,
    out: &Path,
    addr: &str,
    jobs: usize,
    extra: &[&str],
) -> Vec<OsString> {
    let mut args = os(["download", "--db", &schema.url, "--db-schema", &schema.name, "--fleet", "f", "--out"]);
    args.push(out.into());
    args.extend(os([
        "--url-template",
        &server.watch_url_template(),
        "--retry-delay",
        "0s",
        "-j",
        &jobs.to_string(),
        "--encode-jobs",
        "1",
        "--source-address",
        addr,
        "--quiet",
    ]));
    args.extend(extra.iter().map(OsString::from));
    args
}

/// [`worker_args`] plus the annotation file: a worker that also seeds the fleet.
fn seeding_args(server: &TestServer, schema: &pg::Schema, out: &Path, addr: &str, csv: &Path) -> Vec<OsString> {
    seeding(worker_args(server, schema, out, addr, &[]), csv)
}

/// A worker's arguments plus the annotation file: the worker also seeds the fleet.
fn seeding(mut args: Vec<OsString>, csv: &Path) -> Vec<OsString> {
    args.push("--annotations".into());
    args.push(csv.into());
    args
}

/// One clip as the fleet's table has it.
#[derive(Debug, Clone)]
struct FleetClip {
    key: String,
    state: String,
    done_worker: String,
    rel_path: String,
    sha256: String,
    size_bytes: i64,
    attempts: i64,
    lease_expiries: i64,
    throttle_returns: i64,
}

fn fleet_clips(schema: &pg::Schema) -> BTreeMap<String, FleetClip> {
    let sql = format!(
        "SELECT clip_key, state, coalesce(done_worker, ''), rel_path, coalesce(sha256, ''), coalesce(size_bytes, 0),
                attempts, lease_expiries, throttle_returns
           FROM {}.clip WHERE fleet = 'f' ORDER BY clip_key",
        schema.name
    );
    pg::psql(&schema.url, &sql)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let clip = FleetClip {
                key: f[0].into(),
                state: f[1].into(),
                done_worker: f[2].into(),
                rel_path: f[3].into(),
                sha256: f[4].into(),
                size_bytes: f[5].parse().unwrap(),
                attempts: f[6].parse().unwrap(),
                lease_expiries: f[7].parse().unwrap(),
                throttle_returns: f[8].parse().unwrap(),
            };
            (clip.key.clone(), clip)
        })
        .collect()
}

/// The fleet's worker ids by process id.
fn workers_by_pid(schema: &pg::Schema) -> BTreeMap<i32, String> {
    let sql = format!("SELECT pid, worker_id FROM {}.worker WHERE fleet = 'f'", schema.name);
    pg::psql(&schema.url, &sql)
        .lines()
        .map(|l| {
            let (pid, id) = l.split_once('|').unwrap();
            (pid.parse().unwrap(), id.to_string())
        })
        .collect()
}

/// [`pg::psql`] for polling while the first worker may not have created the tables yet: empty until then.
fn psql_while_starting(url: &str, sql: &str) -> String {
    let out =
        std::process::Command::new("psql").args([url, "-X", "-q", "-A", "-t", "-c", sql]).output().expect("psql runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of(row: &Row) -> String {
    row.name().trim_end_matches(".mp4").to_string()
}

/// Every row's clip is done exactly once in the fleet, by a worker whose folder holds that very file
/// (sha256 and size as recorded, frame-accurate), and no other worker's folder has it.
#[track_caller]
fn assert_done_once(schema: &pg::Schema, rows: &[Row], outs: &BTreeMap<String, PathBuf>) {
    let clips = fleet_clips(schema);
    for row in rows {
        let clip = clips.get(&key_of(row)).unwrap_or_else(|| panic!("{}: no fleet clip in {clips:#?}", row.id));
        assert_eq!(clip.state, "done", "{clip:?}");
        assert_eq!(clip.rel_path, row.rel_path(), "{clip:?}");
        let out = outs.get(&clip.done_worker).unwrap_or_else(|| panic!("{clip:?}: done by a worker of this test"));
        let path = out.join(&clip.rel_path);
        assert_eq!(sha256_hex(&path), clip.sha256, "{}: the file is the one the fleet recorded", path.display());
        assert_eq!(std::fs::metadata(&path).unwrap().len() as i64, clip.size_bytes, "{}", path.display());
        assert_clip_at(&path, row);
        for (other, dir) in outs {
            if other != &clip.done_worker {
                assert!(!dir.join(&clip.rel_path).exists(), "{}: also in {}'s folder", clip.key, other);
            }
        }
    }
}

/// Client IPs that started (yt-dlp's watch page GET) each id's clip.
fn starters(server: &TestServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in server.stats().log.iter().filter(|e| e.path == "/watch") {
        by_id.entry(e.id.clone().unwrap_or_default()).or_default().insert(e.ip.clone());
    }
    by_id
}

#[test]
fn three_workers_finish_a_dataset_each_clip_done_once() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "three");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(0, 9);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);

    // All three start at once with the same command, as a job array would: one migrates and seeds, the
    // others find the fleet there and add nothing.
    let addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let workers: Vec<(Running, PathBuf)> = addrs
        .iter()
        .map(|addr| {
            let out = tmp.path().join(format!("w{addr}"));
            (Running::download(&seeding_args(&server, &schema, &out, addr, &csv)), out)
        })
        .collect();
    let pids: Vec<(i32, PathBuf)> = workers.iter().map(|(r, o)| (r.pid(), o.clone())).collect();
    for (worker, _) in workers {
        worker.wait(WORKER_LIMIT).expect_code(0);
    }

    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = pids.into_iter().map(|(pid, out)| (ids[&pid].clone(), out)).collect();
    assert_eq!(outs.len(), 3, "three workers registered: {ids:?}");
    assert_done_once(&schema, &rows, &outs);
    assert_eq!(fleet_clips(&schema).len(), rows.len(), "one fleet clip per row, seeded once by three workers");
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.attempts, clip.lease_expiries), (0, 0), "{clip:?}");
    }
    // No lease expired, so no clip was fetched by two workers.
    for (id, ips) in starters(&server) {
        assert_eq!(ips.len(), 1, "{id} was started from {ips:?}");
    }
    // Each worker's own journal records what it made, as a single-machine run would.
    let local_done: usize = outs.values().map(|o| done_count(o)).sum();
    assert_eq!(local_done, rows.len());
    // ...and holds only the clips it claimed, not the fleet's whole plan.
    let local_clips: usize = outs.values().map(|o| journal_clips(o).len()).sum();
    assert_eq!(local_clips, rows.len(), "each worker's journal has only its own clips");

    // `status --db` shows the fleet with an output folder's keys plus its own.
    let status = fleet_status(&schema);
    for key in ["total", "done", "pending", "failed", "bytes_fetched", "bytes_on_disk", "by_source", "workers"] {
        assert!(status.get(key).is_some(), "status has {key}: {status:#}");
    }
    assert_eq!((status["total"].as_u64(), status["done"].as_u64()), (Some(9), Some(9)), "{status:#}");
    assert_eq!((status["pending"].as_u64(), status["leased"].as_u64()), (Some(0), Some(0)), "{status:#}");
    assert_eq!(status["by_source"]["youtube"].as_u64(), Some(9));
    assert_eq!(status["eta_s"].as_f64(), Some(0.0), "nothing left at the recent pace: {status:#}");
    assert!(status["clips_per_min"].as_f64().unwrap() > 0.0, "{status:#}");
    let sizes: i64 = fleet_clips(&schema).values().map(|c| c.size_bytes).sum();
    assert_eq!(status["bytes_on_disk"].as_i64(), Some(sizes));
    assert!(status["bytes_fetched"].as_u64().unwrap() > 0, "{status:#}");
    let workers = status["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    for w in workers {
        assert_eq!((w["alive"].as_bool(), w["stop_reason"].as_str()), (Some(false), Some("exit 0")), "{w:#}");
        assert_eq!(
            w["done"].as_u64(),
            Some(fleet_clips(&schema).values().filter(|c| c.done_worker == w["worker"]).count() as u64)
        );
    }
    let per_worker: u64 = workers.iter().map(|w| w["done"].as_u64().unwrap()).sum();
    assert_eq!(per_worker, 9);
}

/// `status --db URL --fleet f --json` through the binary.
fn fleet_status(schema: &pg::Schema) -> serde_json::Value {
    let o = run_strs(&["status", "--db", &schema.url, "--db-schema", &schema.name, "--fleet", "f", "--json"]);
    o.expect_code(0);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {}", o.stdout))
}

#[test]
fn a_sigkilled_worker_clips_are_finished_by_the_others() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "kill");
    let rows = real_rows(20, 6);
    // Slow media: a clip takes seconds, so the first worker is surely mid-clip when it dies.
    let server =
        server(rows.iter().fold(config(), |c, r| c.with_behaviour(&r.id, Behaviour::Slow { bytes_per_sec: 150_000 })));
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let lease = ["--lease", "3s"];

    let out_a = tmp.path().join("a");
    let mut args = seeding_args(&server, &schema, &out_a, "127.0.0.2", &csv);
    args.extend(os(lease));
    let mut a = Running::download(&args);
    let pid_a = a.pid();
    let leased_sql = format!(
        "SELECT c.clip_key FROM {s}.clip c JOIN {s}.worker w ON w.worker_id = c.lease_worker
          WHERE c.state = 'leased' AND w.pid = {pid_a} ORDER BY 1",
        s = schema.name
    );
    // Mid-clip: a lease held and its media being fetched.
    a.wait_for(Duration::from_secs(300), "the first worker to fetch media", || {
        !psql_while_starting(&url, &leased_sql).is_empty()
            && server.stats().log.iter().any(|e| e.path.starts_with("/v/"))
    });
    let children = descendants(pid_a);
    a.signal(libc::SIGKILL);
    let held: Vec<String> = pg::psql(&url, &leased_sql).lines().map(str::to_string).collect();
    assert!(!held.is_empty(), "the killed worker held leases");
    drop(a);
    assert_all_end(&children, Duration::from_secs(30), "the killed worker's yt-dlp and ffmpeg");

    let (out_b, out_c) = (tmp.path().join("b"), tmp.path().join("c"));
    let b = Running::download(&[worker_args(&server, &schema, &out_b, "127.0.0.3", &lease)].concat());
    let c = Running::download(&[worker_args(&server, &schema, &out_c, "127.0.0.4", &lease)].concat());
    let (pid_b, pid_c) = (b.pid(), c.pid());
    // They wait out the dead worker's leases, then take its clips.
    b.wait(WORKER_LIMIT).expect_code(0);
    c.wait(WORKER_LIMIT).expect_code(0);

    let ids = workers_by_pid(&schema);
    let id_a = ids[&pid_a].clone();
    let outs: BTreeMap<String, PathBuf> =
        [(id_a.clone(), out_a.clone()), (ids[&pid_b].clone(), out_b), (ids[&pid_c].clone(), out_c)].into();
    let clips = fleet_clips(&schema);
    for key in &held {
        let clip = &clips[key];
        assert_eq!(clip.state, "done", "{clip:?}");
        assert_ne!(clip.done_worker, id_a, "{clip:?}: finished by a live worker");
        assert!(clip.lease_expiries >= 1, "{clip:?}: its lease expired");
    }
    for clip in clips.values() {
        assert_eq!(clip.attempts, 0, "{clip:?}: a dead worker charges no attempt");
    }
    // What the dead worker left half-made is in no clip's place; what it finished is recorded once.
    for key in &held {
        let rel = &clips[key].rel_path;
        assert!(!out_a.join(rel).exists(), "{key}: a half-made clip of the killed worker is in place");
    }
    assert_done_once(&schema, &rows, &outs);
}

#[test]
fn ctrl_c_gives_a_workers_clips_back_at_once() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "int");
    let rows = real_rows(90, 4);
    let server =
        server(rows.iter().fold(config(), |c, r| c.with_behaviour(&r.id, Behaviour::Slow { bytes_per_sec: 100_000 })));
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let mut worker = Running::download(&seeding_args(&server, &schema, &tmp.path().join("w"), "127.0.0.2", &csv));
    let leased = format!("SELECT count(*) FROM {}.clip WHERE state = 'leased'", schema.name);
    worker.wait_for(Duration::from_secs(300), "clips leased and their media fetched", || {
        psql_while_starting(&url, &leased).parse::<u32>().unwrap_or(0) > 0
            && server.stats().log.iter().any(|e| e.path.starts_with("/v/"))
    });
    worker.signal(libc::SIGINT);
    worker.wait(WORKER_LIMIT).expect_code(130);
    // Given back at once, not after the 5 minute lease; nothing charged.
    assert_eq!(pg::psql(&url, &leased), "0");
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.attempts, clip.lease_expiries), (0, 0), "{clip:?}");
        assert!(clip.state == "pending" || clip.state == "done", "{clip:?}");
    }
    let status = fleet_status(&schema);
    assert_eq!(status["workers"][0]["stop_reason"].as_str(), Some("exit 130"), "{status:#}");
}

#[test]
fn a_worker_with_other_encode_settings_is_refused_and_a_rerun_adds_nothing() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "pin");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(40, 2);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("a");
    run(&seeding_args(&server, &schema, &out, "127.0.0.2", &csv)).expect_code(0);
    let requests = requests_by_id(&server);
    let maker = workers_by_pid(&schema).into_values().next().expect("the first worker joined");

    let other = tmp.path().join("b");
    let o = run(&worker_args(&server, &schema, &other, "127.0.0.3", &["--max-height", "240", "--no-audio"]));
    o.expect_code(2);
    assert!(o.stderr.contains("--max-height is 240 here, 360 in the fleet"), "{}", o.stderr);
    assert!(o.stderr.contains("--no-audio is true here, false in the fleet"), "{}", o.stderr);
    assert_eq!(workers_by_pid(&schema).len(), 1, "the refused worker never joined");
    assert!(!other.exists(), "the refused worker made no output folder");

    // The same command again: the fleet is complete, nothing is added or fetched.
    run(&seeding_args(&server, &schema, &out, "127.0.0.2", &csv)).expect_code(0);
    assert_eq!(fleet_clips(&schema).len(), rows.len());
    assert_eq!(requests_by_id(&server), requests);
    assert_done_once(&schema, &rows, &[(maker, out)].into());
}

/// A yt-dlp without a JavaScript runtime: it warns as on YouTube, the machine's fault and not the clips'.
fn no_js_ytdlp(dir: &Path) -> PathBuf {
    write_script(
        dir,
        "no-js-yt-dlp",
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac
echo 'WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default.' >&2
exec yt-dlp \"$@\"",
    )
}
#[test]
fn a_broken_worker_gives_its_clips_back_and_fails_none() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "broken");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(50, 4);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    // No JavaScript runtime: yt-dlp warns as on YouTube; the machine's fault, not the clips'.
    let no_js = no_js_ytdlp(tmp.path());
    let mut broken = seeding_args(&server, &schema, &tmp.path().join("broken"), "127.0.0.2", &csv);
    broken.push("--ytdlp".into());
    broken.push(no_js.into());
    let o = run(&broken);
    o.expect_code(2);
    assert!(o.stderr.contains("JavaScript runtime"), "{}", o.stderr);
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.state.as_str(), clip.attempts), ("pending", 0), "{clip:?}: given back, uncharged");
    }

    let out = tmp.path().join("healthy");
    let healthy = Running::download(&worker_args(&server, &schema, &out, "127.0.0.3", &[]));
    let pid = healthy.pid();
    healthy.wait(WORKER_LIMIT).expect_code(0);
    assert_done_once(&schema, &rows, &[(workers_by_pid(&schema)[&pid].clone(), out)].into());
}

#[test]
fn a_clip_geo_blocked_in_one_region_is_made_in_another_and_fails_only_when_blocked_in_all() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "geo");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(70, 3);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    // The stand-in yt-dlp answers as YouTube does for a video blocked in the egress's country: the first two
    // videos are blocked only from 127.0.0.2 (region AA), the third from both regions.
    let geo = "ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country";
    let body = format!(
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\n\
         case \"$*\" in\n\
           *'--source-address 127.0.0.2'*{a}*|*'--source-address 127.0.0.2'*{b}*|*{c}*)\n\
             printf '%s\\n' '{geo}' >&2; exit 1 ;;\n\
         esac\n\
         exec yt-dlp \"$@\"",
        a = rows[0].id,
        b = rows[1].id,
        c = rows[2].id,
    );
    let ytdlp = write_script(tmp.path(), "geo-yt-dlp", &body);
    let ytdlp = ytdlp.to_str().unwrap();
    // The fleet knows region BB before region AA meets a block: a BB worker that cannot work (no JavaScript
    // runtime) joins, seeds and leaves, its clips given back.
    let no_js = no_js_ytdlp(tmp.path());
    let mut first = seeding_args(&server, &schema, &tmp.path().join("b0"), "127.0.0.3", &csv);
    first.extend(os(["--region", "BB", "--ytdlp", no_js.to_str().unwrap()]));
    run(&first).expect_code(2);

    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a =
        Running::download(&worker_args(&server, &schema, &out_a, "127.0.0.2", &["--region", "AA", "--ytdlp", ytdlp]));
    // Both regions are known to the fleet before either worker meets a block that could fail a clip.
    let pid = a.pid();
    a.wait_for(Duration::from_secs(120), "the AA worker to join", || workers_by_pid(&schema).contains_key(&pid));
    let b =
        Running::download(&worker_args(&server, &schema, &out_b, "127.0.0.3", &["--region", "BB", "--ytdlp", ytdlp]));
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);

    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = [(ids[&pid_a].clone(), out_a), (ids[&pid_b].clone(), out_b)].into();
    assert_done_once(&schema, &rows[..2], &outs);
    let clips = fleet_clips(&schema);
    assert_eq!(clips.len(), rows.len());
    for row in &rows[..2] {
        assert_eq!(clips[&key_of(row)].done_worker, ids[&pid_b], "{}: made in region BB", row.id);
    }
    let blocked = &clips[&key_of(&rows[2])];
    assert_eq!(blocked.state, "failed", "{blocked:?}");
    let sql = format!(
        "SELECT category, array_to_string(ARRAY(SELECT unnest(excluded_regions) ORDER BY 1), ',') FROM {}.clip
          WHERE clip_key = '{}'",
        schema.name,
        key_of(&rows[2])
    );
    assert_eq!(pg::psql(&url, &sql), "geo_blocked|AA,BB");
    for clip in clips.values() {
        assert_eq!(clip.attempts, 0, "{clip:?}: geo_blocked charges no attempt");
    }
}

#[test]
fn workers_of_one_domain_start_clips_at_the_domain_pace() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "pace");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(80, 6);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    // 20 clips a minute for the whole domain: a start every 3 s however many workers share it. Extraction by
    // the command line, which starts yt-dlp the same way for every clip: an API worker's start lands on its
    // first clip only (1 s or more on a loaded machine), which moved some starts closer than the pace.
    let shared = ["--rate", "20/m", "--throttle-domain", "nat1", "--ytdlp-mode", "cli"];
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = Running::download(&seeding(worker_args(&server, &schema, &out_a, "127.0.0.5", &shared), &csv));
    let b = Running::download(&worker_args(&server, &schema, &out_b, "127.0.0.5", &shared));
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);

    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = [(ids[&pid_a].clone(), out_a), (ids[&pid_b].clone(), out_b)].into();
    assert_done_once(&schema, &rows, &outs);
    // Four free slots at once (two workers, -j 2) would start four clips together; the shared pace spreads
    // the six starts over at least five intervals (less a little for yt-dlp's own start-up, which varies).
    let mut starts: Vec<u64> = server.stats().log.iter().filter(|e| e.path == "/watch").map(|e| e.time_ms).collect();
    starts.sort_unstable();
    assert_eq!(starts.len(), rows.len(), "one start per clip");
    let span = starts[starts.len() - 1] - starts[0];
    assert!(span >= 5 * 3000 - 2500, "six starts within {span} ms: {starts:?}");
}

/// Workers started together, only one of them with the annotations: one without them may find the fleet
/// before it has any clip (it created the fleet itself, or the seed is still on its way). It waits for the
/// seed and takes part, instead of ending at once as if the fleet were finished; a fleet that nobody seeds
/// within two leases stops it with a usage error that says what to do.
#[test]
fn a_worker_without_the_annotations_waits_for_the_seed_and_an_unseeded_fleet_is_a_usage_error() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "seedwait");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(130, 6);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    // First, without the annotations: it creates the fleet, which has no clip.
    let mut b = Running::download(&worker_args(&server, &schema, &out_b, "127.0.0.3", &[]));
    let pid_b = b.pid();
    let registered = format!("SELECT count(*) FROM {}.worker WHERE pid = {pid_b}", schema.name);
    b.wait_for(Duration::from_secs(120), "the worker's row", || psql_while_starting(&url, &registered) == "1");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!b.exited(), "a worker ended on a fleet nobody had seeded yet: {}", b.stderr());
    let clips = pg::psql(&schema.url, &format!("SELECT count(*) FROM {}.clip", schema.name));
    assert_eq!(clips.trim(), "0", "nothing seeded yet");
    let a = Running::download(&seeding_args(&server, &schema, &out_a, "127.0.0.2", &csv));
    let pid_a = a.pid();
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);
    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = [(ids[&pid_a].clone(), out_a), (ids[&pid_b].clone(), out_b)].into();
    assert_done_once(&schema, &rows, &outs);

    // Nobody seeds this one: two leases of 2 s, then exit 2, nothing fetched.
    let empty = pg::Schema::create(&url, "unseeded");
    let out_c = tmp.path().join("c");
    let before = server.stats().log.len();
    let c = run(&worker_args(&server, &empty, &out_c, "127.0.0.4", &["--lease", "2s"]));
    c.expect_code(2);
    assert!(c.stderr.contains("fleet `f` has no clips: give this worker the annotations"), "{}", c.stderr);
    assert_eq!(server.stats().log.len(), before, "nothing was asked of the source");
}

/// A throttle domain's learned request rate is the domain's, kept in its row beside its breaker: two workers
/// behind one address each pace at half of it, so that together they send at the rate the host taught (90 a
/// minute here, set in the row as a ban would), not at twice it, and not unpaced as a worker that never met
/// the ban itself would. `status --db` shows the domain's rate, each worker's journal its share.
#[test]
fn workers_of_one_domain_share_its_learned_rate() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "share");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(120, 14);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    const PER_MIN: f64 = 90.0;
    // A short lease: heartbeats, and so readings of the domain's rate, every second.
    let shared = ["--throttle-domain", "nat1", "--lease", "10s"];
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Running::download(&seeding(worker_args_j(&server, &schema, &out_a, "127.0.0.5", 1, &shared), &csv));
    let b = Running::download(&worker_args_j(&server, &schema, &out_b, "127.0.0.5", 1, &shared));
    let rate_sql = format!(
        "UPDATE {}.domain SET rate_per_min = {PER_MIN}, rate_since = now() WHERE fleet = 'f' AND domain = 'nat1' \
         RETURNING 1",
        schema.name
    );
    a.wait_for(Duration::from_secs(120), "the domain's row", || psql_while_starting(&url, &rate_sql) == "1");
    let set_ms = now_ms();
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);
    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = [(ids[&pid_a].clone(), out_a), (ids[&pid_b].clone(), out_b)].into();
    assert_done_once(&schema, &rows, &outs);

    // From a reading of the row on (a heartbeat, and a booking made at the old pace), every request from the
    // domain's address: 1.5 a second together, growing by a tenth a minute, and one booked ahead by each.
    let mut times: Vec<u64> =
        server.stats().log.iter().filter(|e| e.time_ms >= set_ms + 3000).map(|e| e.time_ms).collect();
    times.sort_unstable();
    assert!(times.len() >= 10, "the workers were still at work once the rate was set: {times:?}");
    let span_s = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let allowed = span_s * PER_MIN / 60.0 * (1.0 + 0.1 * (span_s + 60.0) / 60.0) + 2.0;
    assert!(
        times.len() as f64 <= allowed + 1.0,
        "{} requests in {span_s:.1} s from the domain, where its rate allows {allowed:.1}: {times:?}",
        times.len()
    );
    let status = fleet_status(&schema);
    let domain = &status["domains"][0];
    let rate = domain["learned_rate_per_min"].as_f64().unwrap_or_else(|| panic!("a learned rate: {status:#}"));
    assert!((PER_MIN..PER_MIN * 1.3).contains(&rate), "the domain's rate, grown a little since: {status:#}");
    // Each journal keeps the share its worker last read: half the domain's while both were at work, the whole
    // of it for the worker that read it once the other had stopped (the last clips of a run).
    let mut shares: Vec<f64> = outs
        .values()
        .map(|out| {
            let egresses = status_json(out)["egresses"].clone();
            egresses[0]["learned_rate_per_min"].as_f64().unwrap_or_else(|| panic!("{egresses:#}"))
        })
        .collect();
    shares.sort_by(f64::total_cmp);
    let half = PER_MIN / 2.0;
    assert!((half..half * 1.3).contains(&shares[0]), "a worker's share is half the domain's: {shares:?}");
    assert!(
        (half..half * 1.3).contains(&shares[1]) || (PER_MIN..PER_MIN * 1.3).contains(&shares[1]),
        "the other's is half the domain's, or all of it once alone: {shares:?}"
    );
}

/// A TCP relay between workers and the test PostgreSQL that the test can cut (every connection closed, new
/// ones refused) and restore: the network failing under a worker, without touching the server other tests
/// share.
struct PgRelay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Connections made, and the sockets of those open, to close on a cut.
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl PgRelay {
    fn start(url: &str) -> PgRelay {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let rest = url.split_once('@').map_or(url, |(_, r)| r);
        let rest = rest.trim_start_matches("postgres://").trim_start_matches("postgresql://");
        let upstream = rest.split('/').next().unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = PgRelay { port, cut: Default::default(), open: Default::default() };
        let (cut, open) = (relay.cut.clone(), relay.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let pipes = [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)];
                for (mut from, mut to) in pipes {
                    open.lock().unwrap().push(from.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        relay
    }

    /// The test server's URL with the relay in its place.
    fn url(&self, url: &str) -> String {
        let (head, rest) = url.split_once('@').unwrap();
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        format!("{head}@127.0.0.1:{}/{path}", self.port)
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The fleet's clips done, as its record says; 0 while the database cannot be read.
fn done_in_fleet(url: &str, schema: &pg::Schema) -> usize {
    let sql = format!("SELECT count(*) FROM {}.clip WHERE state = 'done'", schema.name);
    psql_while_starting(url, &sql).parse::<usize>().unwrap_or(0)
}

/// One seeding worker on `rows` (slow media, each row slower than the one before, so that no two clips
/// finish together: the clip beside the first one is still running when the database is cut, even when a
/// clip's cut takes a fraction of a second, as the smart cut's does) that reaches the fleet's
/// database at `db`, caught at the moment the tests below need: it has recorded a clip in the fleet
/// (`url`), then `cut` took the database from it, and it has since finished a clip into its local journal
/// that the fleet cannot hear of. `extra` comes last on its command line.
struct CutOff {
    server: TestServer,
    worker: Running,
    out: PathBuf,
    /// The fleet's done clips when the database was cut off.
    recorded_at_cut: usize,
    _tmp: tempfile::TempDir,
}

fn a_worker_cut_off_after_a_clip(
    url: &str,
    db: &str,
    schema: &pg::Schema,
    rows: &[Row],
    extra: &[&str],
    cut: impl FnOnce(),
) -> CutOff {
    // 300, 200, 150, 120, 100, 86 KB/s: about 4, 6, 8, 10, 12, 14 s a window, 2 s apart.
    let slow = |i: usize| Behaviour::Slow { bytes_per_sec: 600_000 / (2 + i as u64) };
    let server = server(rows.iter().enumerate().fold(config(), |c, (i, r)| c.with_behaviour(&r.id, slow(i))));
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, rows);
    let out = tmp.path().join("w");
    let mut args = seeding_args(&server, schema, &out, "127.0.0.2", &csv);
    let at = args.iter().position(|a| a == "--db").unwrap() + 1;
    args[at] = db.into();
    args.extend(extra.iter().map(OsString::from));
    let mut worker = Running::download(&args);
    worker.wait_for(Duration::from_secs(300), "a first clip recorded in the fleet", || done_in_fleet(url, schema) >= 1);
    cut();
    let recorded_at_cut = done_in_fleet(url, schema);
    let made_at_cut = done_count(&out);
    // A clip running at the cut finishes into the local journal while the fleet cannot hear of it.
    worker.wait_for(Duration::from_secs(300), "a clip finished while cut off", || done_count(&out) > made_at_cut);
    CutOff { server, worker, out, recorded_at_cut, _tmp: tmp }
}

#[test]
fn completions_made_while_the_database_is_cut_off_are_all_recorded() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "cut");
    let rows = real_rows(60, 6);
    // The worker reaches the database through the relay; the lease outlasts the cut.
    let relay = PgRelay::start(&url);
    let CutOff { server: _server, worker, out, recorded_at_cut, _tmp } =
        a_worker_cut_off_after_a_clip(&url, &relay.url(&url), &schema, &rows, &["--lease", "60s", "-v"], || {
            relay.cut()
        });
    assert_eq!(done_in_fleet(&url, &schema), recorded_at_cut, "nothing reached the fleet through the cut");
    relay.restore();
    let pid = worker.pid();
    let o = worker.wait(WORKER_LIMIT);
    o.expect_code(0);
    assert!(o.stderr.contains("lost the fleet database"), "{}", o.stderr);
    assert!(o.stderr.contains("the fleet database is back"), "{}", o.stderr);
    assert_done_once(&schema, &rows, &[(workers_by_pid(&schema)[&pid].clone(), out)].into());
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.attempts, clip.lease_expiries), (0, 0), "{clip:?}");
    }
}

/// A claim can commit in the fleet as the connection dies, before its clips reach the worker (the server shut
/// down between `claim` and `claimed`; seen in CI). The fleet then holds a lease of this worker's that the
/// worker never learned of, and its heartbeat renews every lease the fleet gives it: without a remedy that
/// clip is nobody's for ever and the worker never ends. Here such a lease is made by hand mid-run, the way the
/// lost claim left it; the worker's next heartbeat gives it back, uncharged, and the worker makes the clip.
#[test]
fn a_lease_the_worker_never_learned_of_goes_back_and_is_made() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "ghost");
    let rows = real_rows(90, 5);
    let (db, name) = (url.clone(), schema.name.clone());
    let ghost = move || {
        let sql = format!(
            "UPDATE {name}.clip SET state = 'leased', lease_token = nextval('{name}.lease_token'),
                    lease_worker = (SELECT worker_id FROM {name}.worker WHERE fleet = 'f'),
                    lease_expires_at = now() + interval '1 hour'
              WHERE fleet = 'f' AND clip_key = (SELECT clip_key FROM {name}.clip
                                                 WHERE fleet = 'f' AND state = 'pending' ORDER BY clip_key LIMIT 1)
             RETURNING clip_key"
        );
        assert!(!pg::psql(&db, &sql).trim().is_empty(), "a pending clip to lease behind the worker's back");
    };
    let CutOff { server: _server, worker, out, _tmp, .. } =
        a_worker_cut_off_after_a_clip(&url, &url, &schema, &rows, &["--lease", "60s", "-v"], ghost);
    let pid = worker.pid();
    let o = worker.wait(WORKER_LIMIT);
    o.expect_code(0);
    assert!(o.stderr.contains("a lease this worker never learned of"), "{}", o.stderr);
    assert_done_once(&schema, &rows, &[(workers_by_pid(&schema)[&pid].clone(), out)].into());
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.attempts, clip.lease_expiries, clip.throttle_returns), (0, 0, 0), "{clip:?}");
    }
}

/// A 40 s video whose server bans an IP for `ban_secs` after more than `max_requests` video requests.
fn throttled(max_requests: u32, ban_secs: f64) -> Config {
    Config::for_tests().with_duration(40.0).with_ip_throttle(max_requests, 600.0, ban_secs)
}

/// Unix milliseconds now, on the test source's clock (the same machine's).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn a_worker_joining_a_banned_domain_sends_nothing_into_the_ban() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "nat");
    // One ban, long enough to start a second worker inside it; a cool-off longer than the ban, so that the
    // domain's first probe comes after it. Six clips of 5 requests each (the page, then a header and a
    // window per DASH track): the ban comes in the fifth, and what is left after it stays under the limit.
    let ban_secs = 15.0;
    let server = server(throttled(20, ban_secs));
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Row> = real_rows(0, 400).into_iter().filter(|r| r.end <= 40.0).skip(3).take(6).collect();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let shared = ["--cooldown", "18s", "--throttle-domain", "nat1"];
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Running::download(&seeding(worker_args_j(&server, &schema, &out_a, "127.0.0.5", 1, &shared), &csv));
    let open_sql = format!("SELECT breaker FROM {}.domain WHERE fleet = 'f' AND domain = 'nat1'", schema.name);
    a.wait_for(Duration::from_secs(300), "the shared domain's breaker to open", || {
        psql_while_starting(&url, &open_sql) == "open"
    });
    // A second machine behind the same address joins while the ban lasts: it must wait for the domain's
    // cool-off instead of finding the ban out for itself.
    let joined_ms = now_ms();
    let b = Running::download(&worker_args_j(&server, &schema, &out_b, "127.0.0.5", 1, &shared));
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);

    let ids = workers_by_pid(&schema);
    let outs: BTreeMap<String, PathBuf> = [(ids[&pid_a].clone(), out_a), (ids[&pid_b].clone(), out_b)].into();
    assert_done_once(&schema, &rows, &outs);
    let clips = fleet_clips(&schema);
    assert!(clips.values().any(|c| c.throttle_returns > 0), "the ban gave a clip back: {clips:#?}");
    for clip in clips.values() {
        assert_eq!(clip.attempts, 0, "{clip:?}: a throttle charges no attempt");
    }
    let status = fleet_status(&schema);
    let domains = status["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1, "{status:#}");
    assert_eq!((domains[0]["domain"].as_str(), domains[0]["breaker"].as_str()), (Some("nat1"), Some("closed")));
    let stats = server.stats();
    let first_429 = stats.log.iter().filter(|e| e.status == 429).map(|e| e.time_ms).min().expect("a ban");
    let ban_end = first_429 + (ban_secs * 1000.0) as u64;
    assert!(joined_ms < ban_end, "the second worker joined inside the ban (the test's premise)");
    let into_ban: Vec<(u64, &str, u16)> = stats
        .log
        .iter()
        .filter(|e| e.time_ms >= joined_ms && e.time_ms < ban_end)
        .map(|e| (e.time_ms - first_429, e.path.as_str(), e.status))
        .collect();
    assert_eq!(into_ban, vec![], "requests into the ban after the domain opened (ms into the ban, path, status)");

    // `report --db` draws the fleet: each worker's completions on one time axis, the domain's ban from its
    // opening to the probe that got through shaded on it.
    let page_dir = tmp.path().join("page");
    let mut args = os(["report", "--db", &schema.url, "--db-schema", &schema.name, "--fleet", "f", "--json", "--out"]);
    args.push(page_dir.as_path().into());
    let o = run(&args);
    o.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let bans = report["bans"].as_array().unwrap();
    assert!(!bans.is_empty(), "{report:#}");
    for ban in bans {
        assert_eq!(ban["domain"].as_str(), Some("nat1"), "{report:#}");
        let (from, until) = (ban["from_ms"].as_i64().unwrap(), ban["until_ms"].as_i64().expect("the ban ended"));
        assert!(until >= from + 15_000, "a ban lasts at least its 18 s cool-off less scheduling: {ban}");
    }
    assert!(bans[0]["from_ms"].as_u64().unwrap() + 2_000 >= first_429, "the ban began at the first 429: {report:#}");
    let done = report["history"]["done"].as_object().unwrap();
    let per_worker: BTreeMap<String, u64> = done
        .iter()
        .map(|(w, counts)| (w.clone(), counts.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum()))
        .collect();
    let by_record: BTreeMap<String, u64> = outs
        .keys()
        .map(|w| (w.clone(), clips.values().filter(|c| &c.done_worker == w).count() as u64))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(per_worker, by_record, "completions per worker over time add up to the record");
    let page = std::fs::read_to_string(page_dir.join("fleet-report.html")).unwrap();
    assert!(page.contains(r#"<rect class="ban""#), "the ban is shaded");
    for worker in per_worker.keys() {
        assert!(page.contains(worker.as_str()), "{worker} has its chart");
    }
    // A fleet that does not exist is the user's mistake.
    let mut args = os(["report", "--db", &schema.url, "--db-schema", &schema.name, "--fleet", "nosuch"]);
    args.extend(os(["--out"]));
    args.push(page_dir.as_path().into());
    run(&args).expect_code(2);
}

#[test]
fn merging_worker_folders_with_the_fleet_as_arbiter_gives_the_single_machine_folder() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "arbiter");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(0, 4);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);

    // Two workers make the dataset; a single-machine run of the same rows is the reference.
    let (w1, w2) = (tmp.path().join("w1"), tmp.path().join("w2"));
    let a = Running::download(&seeding_args(&server, &schema, &w1, "127.0.0.2", &csv));
    let b = Running::download(&seeding_args(&server, &schema, &w2, "127.0.0.3", &csv));
    let (a_pid, b_pid) = (a.pid(), b.pid());
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);
    let single = tmp.path().join("single");
    let mut args = download_args(&server, &single, &[&csv]);
    args.extend(os(["--encode-jobs", "1"]));
    run(&args).expect_code(0);
    let record = fleet_clips(&schema);
    assert!(record.values().all(|c| c.state == "done"), "{record:?}");

    // A third folder holds another verified copy of one clip with other bytes (as a worker that lost its
    // lease and finished anyway with another ffmpeg would leave): a copy of the single-machine folder whose
    // first clip was remuxed, its journal updated to match, so it verifies.
    let stale = tmp.path().join("stale");
    let cp = std::process::Command::new("cp").arg("-a").arg(&single).arg(&stale).status().unwrap();
    assert!(cp.success());
    let victim = journal_clips(&stale).into_iter().find(|c| c.state == "done").unwrap();
    let path = stale.join(&victim.rel_path);
    let remuxed = path.with_extension("remux.mp4");
    let ff = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&path)
        .args(["-c", "copy", "-map", "0", "-metadata", "comment=another worker's copy"])
        .arg(&remuxed)
        .status()
        .unwrap();
    assert!(ff.success());
    std::fs::rename(&remuxed, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let sha = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(&bytes))
    };
    assert!(record.values().all(|c| c.sha256 != sha), "the remuxed copy differs from every copy of record");
    let conn = rusqlite::Connection::open(journal_path(&stale)).unwrap();
    conn.execute(
        "UPDATE clips SET sha256 = ?1, size_bytes = ?2 WHERE id = ?3",
        rusqlite::params![sha, bytes.len() as i64, victim.id],
    )
    .unwrap();
    drop(conn);

    // Without the arbiter the first source named wins, and the merged folder differs from the reference.
    let plain = tmp.path().join("plain");
    let o = merge(&plain, &[&stale, &w1, &w2], &["--mode", "copy"]);
    o.expect_code(0);
    assert!(o.stderr.contains("different bytes"), "{}", o.stderr);
    assert_eq!(diff(&plain, &single).code, Some(1), "the stale copy won without the arbiter");

    // With it, the copy the fleet recorded wins: the merged folder equals the single-machine run.
    let db = ["--db", schema.url.as_str(), "--db-schema", schema.name.as_str(), "--fleet", "f", "--mode", "copy"];
    let merged = tmp.path().join("merged");
    let o = merge(&merged, &[&stale, &w1, &w2], &db);
    o.expect_code(0);
    let d = diff(&merged, &single);
    assert_eq!(d.code, Some(0), "merged vs single: {}\n{}\n{}", d.stdout, d.stderr, o.stderr);
    assert!(
        o.stderr.contains("fleet f's record decided: 4 clips from the copy it names, 4 other copies set aside, 0"),
        "{}",
        o.stderr
    );
    for row in &rows {
        assert_clip(&merged, row);
    }
    let status = status_json(&merged);
    assert_eq!(status["done"], rows.len() as u64, "{status}");

    // A worker's folder left out: the merge says how many of the fleet's clips are in no source, and whose.
    let ids = workers_by_pid(&schema);
    let (left_out, kept, left_out_pid) = if done_count(&w2) > 0 { (&w2, &w1, b_pid) } else { (&w1, &w2, a_pid) };
    let partial = tmp.path().join("partial");
    let o = merge(&partial, &[kept.as_path()], &db);
    o.expect_code(0);
    let missing = done_count(left_out);
    assert!(missing > 0);
    assert!(
        o.stderr.contains(&format!("{missing} clips done in fleet f are in none of these folders")),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(&ids[&left_out_pid]), "names the worker {}: {}", ids[&left_out_pid], o.stderr);

    // An unknown fleet is the user's mistake: exit 2 before anything is built.
    let o = merge(
        &tmp.path().join("none"),
        &[&w1],
        &["--db", &schema.url, "--db-schema", &schema.name, "--fleet", "nosuch"],
    );
    o.expect_code(2);
    assert!(o.stderr.contains("no fleet `nosuch`"), "{}", o.stderr);
    assert!(!tmp.path().join("none").exists());
}

#[test]
fn a_worker_whose_network_is_down_gives_its_clips_back_uncharged_and_says_so() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "down");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(0, 4);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);

    // Worker A's only egress is a proxy with nothing listening: its network is down. It seeds the fleet,
    // claims clips, reaches nothing, gives them back and stops on --max-wait saying the network is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dead_proxy = format!("http://{dead}");
    let a_out = tmp.path().join("a");
    let mut args = seeding_args(&server, &schema, &a_out, "127.0.0.2", &csv);
    let at = args.iter().position(|a| a == "--source-address").unwrap();
    args.drain(at..at + 2);
    args.retain(|a| a != "--quiet");
    args.extend(os(["--proxy", &dead_proxy, "--down-after", "2", "--down-cooloff", "10m", "--max-wait", "1s"]));
    let o = run(&args);
    o.expect_code(3);
    assert!(o.stderr.contains("the network is down"), "{}", o.stderr);
    assert!(o.stderr.contains("egress down 1 time, "), "{}", o.stderr);
    let status = status_json(&a_out);
    let egress = &status["egresses"][0];
    assert_eq!((egress["outages"].as_u64(), egress["throttle_events"].as_u64()), (Some(1), Some(0)), "{status:#}");
    assert!(egress["outage_signals"].as_u64().unwrap() >= 2, "{status:#}");
    // Nothing charged, nothing held: every clip is pending in the fleet.
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.state.as_str(), clip.attempts), ("pending", 0), "{clip:?}");
    }

    // Worker B's network is fine: it makes every clip, each at its first attempt.
    let b_out = tmp.path().join("b");
    run(&worker_args(&server, &schema, &b_out, "127.0.0.3", &[])).expect_code(0);
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.state.as_str(), clip.attempts), ("done", 0), "{clip:?}");
    }
    assert_eq!(done_count(&b_out), rows.len());
}

#[test]
fn a_worker_killed_while_the_database_is_away_completes_its_clips_from_its_folder_on_restart() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "restart");
    let rows = real_rows(70, 5);
    let relay = PgRelay::start(&url);
    let CutOff { server, worker: first, out, recorded_at_cut: _, _tmp } =
        a_worker_cut_off_after_a_clip(&url, &relay.url(&url), &schema, &rows, &["--lease", "5s"], || relay.cut());
    // Killed with that clip's report still in memory: the fleet never hears of it from this process.
    first.signal(libc::SIGKILL);
    let _ = first.wait(Duration::from_secs(30));
    relay.restore();
    let made_here: BTreeSet<String> =
        journal_clips(&out).into_iter().filter(|c| c.state == "done").map(|c| c.youtube_id).collect();
    let unrecorded: Vec<String> = fleet_clips(&schema)
        .values()
        .filter(|c| c.state != "done")
        .map(|c| c.key.clone())
        .filter(|k| made_here.iter().any(|id| k.starts_with(id.as_str())))
        .collect();
    assert!(!unrecorded.is_empty(), "a clip made here is not in the fleet's record yet");
    let before = requests_by_id(&server);

    // The same folder's next worker takes the clips back as their leases expire, and completes those it
    // already made from the copies it holds: nothing of them is fetched again, nothing is made twice.
    let mut args = worker_args(&server, &schema, &out, "127.0.0.2", &[]);
    args.extend(os(["--lease", "5s"]));
    let second = Running::download(&args);
    let pid = second.pid();
    second.wait(WORKER_LIMIT).expect_code(0);
    let after = requests_by_id(&server);
    for id in &made_here {
        assert_eq!(after.get(id), before.get(id), "{id} was made here already and fetched again");
    }
    let clips = fleet_clips(&schema);
    assert!(clips.values().all(|c| c.state == "done"), "{clips:#?}");
    let second_id = workers_by_pid(&schema)[&pid].clone();
    for key in &unrecorded {
        assert_eq!(clips[key].done_worker, second_id, "{key} completed by the restarted worker");
        let file = out.join(&clips[key].rel_path);
        assert_eq!(sha256_hex(&file), clips[key].sha256, "the record names the copy in the folder");
    }
    assert_eq!(done_count(&out), rows.len());
}

/// A PostgreSQL cluster of this test's own (a free port, a data folder in a temp dir), started by
/// `scripts/test-pg.sh` as the shared one is, so the test can stop and start it under a worker without
/// touching the server the other tests share. Stopped, immediately, when dropped.
struct OwnCluster {
    url: String,
    bin: PathBuf,
    data: PathBuf,
    env: [(&'static str, String); 3],
    _dir: tempfile::TempDir,
}

impl OwnCluster {
    fn start() -> Option<OwnCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|v| v.path().join("bin"))
            .filter(|b| b.join("pg_ctl").exists())
            .max();
        let Some(bin) = bin else {
            skip::missing_tool("PostgreSQL's server (pg_ctl)", "scripts/setup.sh --test installs it");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let env = [
            ("KDL_TEST_PG", String::new()),
            ("KDL_TEST_PG_PORT", port.to_string()),
            ("KDL_TEST_PG_DIR", dir.path().join("pg").to_string_lossy().into_owned()),
        ];
        let data = dir.path().join("pg").join("data");
        let mut cluster = OwnCluster { url: String::new(), bin, data, env, _dir: dir };
        cluster.url = cluster.script();
        Some(cluster)
    }

    /// Runs `scripts/test-pg.sh` for this cluster: starts it unless it answers; returns its URL.
    fn script(&self) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-pg.sh");
        let out = std::process::Command::new(script).envs(self.env.clone()).output().expect("test-pg.sh runs");
        assert!(out.status.success(), "test-pg.sh: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `pg_ctl stop` in `mode` (as the postgres user when we are root, as the script starts it).
    fn stop(&self, mode: &str) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            std::process::Command::new(pg_ctl)
        };
        let out = cmd.arg("-D").arg(&self.data).args(["-m", mode, "-w", "stop"]).output().expect("pg_ctl runs");
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            self.stop("immediate");
        }
    }
}

#[test]
fn postgresql_stopped_and_started_mid_run_loses_nothing() {
    let Some(cluster) = OwnCluster::start() else { return };
    let url = cluster.url.clone();
    let schema = pg::Schema::create(&url, "pgstop");
    let rows = real_rows(80, 5);
    // The lease outlasts the stop. A real shutdown: the server ends every session and refuses new ones until
    // it is started again.
    let CutOff { server: _server, worker, out, _tmp, .. } =
        a_worker_cut_off_after_a_clip(&url, &url, &schema, &rows, &["--lease", "60s", "-v"], || cluster.stop("fast"));
    assert_eq!(cluster.script(), url, "the same server, started again");
    let pid = worker.pid();
    let o = worker.wait(WORKER_LIMIT);
    o.expect_code(0);
    assert!(o.stderr.contains("lost the fleet database"), "{}", o.stderr);
    assert!(o.stderr.contains("the fleet database is back"), "{}", o.stderr);
    assert_done_once(&schema, &rows, &[(workers_by_pid(&schema)[&pid].clone(), out)].into());
    for clip in fleet_clips(&schema).values() {
        assert_eq!((clip.attempts, clip.lease_expiries), (0, 0), "{clip:?}");
    }
    drop(schema);
}

/// A clip's (label, labels, boxes) as a manifest or a journal has them.
type Labels<T> = (T, T, T);

/// The manifest of `out` (written by `manifest`): each clip's labels by (id, start).
fn manifest_labels(out: &Path) -> BTreeMap<(String, String), Labels<serde_json::Value>> {
    run(&[OsString::from("manifest"), "--out".into(), out.into()]).expect_code(0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    manifest["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key =
                (c["youtube_id"].as_str().unwrap().to_string(), format!("{:.3}", c["time_start"].as_f64().unwrap()));
            (key, (c["label"].clone(), c["labels"].clone(), c["boxes"].clone()))
        })
        .collect()
}

/// AVA-Kinetics keyframes (several actions and person boxes per clip) made by two workers through the fleet
/// end with the same labels and boxes, in the fleet's table, the workers' journals and the merged folder's
/// manifest, as a single-machine run of the same rows; `status --db` counts every label. The fleet was
/// seeded by an older kinetics-dl (version 3 of its tables, no labels or boxes): the next worker's seed
/// migrates it and fills them in.
#[test]
fn multi_label_clips_keep_their_labels_and_boxes_in_a_fleet() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "labels");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let ava = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/presets/ava/ava_val_v2.2.csv");
    let (w1, w2) = (tmp.path().join("w1"), tmp.path().join("w2"));

    // A worker that cannot work (no JavaScript runtime) seeds the fleet, gives its clips back and exits 2.
    let no_js = no_js_ytdlp(tmp.path());
    let mut broken = seeding_args(&server, &schema, &tmp.path().join("broken"), "127.0.0.2", &ava);
    broken.extend([OsString::from("--ytdlp"), no_js.into()]);
    run(&broken).expect_code(2);
    let q = |sql: &str| pg::psql(&url, &format!("SET search_path TO {}; {sql}", schema.name));
    let labelled = "SELECT clip_key || ' ' || coalesce(labels::text, '-') || ' ' || coalesce(boxes::text, '-') \
                    FROM clip WHERE fleet = 'f' ORDER BY clip_key";
    let seeded = q(labelled);
    assert!(seeded.contains(r#"["80", "12", "74"]"#), "{seeded}");
    // Now make it the fleet an older kinetics-dl seeded: version 3, without the two columns (nor version 5's
    // learned rate of each throttle domain).
    q("ALTER TABLE clip DROP COLUMN labels, DROP COLUMN boxes;
       ALTER TABLE domain DROP COLUMN rate_per_min, DROP COLUMN rate_since;
       UPDATE schema_version SET version = 3");
    let o = run_strs(&["status", "--db", &url, "--db-schema", &schema.name, "--fleet", "f"]);
    o.expect_code(2);
    assert!(o.stderr.contains("at version 3, this kinetics-dl reads 5"), "{}", o.stderr);

    // Two workers, the first seeding again with this kinetics-dl: the tables go to version 5 and the clips
    // seeded without labels take them. The second starts once they have: a clip claimed before any run
    // brought the annotations again has no labels to give its worker's journal. The first works one clip at
    // a time, so that the second, which never read the annotations, has clips left to claim however slowly
    // it starts (with two at a time the first could take all three while the second was starting).
    let a = Running::download(&seeding(worker_args_j(&server, &schema, &w1, "127.0.0.3", 1, &[]), &ava));
    let filled = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        psql_while_starting(&url, &format!("SET search_path TO {}; {labelled}", schema.name)) == seeded
    });
    assert!(filled, "the first worker's seed gives the clips their labels and boxes back");
    let b = Running::download(&worker_args(&server, &schema, &w2, "127.0.0.4", &[]));
    a.wait(WORKER_LIMIT).expect_code(0);
    b.wait(WORKER_LIMIT).expect_code(0);
    assert_eq!(q("SELECT max(version) FROM schema_version"), "5");
    assert_eq!(q(labelled), seeded, "the labels and boxes are back, as first seeded");
    let record = fleet_clips(&schema);
    assert_eq!(record.len(), 3, "{record:?}");
    assert!(record.values().all(|c| c.state == "done" && c.attempts == 0), "{record:?}");

    // The single-machine run of the same rows is the reference.
    let single = tmp.path().join("single");
    let mut args = download_args(&server, &single, &[&ava]);
    args.extend(os(["--encode-jobs", "1"]));
    run(&args).expect_code(0);
    let reference = manifest_labels(&single);
    let keyframe = &reference[&("avamovie-01".to_string(), "7.000".to_string())];
    assert_eq!(keyframe.1, serde_json::json!(["80", "12", "74"]), "{keyframe:?}");
    assert_eq!(keyframe.2.as_array().map(Vec::len), Some(4), "{keyframe:?}");

    // Each worker's journal has its clips' labels and boxes as the single machine's has them.
    let journal_labels = |out: &Path| -> BTreeMap<String, Labels<Option<String>>> {
        let conn = rusqlite::Connection::open(journal_path(out)).unwrap();
        let mut stmt = conn.prepare("SELECT rel_path, label, labels, boxes FROM clips WHERE state = 'done'").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let single_journal = journal_labels(&single);
    let mut workers_journal = journal_labels(&w1);
    workers_journal.extend(journal_labels(&w2));
    assert_eq!(workers_journal, single_journal);
    assert!(done_count(&w1) > 0 && done_count(&w2) > 0, "both workers made clips");

    // `merge --db`: the merged folder's manifest and journal say what the single machine's say.
    let merged = tmp.path().join("merged");
    let db = ["--db", url.as_str(), "--db-schema", schema.name.as_str(), "--fleet", "f", "--mode", "copy"];
    merge(&merged, &[&w1, &w2], &db).expect_code(0);
    assert_eq!(journal_labels(&merged), single_journal);
    assert_eq!(manifest_labels(&merged), reference);
    let d = diff(&merged, &single);
    assert_eq!(d.code, Some(0), "merged vs single: {}\n{}", d.stdout, d.stderr);

    // `status --db` counts every label of a clip, as its classes.
    let status = fleet_status(&schema);
    let classes: BTreeMap<String, (u64, u64)> = status["classes"]
        .as_object()
        .unwrap_or_else(|| panic!("classes in {status:#}"))
        .iter()
        .map(|(k, v)| (k.clone(), (v["clips"].as_u64().unwrap(), v["done"].as_u64().unwrap())))
        .collect();
    let want: BTreeMap<String, (u64, u64)> =
        ["11", "12", "17", "74", "80"].iter().map(|c| (c.to_string(), (1, 1))).collect();
    assert_eq!(classes, want, "{status:#}");
    let o = run_strs(&["status", "--db", &url, "--db-schema", &schema.name, "--fleet", "f"]);
    o.expect_code(0);
    assert!(o.stdout.contains("classes          5 (every label of a clip counted; fewest done: 1"), "{}", o.stdout);
    // ...and so does its report page.
    let page = tmp.path().join("report");
    std::fs::create_dir(&page).unwrap();
    let o = run_strs(&[
        "report",
        "--db",
        &url,
        "--db-schema",
        &schema.name,
        "--fleet",
        "f",
        "--out",
        page.to_str().unwrap(),
    ]);
    o.expect_code(0);
    let html = std::fs::read_to_string(page.join("fleet-report.html")).unwrap();
    assert!(html.contains("5 classes, fewest done first"), "{html}");
}

/// Runs `openssl` with `args` in `dir`; panics with its message.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`NAME.pem`, `NAME.key`) in `dir`.
fn test_ca(dir: &Path, name: &str) {
    let (pem, key, subject) = (format!("{name}.pem"), format!("{name}.key"), format!("/CN=kinetics-dl test {name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// The database over TLS (`--db ...?sslmode=verify-full&sslrootcert=ca.pem`), against a server of the test's
/// own with `ssl = on` and a certificate for 127.0.0.1 signed by a CA made here. A role the server admits only
/// over TLS shows that TLS was used: with the right CA a worker makes its clips; another CA, or another host
/// name, is refused before anything is claimed (exit 2, saying why, no password shown); `verify-ca` does not
/// check the name; `require` and `prefer` encrypt without checking; `sslmode=disable` still connects.
#[test]
fn the_fleet_database_over_tls_checks_the_servers_certificate() {
    let Some(cluster) = OwnCluster::start() else { return };
    let url = cluster.url.clone();
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    // Certificates, in a folder the server's user can read: the CA, a server certificate for 127.0.0.1 only,
    // and another CA that signed nothing here.
    let tls = cluster.data.parent().unwrap().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    test_ca(&tls, "ca");
    test_ca(&tls, "other-ca");
    openssl(
        &tls,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        tls.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &tls,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    if unsafe { libc::geteuid() } == 0 {
        let status = std::process::Command::new("chown").args(["-R", "postgres:"]).arg(&tls).status().unwrap();
        assert!(status.success());
    }
    std::fs::set_permissions(tls.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // TLS on; role kdl_tls only over TLS (pg_hba.conf's first matching line decides).
    let hba = cluster.data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    let tls_only = "hostssl all kdl_tls 127.0.0.1/32 trust\nhostnossl all kdl_tls 127.0.0.1/32 reject\n";
    std::fs::write(&hba, format!("{tls_only}{rules}")).unwrap();
    let sql = |s: &str| pg::psql(&url, s);
    sql(&format!("ALTER SYSTEM SET ssl_cert_file = '{}'", tls.join("server.crt").display()));
    sql(&format!("ALTER SYSTEM SET ssl_key_file = '{}'", tls.join("server.key").display()));
    sql("ALTER SYSTEM SET ssl = on");
    sql("CREATE ROLE kdl_tls LOGIN SUPERUSER");
    sql("SELECT pg_reload_conf()");
    // The reload is asynchronous: wait (bounded) until a new session sees it.
    let on = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        psql_while_starting(&url, "SHOW ssl") == "on"
    });
    assert!(on, "ssl = on after the reload");

    let ca = tls.join("ca.pem");
    // `localhost` is reached at 127.0.0.1 only (`hostaddr`), so the name, not the address, is what differs.
    let db = |host: &str, query: &str| {
        let addr = if host == "localhost" { "hostaddr=127.0.0.1&" } else { "" };
        format!("postgres://kdl_tls:s3cret-pw@{host}:{port}/postgres?{addr}{query}")
    };
    let verify_full = db("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let schema = pg::Schema::create(&url, "tls");
    let server = server(config());
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(90, 3);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let worker = |db_url: &str, out: &Path| {
        let mut args = os(["download", "--db", db_url, "--db-schema", &schema.name, "--fleet", "f", "--out"]);
        args.push(out.into());
        args.extend(os(["--url-template", &server.watch_url_template(), "--retry-delay", "0s", "-j", "2"]));
        args.extend(os(["--encode-jobs", "1", "--source-address", "127.0.0.2", "--quiet", "--annotations"]));
        args.push(csv.clone().into());
        args
    };

    // Another CA, another host name: refused before the fleet is touched, saying why, the password hidden.
    let other_ca = db("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", tls.join("other-ca.pem").display()));
    let other_host = db("localhost", &format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    for (db_url, says) in [
        (&other_ca, "TLS certificate is not signed by a CA it trusts (sslmode=verify-full, CA from"),
        (&other_host, "TLS certificate is for 127.0.0.1, not for the host name connected to (localhost)"),
    ] {
        let out = tmp.path().join("refused");
        let o = run(&worker(db_url, &out));
        o.expect_code(2);
        assert!(o.stderr.contains(says), "{db_url}: {}", o.stderr);
        assert!(o.stderr.contains("kdl_tls:***@"), "{}", o.stderr);
        assert!(!o.stderr.contains("s3cret-pw") && !o.stdout.contains("s3cret-pw"), "{}", o.stderr);
        assert!(clip_files(&out).is_empty(), "nothing made");
    }
    assert_eq!(sql(&format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{}'", schema.name)), "0");

    // The right CA: the worker makes every clip, over TLS (its role is refused without).
    let out = tmp.path().join("w");
    let w = Running::download(&worker(&verify_full, &out));
    let pid = w.pid();
    w.wait(WORKER_LIMIT).expect_code(0);
    assert_done_once(&schema, &rows, &[(workers_by_pid(&schema)[&pid].clone(), out.clone())].into());
    let journal_runs = rusqlite::Connection::open(journal_path(&out))
        .unwrap()
        .query_row("SELECT group_concat(command, ' ') FROM runs", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert!(!journal_runs.contains("s3cret-pw") && journal_runs.contains("kdl_tls:***@"), "{journal_runs}");

    // `status --db` with each mode: which connect, and which are refused.
    let status =
        |db_url: &str| run_strs(&["status", "--db", db_url, "--db-schema", &schema.name, "--fleet", "f", "--json"]);
    for query in [
        format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        "sslmode=require".to_string(),
        "sslmode=prefer".to_string(),
        String::new(),
    ] {
        // verify-ca checks the chain, not the name: `localhost` passes.
        let o = status(&db("localhost", &query));
        o.expect_code(0);
        assert!(o.stdout.contains("\"done\": 3"), "{query}: {}", o.stdout);
    }
    let o = status(&db("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", tls.join("other-ca.pem").display())));
    o.expect_code(2);
    assert!(o.stderr.contains("not signed by a CA it trusts (sslmode=verify-ca"), "{}", o.stderr);
    // Without TLS: the TLS-only role is turned away by the server; any other role connects in the clear.
    let o = status(&db("127.0.0.1", "sslmode=disable"));
    o.expect_code(2);
    assert!(o.stderr.contains("no encryption"), "{}", o.stderr);
    let plain = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let o = status(&plain);
    o.expect_code(0);
    assert!(o.stdout.contains("\"done\": 3"), "{}", o.stdout);
    drop(schema);
}
