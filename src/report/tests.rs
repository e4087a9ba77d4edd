//! Unit tests of the report's numbers and of the page's formatting helpers.

use super::data::compute;
use super::format::{fmt_bytes, fmt_secs};
use super::html::render;
use super::svg::{esc, fmt_num, fmt_utc};
use crate::journal::read::{AttemptRow, ClipRow, RunRow, ThrottleEvent};

fn clip(label: &str, split: &str, state: &str, category: Option<&str>, times: Option<(f64, f64)>) -> ClipRow {
    ClipRow {
        youtube_id: format!("id{label}{state}"),
        label: Some(label.into()),
        split: Some(split.into()),
        rel_path: format!("{split}/{label}/x.mp4"),
        state: state.into(),
        category: category.map(String::from),
        download_s: times.map(|t| t.0),
        encode_s: times.map(|t| t.1),
        size_bytes: (state == "done").then_some(1000),
        bytes_fetched: Some(if state == "done" { 1500 } else { 200 }),
        ..ClipRow::default()
    }
}

fn attempt(run_id: i64, finished_ms: i64, outcome: &str) -> AttemptRow {
    AttemptRow { run_id, started_ms: finished_ms - 1000, finished_ms, outcome: outcome.into() }
}

fn run(id: i64, started_ms: i64, finished_ms: Option<i64>) -> RunRow {
    RunRow {
        id,
        started_ms,
        finished_ms,
        command: "download".into(),
        settings: serde_json::json!({"max_height": 360, "trim": "exact", "ytdlp_mode": "api"}),
        ytdlp_version: Some("2026.10.26".into()),
        ffmpeg_version: Some("ffmpeg version 5.1".into()),
        exit_code: Some(3),
    }
}

fn sample() -> (Vec<ClipRow>, Vec<AttemptRow>, Vec<RunRow>) {
    let clips = vec![
        clip("abseiling", "train", "done", None, Some((4.0, 1.0))),
        clip("abseiling", "train", "done", None, Some((2.0, 3.0))),
        clip("abseiling", "validate", "failed", Some("unavailable"), None),
        clip("air drumming", "validate", "done", None, Some((6.0, 1.0))),
        clip("air drumming", "validate", "failed", Some("unavailable"), None),
        clip("air drumming", "validate", "failed", Some("private"), None),
        clip("zumba", "validate", "pending", None, None),
        clip("zumba", "test", "pending", None, None),
    ];
    // Run 1 lasted 100 s; run 2 never finished and counts until its last attempt (50 s); the hour between
    // them does not count.
    let attempts = vec![
        attempt(1, 10_000, "done"),
        attempt(1, 20_000, "done"),
        attempt(1, 30_000, "failed"),
        attempt(2, 3_700_000 + 50_000, "done"),
        attempt(2, 3_700_000 + 40_000, "retry"),
    ];
    (clips, attempts, vec![run(1, 0, Some(100_000)), run(2, 3_700_000, None)])
}

#[test]
fn counts_failures_and_classes() {
    let (clips, attempts, runs) = sample();
    let d = compute(&clips, &attempts, runs, None);
    assert_eq!((d.totals.total, d.totals.done, d.totals.failed, d.totals.pending, d.totals.missing), (8, 3, 3, 2, 5));
    let splits: Vec<_> = d.splits.iter().map(|s| (s.split.as_str(), s.tally.done, s.tally.total)).collect();
    assert_eq!(splits, [("train", 2, 2), ("validate", 1, 5), ("test", 0, 1)]);
    let failures: Vec<_> = d.failures.iter().map(|f| (f.category.as_str(), f.count)).collect();
    assert_eq!(failures, [("unavailable", 2), ("private", 1)]);
    assert!((d.failures[0].share_of_failed - 2.0 / 3.0).abs() < 1e-9);
    assert!((d.failures[0].share_of_total - 0.25).abs() < 1e-9);
    let classes: Vec<_> = d.classes.rows.iter().map(|r| (r.label.as_str(), r.tally.done)).collect();
    assert_eq!(classes, [("zumba", 0), ("air drumming", 1), ("abseiling", 2)], "worst coverage first");
    assert_eq!(
        (d.classes.count, d.classes.min_done, d.classes.min_done_classes.clone()),
        (3, 0, vec!["zumba".to_string()])
    );
    assert_eq!(d.classes.median_done, 1.0);
}

