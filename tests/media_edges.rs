//! googlevideo's habits on the default path (the watch page, the DASH pair): media URLs signed for the
//! IP that fetched the page, redirects before media bodies, and bodies that stall without closing.

mod common;

use std::ffi::OsString;
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, ScenarioEntry};

fn watch_args(server: &kinetics_testsrc::TestServer, out: &std::path::Path, csv: &std::path::Path) -> Vec<OsString> {
    let mut args = download_args(server, out, &[csv]);
    let at = args.iter().position(|a| a == "--url-template").expect("download_args sets a template");
    args[at + 1] = server.watch_url_template().into();
    args
}

#[test]
fn signed_and_redirected_media_urls_work_from_each_egress_that_fetched_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(70, 4);
    let mut config = config();
    for (i, row) in rows.iter().enumerate() {
        let entry = ScenarioEntry::default().signed();
        config = config.with_entry(&row.id, if i % 2 == 0 { entry.redirected() } else { entry });
    }
    let server = server(config);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("out");
    let mut args = watch_args(&server, &out, &csv);
    args.extend(os(["--source-address", "127.0.0.2", "--source-address", "127.0.0.3"]));
    run(&args).expect_code(0);
    for row in &rows {
        assert_clip(&out, row);
    }
    let stats = server.wait_idle(Duration::from_secs(30)).expect("the server goes idle");
    // Every media request was signed for the IP it came from: no 403, and both egresses were used.
    let refused: Vec<_> = stats.log.iter().filter(|e| e.status == 403).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let ips: std::collections::BTreeSet<&str> = stats.log.iter().map(|e| e.ip.as_str()).collect();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3"].into());
    // The redirected ids were followed: each had 302s, then media answered 206 after them.
    for row in rows.iter().step_by(2) {
        let log: Vec<_> = stats.log.iter().filter(|e| e.id.as_deref() == Some(&row.id)).collect();
        assert!(log.iter().any(|e| e.status == 302), "{}: no redirect in {log:?}", row.id);
        assert!(log.iter().any(|e| e.status == 206), "{}: no media after the redirect", row.id);
    }
}

#[test]
fn a_body_that_stalls_without_closing_is_retried_not_hung() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(80, 2);
    let stuck = &rows[0].id;
    // Stuck 3 s into the window (media bytes run about evenly with time): the relay needs those bytes.
    let fraction = (rows[0].start + 3.0) / VIDEO_SECS;
    let server = server(config().with_behaviour(stuck, Behaviour::Stall { fraction, count: Some(1) }));
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("out");
    let running = Running::download(&watch_args(&server, &out, &csv));
    // The relay's read timeout (30 s) has to notice the stall; then the stretch is fetched again.
    let output = running.wait(Duration::from_secs(240));
    output.expect_code(0);
    for row in &rows {
        assert_clip(&out, row);
    }
    let stats = server.wait_idle(Duration::from_secs(30)).expect("the server goes idle");
    let mut log: Vec<_> = stats.log.iter().filter(|e| e.id.as_deref() == Some(stuck.as_str())).collect();
    log.sort_by_key(|e| e.time_ms);
    let stalled = log.iter().position(|e| !e.complete).expect("a body stalled");
    let (at, range) = (&log[stalled].path, log[stalled].range.clone());
    assert!(
        log[stalled + 1..].iter().any(|e| &e.path == at && e.complete && e.status == 206),
        "{at} {range:?} fetched again after the stall"
    );
}
