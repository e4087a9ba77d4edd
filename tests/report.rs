//! `report` against a real journal: the numbers, the page's self-containment, and the page as headless
//! Chromium renders it (every chart drawn; a screenshot kept in target/test-artifacts/report.png).

#[path = "common/skip.rs"]
mod skip;

use kinetics_dl::commands;
use kinetics_dl::journal::Journal;
use kinetics_dl::report::{self, ReportOptions};
use rusqlite::params;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CATEGORIES: [&str; 4] = ["unavailable", "private", "http_404", "copyright"];
const LABELS: [&str; 5] =
    ["abseiling", "air drumming", "playing bagpipes", "skiing (not slalom or crosscountry)", "zumba"];
const T0: i64 = 1_780_000_000_000;

/// A journal shaped like a real run: 60 clips over two splits and five classes, two runs, attempts over
/// about two hours, and two throttle events.
fn journal(out: &Path) {
    std::fs::create_dir_all(out.join(".kinetics-dl")).unwrap();
    // The journal makes its schema; the rows go in through SQL of the test's own.
    drop(Journal::open(&Journal::path_in(out)).unwrap());
    let c = rusqlite::Connection::open(Journal::path_in(out)).unwrap();
    let settings = r#"{"max_height":360,"trim":"exact","short_side":null,"fps":null,"no_audio":false,"crf":23,"preset":"veryfast","class_dirs":"underscore","request_size":8388608}"#;
    for (id, start, finish) in [(1, T0, Some(T0 + 3_600_000)), (2, T0 + 5_400_000, None::<i64>)] {
        c.execute(
            "INSERT INTO runs (id, started_ms, finished_ms, command, settings, ytdlp_version, ffmpeg_version, exit_code)
             VALUES (?1, ?2, ?3, 'download', ?4, '2026.10.26', 'ffmpeg version 5.1.8', 3)",
            params![id, start, finish, settings],
        )
        .unwrap();
    }
    for i in 0..60i64 {
        let label = LABELS[(i % 5) as usize];
        let split = if i % 3 == 0 { "train" } else { "validate" };
        // Class 0 does well, "zumba" badly: a visible worst class.
        let state = match i {
            _ if i % 5 == 4 && i % 2 == 0 => "failed",
            _ if i % 7 == 6 => "pending",
            _ if i % 11 == 10 => "failed",
            _ => "done",
        };
        let category = (state == "failed").then(|| CATEGORIES[(i % 4) as usize]);
        let done = state == "done";
        let (dl, enc) = (2.0 + (i % 9) as f64 * 1.5 + if i == 12 { 80.0 } else { 0.0 }, 0.4 + (i % 4) as f64 * 0.3);
        c.execute(
            "INSERT INTO clips (id, youtube_id, start_ms, end_ms, label, split, rel_path, state, category, attempts,
               bytes_fetched, size_bytes, duration_s, download_s, encode_s, whole_video, format_id, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?11, ?12, ?13, ?14, ?15, '18', 'youtube')",
            params![
                i + 1,
                format!("vid{i:08}"),
                i * 1000,
                i * 1000 + 10_000,
                label,
                split,
                format!("{split}/{}/vid{i:08}_{:06}_{:06}.mp4", label.replace(' ', "_"), i, i + 10),
                state,
                category,
                if done { 1_400_000 } else { 90_000 },
                done.then_some(1_000_000 + i * 1000),
                done.then_some(10.0),
                done.then_some(dl),
                done.then_some(enc),
                i == 20,
            ],
        )
        .unwrap();
        let (run, at) = if i < 40 { (1, T0 + 60_000 + i * 80_000) } else { (2, T0 + 5_460_000 + (i - 40) * 60_000) };
        let outcome = if done { "done" } else { "failed" };
        c.execute(
            "INSERT INTO attempts (clip_id, run_id, started_ms, finished_ms, outcome, category, bytes_fetched, egress)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 100, 'default')",
            params![i + 1, run, at - 5000, at, outcome, category],
        )
        .unwrap();
    }
    c.execute_batch(&format!(
        "INSERT INTO throttle_events (run_id, egress, at_ms, category, cooloff_s, wasted) VALUES
           (1, 'default', {}, 'rate_limited', 300.0, 0), (2, 'default', {}, 'bot_check', NULL, 1);",
        T0 + 1_500_000,
        T0 + 5_500_000
    ))
    .unwrap();
}

