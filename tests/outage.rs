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
use kinetics_testsrc::Behaviour;

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
    try_events(out, category).expect("the journal has its throttle events")
}

/// As [`events`], while the run may still be creating the journal (an error then, not a panic).
fn try_events(out: &Path, category: &str) -> rusqlite::Result<Vec<(String, Option<f64>)>> {
    let events = try_throttle_events(out)?;
    Ok(events.into_iter().filter(|e| e.category == category).map(|e| (e.egress, e.cooloff_s)).collect())
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
    assert!(
        clips.iter().all(|c| c.state == "pending" && c.attempts == 0),
        "every clip waits uncharged for the network: {clips:#?}"
    );
    let tried = attempts(&out);
    assert!(!tried.is_empty() && tried.len() < rows.len(), "only a handful were tried: {tried:#?}");
    assert!(tried.iter().all(|a| a.outcome == "throttled"), "no attempt charged: {tried:#?}");
    let down = events(&out, "egress_down");
    assert_eq!(down.len(), tried.len(), "every give-back is on record: {down:?}");
    assert_eq!(down.iter().filter(|(_, cooloff)| cooloff.is_some()).count(), 1, "one outage opened: {down:?}");
    let status = status_json(&out);
    assert_eq!(status["failed"].as_object().map(|f| f.len()), Some(0), "{status:#}");
    // Outages are on record as outages, not as throttling: one outage, still on when the run stopped, with
    // every clip it gave back.
    let outages = outage_rows(&out);
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0].ended_ms, None, "still down when the run stopped: {outages:?}");
    assert_eq!(outages[0].given_back, tried.len() as i64, "{outages:?}");
    let egress = &status["egresses"][0];
    assert_eq!(egress["outage_signals"].as_u64(), Some(down.len() as u64), "{status:#}");
    assert_eq!(egress["outages"].as_u64(), Some(1), "{status:#}");
    assert!(egress["down_s"].as_f64().unwrap() > 0.0, "down until the run stopped: {status:#}");
    assert_eq!(egress["throttle_events"].as_u64(), Some(0), "{status:#}");
    let line = format!(" in all (reached nothing); {} clips given back, uncharged", down.len());
    assert!(o.stderr.contains("egress down 1 time, ") && o.stderr.contains(&line), "the summary:\n{}", o.stderr);
    assert!(!o.stderr.contains("throttled"), "an outage is not throttling:\n{}", o.stderr);
    // The report draws the outage as a band on the throughput chart, not as throttle markers.
    let page = report_page(&out);
    assert_eq!(page.matches(r#"<rect class="outage""#).count(), 1, "one outage band");
    assert!(page.contains("still down when the run stopped"), "the band says so");
    assert!(!page.contains(r#"<g class="throttle">"#), "no give-back drawn as a throttle event");
}

/// The journal's outages: (egress, started, ended, clips given back).
#[derive(Debug)]
#[allow(dead_code)]
struct Outage {
    egress: String,
    started_ms: i64,
    ended_ms: Option<i64>,
    given_back: i64,
}

fn outage_rows(out: &Path) -> Vec<Outage> {
    let conn = open_journal(out).unwrap();
    let mut stmt = conn.prepare("SELECT egress, started_ms, ended_ms, given_back FROM outages ORDER BY id").unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(Outage { egress: r.get(0)?, started_ms: r.get(1)?, ended_ms: r.get(2)?, given_back: r.get(3)? })
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// `report --out OUT`'s page.
fn report_page(out: &Path) -> String {
    let mut args = os(["report", "--out"]);
    args.push(out.into());
    run(&args).expect_code(0);
    std::fs::read_to_string(out.join("report.html")).expect("report.html")
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
    let opened = || try_events(&out, "egress_down").map_or(0, |e| e.iter().filter(|(_, c)| c.is_some()).count());
    running.wait_for(Duration::from_secs(120), "the egress is down and probed twice", || {
        journal_path(&out).exists() && opened() >= 3
    });
    let _source = kinetics_testsrc::spawn(config().with_duration(VIDEO), addr).expect("the source comes up");
    let o = running.wait(Duration::from_secs(300));
    o.expect_code(0);

    let clips = journal_clips(&out);
    assert!(clips.iter().all(|c| c.state == "done" && c.attempts == 1), "every clip done, uncharged: {clips:#?}");
    let tried = attempts(&out);
    let charged: Vec<_> = tried.iter().filter(|a| a.outcome != "throttled" && a.outcome != "done").collect();
    assert!(charged.is_empty(), "no attempt charged for the outage: {charged:#?}");
    assert!(tried.iter().filter(|a| a.outcome == "throttled").count() >= 3, "{tried:#?}");
    // One outage, from the breaker opening to the probe that got through, holding every give-back; its time
    // is down time, not time cooling off bans.
    let outages = outage_rows(&out);
    assert_eq!(outages.len(), 1, "{outages:?}");
    let given_back = tried.iter().filter(|a| a.outcome == "throttled").count() as i64;
    assert_eq!(outages[0].given_back, given_back, "{outages:?}");
    let ended = outages[0].ended_ms.expect("the outage ended with a probe that got through");
    assert!(ended - outages[0].started_ms >= 2_000, "down through two probes of 1 s and 2 s cool-off: {outages:?}");
    assert!(o.stderr.contains("egress down 1 time, "), "{}", o.stderr);
    assert!(!o.stderr.contains("cooled for"), "an outage is no cooling off a ban:\n{}", o.stderr);
    let status = status_json(&out);
    let down_s = status["egresses"][0]["down_s"].as_f64().unwrap();
    assert!((down_s * 1000.0 - (ended - outages[0].started_ms) as f64).abs() < 1.0, "{status:#}");
    let page = report_page(&out);
    assert_eq!(page.matches(r#"<rect class="outage""#).count(), 1, "one outage band");
    assert!(page.contains("<summary>Outages</summary>"));
}

#[test]
fn with_one_of_two_egresses_down_every_clip_goes_through_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = short_rows(5);
    let source = server(config().with_duration(VIDEO));
    let dead_proxy = format!("http://{}", dead_addr());
    let extra = ["--source-address", "127.0.0.1", "--proxy", &dead_proxy, "--down-after", "2", "--down-cooloff", "10m"];
    let (out, args) = download(tmp.path(), &rows, source.addr, 2, &extra);
    run(&args).expect_code(0);

    let clips = journal_clips(&out);
    assert!(
        clips.iter().all(|c| c.state == "done" && c.attempts == 1),
        "all done at the first charged attempt: {clips:#?}"
    );
    let tried = attempts(&out);
    let (up, down): (Vec<_>, Vec<_>) = tried.iter().partition(|a| a.egress == "127.0.0.1");
    assert!(up.iter().all(|a| a.outcome == "done") && up.len() == rows.len(), "{tried:#?}");
    assert!(
        !down.is_empty() && down.iter().all(|a| a.outcome == "throttled"),
        "the proxy was tried, given back: {tried:#?}"
    );
    let events = events(&out, "egress_down");
    assert!(events.iter().all(|(egress, _)| *egress == dead_proxy), "{events:?}");
    assert_eq!(events.iter().filter(|(_, cooloff)| cooloff.is_some()).count(), 1, "the proxy is down once: {events:?}");
    let outages = outage_rows(&out);
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!((outages[0].egress.as_str(), outages[0].ended_ms), (dead_proxy.as_str(), None), "{outages:?}");
    assert_eq!(outages[0].given_back, down.len() as i64, "{outages:?}");
}

#[test]
fn a_source_cutting_one_video_while_others_succeed_fails_that_clip_and_never_pauses_the_egress() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = short_rows(4);
    let cut = rows[0].id.clone();
    let source = server(config().with_duration(VIDEO).with_behaviour(&cut, Behaviour::Truncate { fraction: 0.5 }));
    let (out, args) = download(tmp.path(), &rows, source.addr, 2, &["--down-after", "2"]);
    let o = run(&args);

    assert!(events(&out, "egress_down").is_empty(), "a broken transfer is no outage:\n{}", o.stderr);
    let tried = attempts(&out);
    assert!(tried.iter().all(|a| a.outcome != "throttled"), "nothing given back: {tried:#?}");
    for clip in journal_clips(&out) {
        if clip.youtube_id == cut {
            // As tests/download.rs: the relay may have had every byte ffmpeg needed; if not, `network`.
            let failed = clip.state == "failed" && clip.category.as_deref() == Some("network") && clip.attempts == 5;
            assert!(failed || clip.state == "done", "{clip:#?}\n{}", o.stderr);
        } else {
            assert_eq!(clip.state, "done", "{clip:#?}");
        }
    }
}
