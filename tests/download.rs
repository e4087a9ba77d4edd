//! End-to-end tests of `kinetics-dl download`: the real binary, the real yt-dlp and ffmpeg, and the local
//! test source serving videos whose frames carry their own numbers.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, TestServer};

/// Checks one done clip on disk against its row: place, duration, and the first and last frame.
#[track_caller]
fn assert_clip(out: &Path, row: &Row) {
    let path = out.join(row.rel_path());
    assert!(path.is_file(), "{} is missing", path.display());
    let media = probe(&path);
    let want = expected_duration(row.start, row.end);
    assert!(
        (media.duration - want).abs() <= DURATION_TOLERANCE,
        "{}: lasts {:.3} s, expected {want:.3} s",
        row.id,
        media.duration
    );
    assert_eq!(frames(&path), expected_frames(row.start, row.end), "{}: first and last frame numbers", row.id);
}

fn failed_by_category(status: &serde_json::Value) -> BTreeMap<String, u64> {
    let failed = status["failed"].as_object().expect("status has failed");
    failed.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

const STATS_COLUMNS: [&str; 14] = [
    "youtube_id",
    "label",
    "split",
    "time_start",
    "time_end",
    "download_s",
    "ffmpeg_s",
    "bytes_fetched",
    "bytes",
    "duration_s",
    "whole_video",
    "format_id",
    "source",
    "path",
];
const FAILED_COLUMNS: [&str; 8] =
    ["youtube_id", "label", "split", "time_start", "time_end", "category", "attempts", "message"];

/// Ids with a scripted behaviour and what a correct run ends with for each: `Ok(whole_video)` for a done
/// clip, `Err((category, attempts))` for a failed one.
fn scripted() -> Vec<(&'static str, Behaviour, Result<bool, (&'static str, i64)>)> {
    vec![
        ("e2e404aaaaa", Behaviour::Status(404), Err(("http_404", 2))),
        ("e2e403aaaaa", Behaviour::Status(403), Err(("http_403", 2))),
        // The taxonomy has no row for 410 Gone: it falls under `other`, retried a bounded number of times.
        ("e2e410aaaaa", Behaviour::Status(410), Err(("other", 3))),
        // An HTML page where a video should be: yt-dlp's generic extractor finds nothing to download.
        ("e2ehtmlaaaa", Behaviour::Html, Err(("unsupported_url", 1))),
        ("e2eflakyaaa", Behaviour::FailThenOk { status: 503, count: 2 }, Ok(false)),
        // A server that ignores Range cannot serve a window: the whole video is fetched and cut locally.
        ("e2enorangea", Behaviour::NoRange, Ok(true)),
        // Bodies cut off halfway: the relay resumes each from where it broke, so the clip is complete.
        ("e2etruncate", Behaviour::Truncate { fraction: 0.5 }, Ok(false)),
        ("e2eslowaaaa", Behaviour::Slow { bytes_per_sec: 400_000 }, Ok(false)),
    ]
}