#[test]
fn numbers_match_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    journal(dir.path());
    let d = report::data::gather(dir.path()).unwrap();
    let t = &d.totals;
    assert_eq!(t.total, 60);
    assert_eq!(t.done + t.failed + t.pending, 60);
    let failed_by_category: u64 = d.failures.iter().map(|f| f.count).sum();
    assert_eq!(failed_by_category, t.failed);
    assert_eq!(d.splits.iter().map(|s| s.split.as_str()).collect::<Vec<_>>(), ["train", "validate"]);
    let worst = &d.classes.rows[0];
    assert!(d.classes.rows.iter().all(|r| r.coverage >= worst.coverage));
    assert_eq!(d.classes.min_done, d.classes.rows.iter().map(|r| r.tally.done).min().unwrap());
    let dl = d.download.as_ref().unwrap();
    assert_eq!(dl.summary.n as u64, t.done);
    assert!(dl.summary.iqm < dl.summary.mean, "the 80 s outlier pulls the mean, not the IQM");
    assert_eq!(d.bytes.kept, (0..60).filter(|i| is_done(*i)).map(|i| 1_000_000 + i as u64 * 1000).sum::<u64>());
    assert_eq!(d.throughput.throttle_events.as_ref().map(Vec::len), Some(2));
    assert_eq!(d.throughput.buckets.iter().map(|b| b.done).sum::<u64>(), t.done);
    // Run 1 lasted an hour; run 2 is unfinished and counts until its last attempt (20 minutes).
    assert_eq!(d.projection.active_s, 3600.0 + 20.0 * 60.0);
    assert!(d.projection.eta_s.is_some() && d.projection.remaining == t.pending);
    assert_eq!(d.runs.len(), 2);
}

fn is_done(i: i64) -> bool {
    !((i % 5 == 4 && i % 2 == 0) || i % 7 == 6 || i % 11 == 10)
}

#[test]
fn journals_without_throttle_events_still_report() {
    let dir = tempfile::tempdir().unwrap();
    journal(dir.path());
    // A journal written before throttle events were recorded.
    let conn = rusqlite::Connection::open(Journal::path_in(dir.path())).unwrap();
    conn.execute_batch("DROP TABLE throttle_events").unwrap();
    drop(conn);
    assert_eq!(
        commands::report::run(&ReportOptions { out: dir.path().to_path_buf(), json: true, fleet: None }).unwrap(),
        0
    );
    let d = report::data::gather(dir.path()).unwrap();
    assert_eq!(d.throughput.throttle_events, None);
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(page.contains("does not record throttle events"));
}

#[test]
fn missing_journal_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let error =
        commands::report::run(&ReportOptions { out: dir.path().to_path_buf(), json: false, fleet: None }).unwrap_err();
    assert_eq!(commands::exit_code(&error), kinetics_dl::exit_codes::USAGE, "{error:#}");
    assert!(format!("{error:#}").starts_with("no journal in "), "{error:#}");
    assert!(!dir.path().join("report.html").exists());
}

#[test]
fn page_renders_in_chromium_with_every_chart_drawn() {
    let dir = tempfile::tempdir().unwrap();
    journal(dir.path());
    assert_eq!(
        commands::report::run(&ReportOptions { out: dir.path().to_path_buf(), json: false, fleet: None }).unwrap(),
        0
    );
    let page_path = dir.path().join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    for forbidden in ["<script", "<link", "src=", "@import", "url(", "http://", "https://"] {
        assert!(!page.contains(forbidden), "the page must open offline: found {forbidden}");
    }
    for needle in ["Failures by category", "unavailable", "zumba", "Throughput over time", "rate_limited", "2026.10.26"]
    {
        assert!(page.contains(needle), "{needle} missing from the page");
    }
    let Some(chromium) = chromium() else {
        skip::missing_tool("chromium (the page was not rendered)", "apt-get install -y chromium");
        return;
    };
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("file://{}", page_path.display());
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&chromium, profile.path(), &["--dump-dom", &url]);
    let charts = charts(&dom);
    assert!(charts.len() >= 8, "expected every section's chart, found {}", charts.len());
    for (i, svg) in charts.iter().enumerate() {
        let marks = ["<rect", "<circle", "<path", "<line"].iter().map(|m| svg.matches(m).count()).sum::<usize>();
        assert!(marks > 0, "chart {i} has nothing drawn: {svg}");
    }
    assert!(dom.contains("class=\"throttle\""), "throttle events are drawn on the time axis");
    let shot_arg = format!("--screenshot={}", shot.display());
    headless(&chromium, profile.path(), &[&shot_arg, "--window-size=1200,3000", "--hide-scrollbars", &url]);
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a blank or broken screenshot ({} bytes)", png.len());
    eprintln!("screenshot: {}", shot.display());
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Runs headless Chromium with the flags that keep it offline and quiet, killed after 90 s.
fn headless(chromium: &Path, profile: &Path, args: &[&str]) -> String {
    let user_data = format!("--user-data-dir={}", profile.display());
    let mut child = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", &user_data])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("failed to start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap().unwrap()
}

/// Every `<svg class="chart …">…</svg>` of a document.
fn charts(dom: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<svg class=\"chart") {
        let end = rest[start..].find("</svg>").map_or(rest.len(), |e| start + e + 6);
        found.push(&rest[start..end]);
        rest = &rest[end..];
    }
    found
}