/// A clip with several labels (AudioSet, AVA-Kinetics) counts once in each of its classes; the totals and the
/// splits still count it once.
#[test]
fn a_clip_with_several_labels_counts_in_each_of_its_classes() {
    let multi = |labels: &[&str], state: &str| ClipRow {
        label: Some(labels[0].into()),
        extra_labels: labels[1..].iter().map(|l| l.to_string()).collect(),
        ..clip(labels[0], "eval", state, (state == "failed").then_some("unavailable"), None)
    };
    let clips = vec![
        multi(&["Speech", "Music"], "done"),
        multi(&["Animal"], "done"),
        multi(&["Music", "Male speech, man speaking"], "failed"),
        // A label twice in one clip counts once; an empty one not at all.
        multi(&["Dog", "Bark", "Dog", ""], "pending"),
        ClipRow { label: None, ..clip("x", "eval", "done", None, None) },
    ];
    let d = compute(&clips, &[], vec![], None);
    assert_eq!((d.totals.total, d.totals.done, d.totals.failed, d.totals.pending), (5, 3, 1, 1));
    let splits: Vec<_> = d.splits.iter().map(|s| (s.split.as_str(), s.tally.total)).collect();
    assert_eq!(splits, [("eval", 5)]);
    let rows: Vec<_> = (d.classes.rows.iter())
        .map(|r| (r.label.as_str(), r.tally.total, r.tally.done, r.tally.failed, r.tally.pending, r.tally.missing))
        .collect();
    assert_eq!(
        rows,
        [
            ("Bark", 1, 0, 0, 1, 1),
            ("Dog", 1, 0, 0, 1, 1),
            ("Male speech, man speaking", 1, 0, 1, 0, 1),
            ("Music", 2, 1, 1, 0, 1),
            ("Animal", 1, 1, 0, 0, 0),
            ("Speech", 1, 1, 0, 0, 0),
        ],
        "worst coverage first, then fewest done, then by name"
    );
    assert_eq!((d.classes.count, d.classes.multi_label_clips, d.classes.min_done), (6, 3, 0));
    assert_eq!(d.classes.min_done_classes, ["Bark", "Dog", "Male speech, man speaking"]);
    assert_eq!(d.classes.median_done, 0.5);
    let json = serde_json::to_value(&d.classes).unwrap();
    assert_eq!(
        json["rows"][3],
        serde_json::json!({"label": "Music", "total": 2, "done": 1, "failed": 1, "pending": 0, "missing": 1, "coverage": 0.5})
    );
}

#[test]
fn timings_phases_bytes_and_projection() {
    let (clips, attempts, runs) = sample();
    let d = compute(&clips, &attempts, runs, None);
    let dl = d.download.as_ref().unwrap();
    assert_eq!((dl.summary.n, dl.summary.median, dl.summary.max), (3, 4.0, 6.0));
    assert_eq!((d.phases.download_dominated, d.phases.encode_dominated), (2, 1));
    assert!((d.phases.download_share_of_time - 12.0 / 17.0).abs() < 1e-9);
    assert_eq!(
        (d.bytes.fetched, d.bytes.fetched_for_done, d.bytes.kept, d.bytes.average_clip),
        (5500, 4500, 3000, 1000)
    );
    let p = &d.projection;
    assert_eq!((p.remaining, p.done_attempts, p.active_s), (2, 3, 150.0));
    assert!((p.clips_per_hour.unwrap() - 72.0).abs() < 1e-9);
    assert!((p.eta_s.unwrap() - 100.0).abs() < 1e-9);
}

#[test]
fn throughput_buckets_cover_attempts_and_events() {
    let (clips, attempts, runs) = sample();
    let events = vec![ThrottleEvent {
        at_ms: 3_720_000,
        egress: Some("default".into()),
        category: Some("rate_limited".into()),
        cooloff_s: Some(60.0),
    }];
    let d = compute(&clips, &attempts, runs, Some(events));
    let t = &d.throughput;
    assert_eq!(t.bucket_ms, 120_000, "an hour and a bit in at most 48 buckets");
    let sum = |f: fn(&super::data::Bucket) -> u64| t.buckets.iter().map(f).sum::<u64>();
    assert_eq!((sum(|b| b.done), sum(|b| b.failed), sum(|b| b.retried)), (3, 1, 1));
    assert!(t.buckets.len() <= 48 && t.buckets[0].start_ms <= 10_000);
    assert!(t.buckets.last().unwrap().start_ms + t.bucket_ms > 3_750_000);
    assert_eq!(t.throttle_events.as_ref().map(Vec::len), Some(1));
    let empty = compute(&[], &[], vec![], None);
    assert!(empty.throughput.buckets.is_empty() && empty.projection.eta_s.is_none() && empty.download.is_none());
}

#[test]
fn page_is_self_contained_and_escapes_text() {
    let (mut clips, attempts, runs) = sample();
    clips[0].label = Some("<script>alert(1)</script>".into());
    let d = compute(&clips, &attempts, runs, Some(vec![]));
    let page = render(&d, 0);
    for forbidden in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(forbidden), "{forbidden} in the page");
    }
    assert!(page.contains("&lt;script&gt;"));
    for needle in ["Failures by category", "unavailable", "Per-class coverage", "No throttle events", "2026.10.26"] {
        assert!(page.contains(needle), "{needle}");
    }
    // Each run says how yt-dlp ran, in the table of runs as well as the latest run's settings.
    let runs_table = &page[page.find("All runs").expect("the table of runs")..];
    assert!(runs_table.contains("<th>yt-dlp mode</th>") && runs_table.contains("<td>api</td>"), "{runs_table}");
    // An empty journal still renders, without charts that would have nothing in them.
    let empty = render(&compute(&[], &[], vec![], None), 0);
    assert!(!empty.contains("<svg") && empty.contains("no clips yet"));
}