#[test]
fn end_to_end_real_rows_and_every_behaviour() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = scripted();
    let server = server(script.iter().fold(config(), |c, (id, b, _)| c.with_behaviour(id, *b)));

    let real = real_rows(0, 18);
    let mut done_rows = real.clone();
    // A second window of one video, a fractional window, and one running past the video's end.
    done_rows.push(Row::new(&real[1].label, &real[1].id, 40.0, 50.0));
    done_rows.push(Row::new("fractional", "e2efracaaaa", 17.4, 27.4));
    done_rows.push(Row::new("near the end", "e2eendaaaaa", 55.0, 65.0));
    let mut failed_rows = Vec::new();
    for (id, _, want) in &script {
        let row = Row::new("scripted", id, 3.0, 13.0);
        match want {
            Ok(_) => done_rows.push(row),
            Err(_) => failed_rows.push(row),
        }
    }
    let mut rows = done_rows.clone();
    rows.extend(failed_rows.iter().cloned());
    rows.insert(5, real[0].clone()); // a duplicate row: one clip
    let csv = tmp.path().join("annotations.csv");
    write_csv(&csv, &rows);

    let args = download_args(&server, &out, &[&csv]);
    let o = run(&args);
    // `other` (the 410) is worth a rerun, so the run says clips remain.
    o.expect_code(3);
    let planned = done_rows.len() + failed_rows.len();
    assert!(
        o.stderr.contains(&format!("{planned} clips planned from {} rows (1 duplicate rows merged)", rows.len())),
        "{}",
        o.stderr
    );

    for row in &done_rows {
        assert_clip(&out, row);
    }
    let mut on_disk: Vec<String> =
        clip_files(&out).iter().map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned()).collect();
    let mut want_paths: Vec<String> = done_rows.iter().map(Row::rel_path).collect();
    on_disk.sort();
    want_paths.sort();
    assert_eq!(on_disk, want_paths, "exactly one file per done clip, nothing for failed ones");

    let stats = read_csv(&out.join("stats.csv"));
    assert_eq!(stats.headers, STATS_COLUMNS);
    assert_eq!(stats.rows.len(), done_rows.len());
    for row in &done_rows {
        let line = stats
            .rows
            .iter()
            .find(|r| r["path"] == row.rel_path())
            .unwrap_or_else(|| panic!("stats.csv has {}", row.rel_path()));
        assert_eq!(line["youtube_id"], row.id);
        assert_eq!(line["label"], row.label);
        assert_eq!(line["split"], "validate");
        assert_eq!(line["time_start"], time_text(row.start));
        assert_eq!(line["time_end"], time_text(row.end));
        let whole = script.iter().any(|(id, _, w)| *id == row.id && *w == Ok(true));
        assert_eq!(line["whole_video"], if whole { "1" } else { "0" }, "{}", row.id);
        let size = std::fs::metadata(out.join(row.rel_path())).unwrap().len();
        assert_eq!(line["bytes"], size.to_string(), "{}", row.id);
        let duration: f64 = line["duration_s"].parse().unwrap();
        assert!((duration - expected_duration(row.start, row.end)).abs() <= DURATION_TOLERANCE, "{line:?}");
        let fetched: u64 = line["bytes_fetched"].parse().unwrap();
        let video = server.video_len(&row.id);
        if whole {
            assert_eq!(fetched, video, "the fallback fetched the whole video once");
        } else {
            // Clip-only: a 10 s window of a 60 s video must not cost most of the video.
            assert!(fetched > 0 && fetched < video * 6 / 10, "{}: fetched {fetched} of {video} bytes", row.id);
        }
    }

    let failed = read_csv(&out.join("failed.csv"));
    assert_eq!(failed.headers, FAILED_COLUMNS);
    assert_eq!(failed.rows.len(), failed_rows.len());
    let requests = requests_by_id(&server);
    for (id, _, want) in &script {
        let Err((category, attempts)) = want else { continue };
        let line = failed.for_id(id);
        assert_eq!(line.len(), 1, "{id} in failed.csv");
        assert_eq!(line[0]["category"], *category, "{id}: {:?}", line[0]);
        assert_eq!(line[0]["attempts"], attempts.to_string(), "{id}");
        assert!(!line[0]["message"].is_empty(), "{id} has a message");
        // Every attempt is one yt-dlp extraction, which is one request that fails.
        assert_eq!(requests.get(*id).copied(), Some(*attempts as u64), "{id}: requests");
    }

    let status = status_json(&out);
    assert_eq!(status["total"], planned as u64);
    assert_eq!(status["done"], done_rows.len() as u64);
    assert_eq!(status["pending"], 0);
    let want_failed: BTreeMap<String, u64> = script
        .iter()
        .filter_map(|(_, _, w)| w.err())
        .fold(BTreeMap::new(), |mut m, (c, _)| {
            *m.entry(c.to_string()).or_default() += 1;
            m
        });
    assert_eq!(failed_by_category(&status), want_failed);
    assert_eq!(status["whole_video_fallbacks"], 1);
    let on_disk_bytes: u64 = clip_files(&out).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(status["bytes_on_disk"], on_disk_bytes);
    let stats_fetched: u64 = stats.rows.iter().map(|r| r["bytes_fetched"].parse::<u64>().unwrap()).sum();
    let served = server.wait_idle(Duration::from_secs(30)).expect("the server goes idle").bytes_sent;
    let fetched = status["bytes_fetched"].as_u64().unwrap();
    assert!(fetched >= stats_fetched && fetched <= served, "fetched {fetched}, done clips {stats_fetched}, served {served}");
    assert!(status["last_run"]["ytdlp_version"].as_str().is_some_and(|v| !v.is_empty()), "{status}");
    let dup = journal_clips(&out).into_iter().find(|c| c.youtube_id == real[0].id).unwrap();
    assert_eq!(dup.rows, 2, "the duplicate row is merged into one clip");

    // A rerun retries only what may still work: the retryable failures, never done or permanent clips.
    let before = requests_by_id(&server);
    run(&args).expect_code(3);
    let after = requests_by_id(&server);
    for (id, n) in &before {
        let again = after[id] - n;
        let want = match script.iter().find(|(s, _, _)| s == id).map(|s| s.2) {
            Some(Err(("http_403", n))) | Some(Err(("other", n))) => n as u64,
            _ => 0,
        };
        assert_eq!(again, want, "{id}: requests on the rerun");
    }
    assert_eq!(status_json(&out)["done"], done_rows.len() as u64);
}
