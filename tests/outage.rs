//! End-to-end tests of network outages (issue 13): an egress that reaches nothing on several clips in a row
//! is down (`egress_down`), its clips wait uncharged for a probe to get through, and `--max-wait` ends a run
//! whose every egress is down with exit 3 and a line saying the network is down.
//!
//! "Down" is a loopback port with nothing listening: yt-dlp's connection is refused, as with a dead host.

mod common;

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Length of the served video: short to encode, long enough for real 10 s windows.
const VIDEO: f64 = 40.0;

/// `n` real K400 rows whose window lies inside the 40 s video.
fn short_rows(n: usize) -> Vec<Row> {
    let rows: Vec<Row> = real_rows(0, 400).into_iter().filter(|r| r.end <= VIDEO).take(n).collect();
    assert_eq!(rows.len(), n, "the real file has enough rows inside {VIDEO} s");
    rows
}

/// A loopback address nothing listens on (bound once by the OS for a free port, then let go).
fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().unwrap()
}

/// `download` of `rows` into a fresh OUT from the watch pages at `addr`, with `-j jobs` and `extra`.
fn download(tmp: &Path, rows: &[Row], addr: SocketAddr, jobs: usize, extra: &[&str]) -> (PathBuf, Vec<OsString>) {
    let out = tmp.join("out");
    let csv = tmp.join("rows.csv");
    write_csv(&csv, rows);
    let mut args = os(["download", "--out"]);
    args.push(out.clone().into());
    args.push("--annotations".into());
    args.push(csv.into());
    let template = format!("http://{addr}/watch?v={{youtube_id}}");
    args.extend(os(["--url-template", &template, "--retry-delay", "0s", "-j", &jobs.to_string()]));
    args.extend(extra.iter().map(OsString::from));
    (out, args)
}

/// The journal's throttle events of one category: (egress, cool-off in seconds if one started).
fn events(out: &Path, category: &str) -> Vec<(String, Option<f64>)> {
    let conn = open_journal(out).expect("the journal opens");
    let mut stmt =
        conn.prepare("SELECT egress, cooloff_s FROM throttle_events WHERE category = ?1 ORDER BY at_ms").unwrap();
    stmt.query_map([category], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn no_network_at_all_ends_on_max_wait_saying_so_with_every_clip_pending_and_nothing_charged() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = short_rows(8);
    let (out, args) = download(
        tmp.path(),
        &rows,
        dead_addr(),
        2,
        &["--down-after", "2", "--down-cooloff", "30s", "--max-wait", "1s"],
    );
    let o = run(&args);
    o.expect_code(3);
    assert!(o.stderr.contains("the network is down"), "says why it stopped:\n{}", o.stderr);
    assert!(o.stderr.contains("rerun after "), "says when to rerun:\n{}", o.stderr);

    let clips = journal_clips(&out);
    assert_eq!(clips.len(), rows.len());
    assert!(clips.iter().all(|c| c.state == "pending"), "every clip waits for the network: {clips:#?}");
    let tried = attempts(&out);
    assert!(!tried.is_empty() && tried.len() < rows.len(), "only a handful were tried: {tried:#?}");
    assert!(tried.iter().all(|a| a.outcome == "throttled"), "no attempt charged: {tried:#?}");
    let down = events(&out, "egress_down");
    assert_eq!(down.len(), tried.len(), "every give-back is on record: {down:?}");
    assert_eq!(down.iter().filter(|(_, cooloff)| cooloff.is_some()).count(), 1, "one outage opened: {down:?}");
    let status = status_json(&out);
    assert_eq!(status["failed"].as_object().map(|f| f.len()), Some(0), "{status:#}");
}

#[test]
fn a_source_down_longer_than_the_retry_schedule_then_up_finishes_every_clip_uncharged() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = short_rows(4);
    // Encodes the videos (cached) now, so that the server comes up at once later.
    drop(server(config().with_duration(VIDEO)));
    let addr = dead_addr();
    let (out, args) = download(tmp.path(), &rows, addr, 2, &["--down-after", "2", "--down-cooloff", "1s"]);
    let mut running = Running::download(&args);
    // Down through at least two probes: with `--retry-delay 0s` a clip's whole retry schedule (5 attempts)
    // would be spent long before.
    let opened = || events(&out, "egress_down").iter().filter(|(_, c)| c.is_some()).count();
    running.wait_for(Duration::from_secs(120), "the egress is down and probed twice", || {
        journal_path(&out).exists() && opened() >= 3
    });
    let _source = kinetics_testsrc::spawn(config().with_duration(VIDEO), addr).expect("the source comes up");
    let o = running.wait(Duration::from_secs(300));
    o.expect_code(0);

    let clips = journal_clips(&out);
    assert!(clips.iter().all(|c| c.state == "done"), "every clip done: {clips:#?}");
    let tried = attempts(&out);
    let charged: Vec<_> = tried.iter().filter(|a| a.outcome != "throttled" && a.outcome != "done").collect();
    assert!(charged.is_empty(), "no attempt charged for the outage: {charged:#?}");
    assert!(tried.iter().filter(|a| a.outcome == "throttled").count() >= 3, "{tried:#?}");
}