#[test]
fn formatting_table() {
    let bytes = [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024 * 1024 * 1024, "5.0 GiB")];
    for (b, want) in bytes {
        assert_eq!(fmt_bytes(b), want);
    }
    let secs = [(4.24, "4.2 s"), (600.0, "10 min"), (3.5 * 3600.0, "3 h 30 min"), (2.0 * 86_400.0 + 7200.0, "2 d 2 h")];
    for (s, want) in secs {
        assert_eq!(fmt_secs(s), want);
    }
    let nums = [(0.0, "0"), (2.5, "2.5"), (0.25, "0.25"), (12_000.0, "12k"), (15.0, "15")];
    for (v, want) in nums {
        assert_eq!(fmt_num(v), want);
    }
    let times =
        [(0, "1970-01-01 00:00"), (951_782_400_000, "2000-02-29 00:00"), (1_780_000_000_000, "2026-05-28 20:26")];
    for (ms, want) in times {
        assert_eq!(fmt_utc(ms), want, "{ms}");
    }
    assert_eq!(super::svg::fmt_utc_secs(1_780_000_000_000), "2026-05-28 20:26:40");
    assert_eq!(esc(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
}

/// `gather` sums the journal a clip and an attempt at a time: the numbers `compute` draws from all the rows
/// read at once, on a journal with done, failed and pending clips over two runs.
#[test]
fn gathering_row_by_row_is_computing_from_all_rows() {
    use crate::journal::{Attempt, Done, Failed, Journal, State};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    std::fs::create_dir_all(out.join(crate::journal::STATE_DIR)).unwrap();
    let mut j = Journal::open(&Journal::path_in(out)).unwrap();
    let labels = ["abseiling", "air drumming", "zumba", ""];
    let jobs: Vec<crate::plan::Job> = (0..40)
        .map(|i| {
            let label = labels[i % 4];
            crate::plan::Job {
                key: crate::plan::ClipKey { youtube_id: format!("vid{i:08}"), start_ms: 0, end_ms: 10_000 },
                label: (!label.is_empty()).then(|| label.to_string()),
                split: Some(["train", "validate", "test"][i % 3].into()),
                rel_path: format!("train/{label}/vid{i:08}.mp4").into(),
                rows: 1,
                ..Default::default()
            }
        })
        .collect();
    j.sync_plan(&jobs).unwrap();
    let ids: Vec<i64> = j.clips().unwrap().iter().map(|c| c.id).collect();
    for run in 0..2 {
        let run_id = j.begin_run("download", "{}", "2026.11.23", "ffmpeg 5.1").unwrap();
        for (n, &id) in ids.iter().enumerate().filter(|(n, _)| n % 2 == run) {
            let at = 1_000_000 + (n as i64) * 60_000;
            let outcome = match n % 5 {
                0..=2 => {
                    let cpu = (n % 3 != 0).then_some(crate::cpu::StageCpu {
                        extract_s: 0.4,
                        fetch_s: 0.1 * n as f64,
                        encode_s: 1.0,
                        verify_s: 0.2,
                    });
                    let done = Done {
                        size_bytes: 900 + n as u64,
                        bytes_fetched: 1400 + n as u64,
                        download_s: 1.0 + n as f64 / 7.0,
                        encode_s: 2.0 - n as f64 / 40.0,
                        media_requests: (n % 3) as u64,
                        whole_video: n == 7,
                        source: "youtube".into(),
                        cpu,
                        ..Default::default()
                    };
                    j.record_done(id, &done).unwrap();
                    "done"
                }
                3 => {
                    let f = Failed {
                        state: State::Failed,
                        category: "unavailable",
                        message: "m",
                        stderr_tail: "",
                        attempts: 1,
                        next_attempt_ms: None,
                        bytes_fetched: 30,
                    };
                    j.record_failure(id, &f).unwrap();
                    "failed"
                }
                _ => "retry",
            };
            let a = Attempt {
                clip_id: id,
                run_id,
                started_ms: at - 5_000,
                finished_ms: at,
                outcome,
                category: None,
                message: None,
                bytes_fetched: 10,
                download_s: 1.0,
                encode_s: 1.0,
                egress: "default",
            };
            j.record_attempt(&a).unwrap();
        }
        if run == 0 {
            j.finish_run(run_id, 0).unwrap();
        }
    }
    drop(j);
    let gathered = super::data::gather(out).unwrap();
    let reader = crate::journal::read::Reader::open(out).unwrap();
    let mut computed = compute(
        &reader.clips().unwrap(),
        &reader.attempts().unwrap(),
        reader.runs().unwrap(),
        reader.throttle_events().unwrap(),
    );
    computed.out = out.display().to_string();
    assert_eq!(serde_json::to_value(&gathered).unwrap(), serde_json::to_value(&computed).unwrap());
    assert_eq!((gathered.totals.done, gathered.totals.failed, gathered.totals.pending), (24, 8, 8));
    assert!(gathered.download.is_some() && gathered.projection.done_attempts == 24);
}
