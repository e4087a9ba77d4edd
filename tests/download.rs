//! End-to-end tests of `kinetics-dl download`: the real binary, the real yt-dlp and ffmpeg, and the local
//! test source serving videos whose frames carry their own numbers.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use common::*;
use kinetics_testsrc::{Behaviour, TestServer};

fn failed_by_category(status: &serde_json::Value) -> BTreeMap<String, u64> {
    let failed = status["failed"].as_object().expect("status has failed");
    failed.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

const STATS_COLUMNS: [&str; 19] = [
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
    "media_requests",
    "extract_cpu_s",
    "fetch_cpu_s",
    "encode_cpu_s",
    "verify_cpu_s",
];
const FAILED_COLUMNS: [&str; 8] =
    ["youtube_id", "label", "split", "time_start", "time_end", "category", "attempts", "message"];

/// What a correct run ends with for a clip.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Done {
        whole_video: bool,
    },
    Failed {
        category: &'static str,
        attempts: i64,
    },
    /// Either is correct: failed exactly so, or done with a clip that passes every check.
    FailedOrDone {
        category: &'static str,
        attempts: i64,
    },
}

/// Categories that a rerun leaves alone (`Disposition::Permanent`, plus `http_404`).
const PERMANENT: [&str; 3] = ["http_404", "unavailable", "unsupported_url"];

/// Ids with a scripted behaviour and the outcome each must get.
fn scripted() -> Vec<(&'static str, Behaviour, Want)> {
    use Want::*;
    vec![
        ("e2e404aaaaa", Behaviour::Status(404), Failed { category: "http_404", attempts: 2 }),
        ("e2e403aaaaa", Behaviour::Status(403), Failed { category: "http_403", attempts: 2 }),
        // 410 Gone: the video is gone for good, failed at once and never retried.
        ("e2e410aaaaa", Behaviour::Status(410), Failed { category: "unavailable", attempts: 1 }),
        // An HTML page where a video should be: yt-dlp's generic extractor finds nothing to download.
        ("e2ehtmlaaaa", Behaviour::Html, Failed { category: "unsupported_url", attempts: 1 }),
        ("e2eflakyaaa", Behaviour::FailThenOk { status: 503, count: 2 }, Done { whole_video: false }),
        // A server that ignores Range cannot serve a window: the whole video is fetched and cut locally.
        ("e2enorangea", Behaviour::NoRange, Done { whole_video: true }),
        // Every response, whatever its range, stops at half its promised length, so no body ever arrives
        // whole: the relay resumes from each break a few times, then gives up, and the clip fails as a
        // (retryable) network failure after all its attempts. Only when ffmpeg already had every byte it
        // needed may the clip end up done, and then it must be exact. Never `corrupt`, never a bad clip.
        ("e2etruncate", Behaviour::Truncate { fraction: 0.5 }, FailedOrDone { category: "network", attempts: 5 }),
        ("e2eslowaaaa", Behaviour::Slow { bytes_per_sec: 400_000 }, Done { whole_video: false }),
    ]
}

#[test]
fn end_to_end_real_rows_and_every_behaviour() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = scripted();
    let server = server(script.iter().fold(config(), |c, (id, b, _)| c.with_behaviour(id, *b)));

    let real = real_rows(0, 18);
    let mut rows: Vec<(Row, Want)> = real.iter().map(|r| (r.clone(), Want::Done { whole_video: false })).collect();
    // A second window of one video, a fractional window, and one running past the video's end.
    for row in [
        Row::new(&real[1].label, &real[1].id, 40.0, 50.0),
        Row::new("fractional", "e2efracaaaa", 17.4, 27.4),
        Row::new("near the end", "e2eendaaaaa", 55.0, 65.0),
    ] {
        rows.push((row, Want::Done { whole_video: false }));
    }
    rows.extend(script.iter().map(|(id, _, want)| (Row::new("scripted", id, 3.0, 13.0), *want)));
    let mut lines: Vec<Row> = rows.iter().map(|(r, _)| r.clone()).collect();
    lines.insert(5, real[0].clone()); // a duplicate row: one clip
    let csv = tmp.path().join("annotations.csv");
    write_csv(&csv, &lines);

    let args = download_args(&server, &out, &[&csv]);
    let o = run(&args);
    // `http_403` is worth a rerun, so the run says clips remain.
    o.expect_code(3);
    let summary = format!("{} clips planned from {} rows (1 duplicate rows merged)", rows.len(), lines.len());
    assert!(o.stderr.contains(&summary), "{}", o.stderr);

    // Sort the clips by how they ended, checking each against what it had to become.
    let failed = read_csv(&out.join("failed.csv"));
    assert_eq!(failed.headers, FAILED_COLUMNS);
    let journal = journal_clips(&out);
    let requests = requests_by_id(&server);
    let (mut done, mut failed_ids) = (Vec::new(), BTreeMap::<&str, &str>::new());
    for (row, want) in &rows {
        let clip = journal.iter().find(|c| c.youtube_id == row.id && c.start_ms == (row.start * 1000.0) as i64);
        let clip = clip.unwrap_or_else(|| panic!("{} is in the journal", row.id));
        let failure = failed.for_id(&row.id);
        match (want, clip.state.as_str()) {
            (Want::Done { whole_video }, "done") => done.push((row.clone(), *whole_video)),
            (Want::FailedOrDone { .. }, "done") => done.push((row.clone(), false)),
            (Want::Failed { category, attempts } | Want::FailedOrDone { category, attempts }, "failed") => {
                assert_eq!(failure.len(), 1, "{} in failed.csv", row.id);
                assert_eq!(failure[0]["category"], *category, "{}: {:?}", row.id, failure[0]);
                assert_eq!(failure[0]["attempts"], attempts.to_string(), "{}", row.id);
                assert!(!failure[0]["message"].is_empty(), "{} has a message", row.id);
                if matches!(want, Want::Failed { .. }) {
                    // These fail at extraction: every attempt is one yt-dlp request that fails.
                    assert_eq!(requests.get(&row.id).copied(), Some(*attempts as u64), "{}: requests", row.id);
                }
                failed_ids.insert(&row.id, category);
            }
            (want, state) => panic!("{}: {state} ({failure:?}), expected {want:?}", row.id),
        }
    }
    assert_eq!(failed.rows.len(), failed_ids.len());

    for (row, _) in &done {
        assert_clip(&out, row);
    }
    let mut on_disk: Vec<String> =
        clip_files(&out).iter().map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned()).collect();
    let mut want_paths: Vec<String> = done.iter().map(|(r, _)| r.rel_path()).collect();
    on_disk.sort();
    want_paths.sort();
    assert_eq!(on_disk, want_paths, "exactly one file per done clip, nothing for failed ones");

    let stats = read_csv(&out.join("stats.csv"));
    assert_eq!(stats.headers, STATS_COLUMNS);
    assert_eq!(stats.rows.len(), done.len());
    for (row, whole) in &done {
        let line = stats.rows.iter().find(|r| r["path"] == row.rel_path());
        let line = line.unwrap_or_else(|| panic!("stats.csv has {}", row.rel_path()));
        assert_eq!(line["youtube_id"], row.id);
        assert_eq!(line["label"], row.label);
        assert_eq!(line["split"], "validate");
        assert_eq!(line["time_start"], time_text(row.start));
        assert_eq!(line["time_end"], time_text(row.end));
        assert_eq!(line["whole_video"], if *whole { "1" } else { "0" }, "{}", row.id);
        let size = std::fs::metadata(out.join(row.rel_path())).unwrap().len();
        assert_eq!(line["bytes"], size.to_string(), "{}", row.id);
        let duration: f64 = line["duration_s"].parse().unwrap();
        assert!((duration - expected_duration(row.start, row.end)).abs() <= DURATION_TOLERANCE, "{line:?}");
        let fetched: u64 = line["bytes_fetched"].parse().unwrap();
        let video = server.video_len(&row.id);
        if *whole {
            // The default format choice is the DASH pair: the fallback fetched both tracks whole, once.
            let dash = server.dash_media(&row.id);
            let pair = dash.video.len + dash.audio.as_ref().expect("the test video has audio").len;
            assert_eq!(line["format_id"], "133+140", "{}", row.id);
            // Plus what each track's first (ranged) request read before its 200 showed that Range is ignored.
            assert!(
                fetched >= pair && fetched <= pair + 2 * 64 * 1024,
                "{}: the fallback fetched {fetched} B; the whole pair once is {pair} B",
                row.id
            );
        } else {
            // Clip-only: a 10 s window of a 60 s video must not cost most of the video.
            assert!(fetched > 0 && fetched < video * 6 / 10, "{}: fetched {fetched} of {video} bytes", row.id);
            // The DASH pair: at least one request per track went through the relay.
            let requests: u64 = line["media_requests"].parse().unwrap();
            assert!(requests >= 2, "{}: {requests} media requests", row.id);
        }
    }

    let status = status_json(&out);
    assert_eq!(status["total"], rows.len() as u64);
    assert_eq!(status["done"], done.len() as u64);
    assert_eq!(status["pending"], 0);
    let want_failed = failed_ids.values().fold(BTreeMap::new(), |mut m, c| {
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
    assert!(
        fetched >= stats_fetched && fetched <= served,
        "fetched {fetched}, done clips {stats_fetched}, served {served}"
    );
    assert!(status["last_run"]["ytdlp_version"].as_str().is_some_and(|v| !v.is_empty()), "{status}");
    assert_cpu_recorded(&out, &stats, &status, &o.stderr);
    let dup = journal.iter().find(|c| c.youtube_id == real[0].id).unwrap();
    assert_eq!(dup.rows, 2, "the duplicate row is merged into one clip");

    // A rerun retries only what may still work: the retryable failures, never done or permanent clips.
    let before = requests_by_id(&server);
    run(&args).expect_code(3);
    let after = requests_by_id(&server);
    for (id, n) in &before {
        let again = after[id] - n;
        match failed_ids.get(id.as_str()) {
            Some(c) if PERMANENT.contains(c) => assert_eq!(again, 0, "{id}: failed for good"),
            Some(_) => assert!(again > 0, "{id}: a retryable failure is tried again"),
            None => assert_eq!(again, 0, "{id}: done, not fetched again"),
        }
    }
    assert!(status_json(&out)["done"].as_u64().unwrap() >= done.len() as u64);
}

/// Every done clip has CPU for each stage, plausible against its wall times, and `status --json`, the
/// report and the end summary show CPU per clip by stage over exactly those clips.
fn assert_cpu_recorded(out: &Path, stats: &Table, status: &serde_json::Value, summary: &str) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // stats.csv rounds to the millisecond.
    let slack = 0.002;
    let mut totals = Vec::new();
    for line in &stats.rows {
        let get = |k: &str| line[k].parse::<f64>().unwrap_or_else(|e| panic!("{k} of {line:?}: {e}"));
        let (extract, fetch, encode, verify) =
            (get("extract_cpu_s"), get("fetch_cpu_s"), get("encode_cpu_s"), get("verify_cpu_s"));
        // A real yt-dlp (Python) and a real encode and decode always cost CPU; so does ffmpeg's stream copy
        // or yt-dlp's whole-video download.
        for (stage, cpu) in [("extract", extract), ("fetch", fetch), ("encode", encode), ("verify", verify)] {
            assert!(cpu > 0.0, "{}: {stage} CPU {cpu} s", line["path"]);
        }
        // Extraction and fetch run within download_s, the encode and the verification within ffmpeg_s.
        let (download_s, ffmpeg_s) = (get("download_s"), get("ffmpeg_s"));
        assert!(extract + fetch <= download_s * cores + slack, "{line:?}: more CPU than {cores} cores give");
        assert!(encode + verify <= ffmpeg_s * cores + slack, "{line:?}: more CPU than {cores} cores give");
        totals.push(extract + fetch + encode + verify);
    }
    let cpu = &status["cpu_per_clip"];
    assert_eq!(cpu["total"]["clips"], stats.rows.len() as u64, "{cpu}");
    for stage in ["extract", "fetch", "encode", "verify", "total"] {
        let s = &cpu[stage];
        let (mean, median, p95) =
            (s["mean_s"].as_f64().unwrap(), s["median_s"].as_f64().unwrap(), s["p95_s"].as_f64().unwrap());
        assert!(mean > 0.0 && median > 0.0 && median <= p95, "{stage}: {s}");
    }
    let mean = totals.iter().sum::<f64>() / totals.len() as f64;
    let status_mean = cpu["total"]["mean_s"].as_f64().unwrap();
    assert!((status_mean - mean).abs() < 0.01, "status says {status_mean} s a clip, stats.csv {mean} s");

    let report = run(&[OsString::from("report"), "--json".into(), "--out".into(), out.into()]);
    let report: serde_json::Value = serde_json::from_str(&report.expect_code(0).stdout).expect("report JSON");
    assert_eq!(report["cpu_per_clip"], *cpu, "report and status agree");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("CPU per clip"), "the page shows CPU per clip");
    let text = run(&[OsString::from("status"), "--out".into(), out.into()]).expect_code(0).stdout.clone();
    assert!(text.contains(&format!("CPU s per clip over {} clips", stats.rows.len())), "{text}");
    assert!(summary.contains(&format!("CPU s per clip over {} clips", stats.rows.len())), "{summary}");
    assert!(summary.contains("CPU of the whole run"), "{summary}");
}

/// The journal's clips, distinct keys, whether its key index is there, and SQLite's integrity check.
fn journal_shape(out: &Path) -> (i64, i64, bool, String) {
    let conn = rusqlite::Connection::open(journal_path(out)).expect("the journal opens");
    let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let clips = q("SELECT COUNT(*) FROM clips");
    let keys = q("SELECT COUNT(*) FROM (SELECT DISTINCT youtube_id, start_ms, end_ms FROM clips)");
    let index = q("SELECT COUNT(*) FROM pragma_index_list('clips') WHERE name = 'clips_key' AND \"unique\"") == 1;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    (clips, keys, index, integrity)
}

#[test]
fn a_kill_in_the_middle_of_the_first_import_leaves_a_journal_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let csv = tmp.path().join("many.csv");
    // Enough clips that their import takes seconds: the key index is built after the rows, in the
    // same transaction, which spills into the write-ahead log long before it commits.
    const CLIPS: i64 = 200_000;
    let mut text = String::from("label,youtube_id,time_start,time_end,split\n");
    for i in 0..CLIPS {
        text.push_str(&format!("class{},k{i:010},{},{},train\n", i % 700, i % 50, i % 50 + 10));
    }
    std::fs::write(&csv, text).unwrap();
    // Nothing answers on port 9: the runs are killed before any clip could be tried anyway.
    let args = template_args_for_kill(&out, &csv);
    let mut first = Running::download(&args);
    let wal = journal_path(&out).with_extension("sqlite-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // After the schema (about 130 KB of log), more than 1 MB of it: the import's rows.
    let said = first.stderr.clone();
    first.wait_for(RUN_LIMIT, "the import under way", || {
        wal_size() > 1 << 20 || said.lock().unwrap().contains("journal synced")
    });
    first.signal(libc::SIGKILL);
    let o = first.wait(Duration::from_secs(60));
    assert_eq!(o.code, None, "killed by the signal");
    assert!(!o.stderr.contains("journal synced"), "killed during the import, not after it:\n{}", o.stderr);
    // All or nothing: the import was one transaction.
    let (clips, _, index, integrity) = journal_shape(&out);
    assert!(clips == 0 || clips == CLIPS, "{clips} clips after the kill");
    assert_eq!((index, integrity.as_str()), (true, "ok"));

    // The next run imports the plan and goes on: every clip once, under the key index.
    let mut second = Running::download(&args);
    let said = second.stderr.clone();
    second.wait_for(RUN_LIMIT, "the import done", || said.lock().unwrap().contains("journal synced"));
    second.signal(libc::SIGKILL);
    let _ = second.wait(Duration::from_secs(60));
    assert_eq!(journal_shape(&out), (CLIPS, CLIPS, true, "ok".to_string()));
}

/// `download` of `csv` into `out` against a port nothing answers on, logging each step (`-v`).
fn template_args_for_kill(out: &Path, csv: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["download".into(), "--out".into(), out.into(), "--annotations".into()];
    args.push(csv.into());
    args.extend(
        ["--url-template", "http://127.0.0.1:9/watch?v={youtube_id}", "-v", "--ytdlp-mode", "cli"].map(Into::into),
    );
    args
}

/// Cuts a clip straight from the file the server serves (no request reaches the server).
fn cut_locally(server: &TestServer, row: &Row, dest: &Path) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let tmp = dest.with_extension("part");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-ss", &format!("{:.3}", row.start), "-i"])
        .arg(server.video_path(&row.id))
        .args(["-t", &format!("{:.3}", row.end - row.start), "-c:v", "libx264", "-c:a", "aac", "-f", "mp4"])
        .arg(&tmp)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::rename(&tmp, dest).unwrap();
}

#[test]
fn resume_after_sigkill_fetches_nothing_twice_and_adopts_placed_clips() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let rows = real_rows(20, 12);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 2);

    let mut first = Running::download(&args);
    first.wait_for(RUN_LIMIT, "two clips done", || done_count(&out) >= 2);
    first.signal(libc::SIGKILL);
    assert_eq!(first.wait(Duration::from_secs(60)).code, None, "killed by the signal");
    // Children die with their parent (parent-death signal), whatever they were doing.
    let out_text = out.to_string_lossy().into_owned();
    wait_until(Duration::from_secs(20), "no process working in OUT", || mentioning(&out_text).is_empty());

    // Whatever the kill interrupted, nothing half-written is at a clip's final name.
    for file in clip_files(&out) {
        decode_check(&file).unwrap_or_else(|e| panic!("{} is not a valid clip: {e}", file.display()));
    }
    let clips = journal_clips(&out);
    let done_first: Vec<&JournalClip> = clips.iter().filter(|c| c.state == "done").collect();
    assert!(done_first.len() >= 2 && done_first.len() < rows.len(), "{} done", done_first.len());
    assert!(clips.iter().all(|c| c.state != "failed"), "{clips:?}");

    // The kill may have come between a clip's rename and its journal update: such a file is adopted.
    let renamed: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            clips.iter().any(|c| c.youtube_id == r.id && c.state == "pending") && out.join(r.rel_path()).exists()
        })
        .collect();
    // Made by hand, the same crash: a valid clip at a pending clip's path. And a file that is not a clip at
    // all at another one.
    let mut untouched = rows.iter().filter(|r| {
        clips.iter().any(|c| c.youtube_id == r.id && c.state == "pending") && !out.join(r.rel_path()).exists()
    });
    let placed = untouched.next().expect("a pending clip without a file").clone();
    let garbage = untouched.next().expect("a second pending clip without a file").clone();
    cut_locally(&server, &placed, &out.join(placed.rel_path()));
    let garbage_path = out.join(garbage.rel_path());
    std::fs::create_dir_all(garbage_path.parent().unwrap()).unwrap();
    std::fs::write(&garbage_path, b"not a video").unwrap();

    let before = requests_by_id(&server);
    run(&args).expect_code(0);
    let after = requests_by_id(&server);
    for c in &done_first {
        assert_eq!(after.get(&c.youtube_id), before.get(&c.youtube_id), "{} was done: not fetched again", c.youtube_id);
    }
    assert_eq!(after.get(&placed.id), before.get(&placed.id), "the placed clip is adopted, not fetched");
    for row in &renamed {
        assert_eq!(after.get(&row.id), before.get(&row.id), "{}: renamed before the kill, adopted", row.id);
    }
    assert!(after.get(&garbage.id) > before.get(&garbage.id), "the garbage file is replaced by a fetched clip");
    let clips = journal_clips(&out);
    assert!(clips.iter().all(|c| c.state == "done"), "{clips:?}");
    let adopted = clips.iter().find(|c| c.youtube_id == placed.id).unwrap();
    assert_eq!(adopted.source.as_deref(), Some("adopted"));
    for row in &rows {
        assert_clip(&out, row);
    }
    assert_eq!(clip_files(&out).len(), rows.len());
}

/// Waits for a child of `pid` whose command line contains `needle`.
fn wait_for_child(running: &mut Running, needle: &str) -> Vec<Proc> {
    let mut seen = Vec::new();
    let pid = running.pid();
    running.wait_for(RUN_LIMIT, &format!("a child running `{needle}`"), || {
        seen = descendants(pid);
        seen.iter().any(|p| p.cmdline.contains(needle))
    });
    seen
}

#[test]
fn ctrl_c_stops_children_saves_state_and_a_rerun_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let rows = real_rows(40, 6);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 2);

    let mut running = Running::download(&args);
    // Clip work has started once a child mentions OUT (yt-dlp's cache or ffmpeg's temp files live there).
    let children = wait_for_child(&mut running, &out.to_string_lossy());
    running.signal(libc::SIGINT);
    let o = running.wait(Duration::from_secs(120));
    o.expect_code(130);
    assert!(o.stderr.contains("stopping"), "{}", o.stderr);
    assert!(o.stderr.contains("clips planned from 6 rows"), "the summary is printed:\n{}", o.stderr);
    assert!(o.stderr.contains("interrupted: rerun the same command to resume"), "{}", o.stderr);
    assert_all_end(&children, Duration::from_secs(10), "children of a run stopped by Ctrl-C");
    assert!(mentioning(&out.to_string_lossy()).is_empty());

    // Interrupted clips stay pending (never failed), and the logs are written.
    let status = status_json(&out);
    assert_eq!(status["total"], 6);
    assert!(failed_by_category(&status).is_empty(), "{status}");
    assert!(status["pending"].as_u64().unwrap() >= 1, "{status}");
    assert!(out.join("stats.csv").is_file() && out.join("failed.csv").is_file());
    assert!(all_files(&out.join(".kinetics-dl/tmp")).is_empty(), "temp files are cleaned up");

    run(&args).expect_code(0);
    assert_eq!(status_json(&out)["done"], 6);
    for row in &rows {
        assert_clip(&out, row);
    }
}

#[test]
fn second_ctrl_c_exits_at_once_and_takes_children_along() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let rows = real_rows(50, 2);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    // A stubborn yt-dlp: ignores SIGTERM and takes its time to extract, so a graceful stop has to wait out
    // the grace period; the second Ctrl-C must not wait for it.
    let ytdlp = write_script(
        tmp.path(),
        "stubborn-yt-dlp",
        "trap '' TERM\ncase \"$*\" in *--dump-json*) sleep 60 ;; esac\nexec yt-dlp \"$@\"",
    );
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 2);
    args.push("--ytdlp".into());
    args.push(ytdlp.into());

    let mut running = Running::download(&args);
    let pid = running.pid();
    wait_for_child(&mut running, "sleep 60");
    let children = descendants(pid);
    running.signal(libc::SIGINT);
    let stderr = running.stderr.clone();
    running.wait_for(Duration::from_secs(60), "the first Ctrl-C to be acknowledged", || {
        stderr.lock().unwrap().contains("stopping")
    });
    running.signal(libc::SIGINT);
    let o = running.wait(Duration::from_secs(60));
    o.expect_code(130);
    assert!(
        !o.stderr.contains("interrupted: rerun"),
        "the second Ctrl-C quits without waiting for children or writing a summary:\n{}",
        o.stderr
    );
    let (direct, grandchildren): (Vec<Proc>, Vec<Proc>) = children.iter().cloned().partition(|p| p.ppid == pid);
    assert_all_end(&direct, Duration::from_secs(10), "children of kinetics-dl after the second Ctrl-C");
    // yt-dlp runs ffmpeg itself (merges, whole downloads): those must not outlive an immediate quit either.
    assert_all_end(&grandchildren, Duration::from_secs(10), "grandchildren of kinetics-dl after the second Ctrl-C");
}

#[test]
fn ctrl_c_during_the_tool_checks_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &real_rows(60, 1));
    // yt-dlp is asked for its version before any clip; a slow one keeps the run in that phase.
    let ytdlp =
        write_script(tmp.path(), "slow-yt-dlp", "case \"$*\" in *--version*) sleep 30 ;; esac\nexec yt-dlp \"$@\"");
    let mut args = download_args(&server, &out, &[&csv]);
    args.push("--ytdlp".into());
    args.push(ytdlp.into());
    let mut running = Running::download(&args);
    wait_for_child(&mut running, "sleep 30");
    running.signal(libc::SIGINT);
    let o = running.wait(Duration::from_secs(60));
    // Ctrl-C is an interruption wherever it lands, not an environment error.
    o.expect_code(130);
    assert_eq!(server.stats().total_requests, 0);
}

#[test]
fn a_second_download_into_the_same_out_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let rows = real_rows(70, 2);
    // Slow enough that the first run is still working when the second one starts.
    let server =
        server(rows.iter().fold(config(), |c, r| c.with_behaviour(&r.id, Behaviour::Slow { bytes_per_sec: 20_000 })));
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    let args = download_args(&server, &out, &[&csv]);

    let mut first = Running::download(&args);
    let lock = out.join(".kinetics-dl").join("lock");
    let pid = first.pid().to_string();
    first.wait_for(RUN_LIMIT, "the first run to hold the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid)
    });
    let second = run(&args);
    second.expect_code(2);
    assert!(second.stderr.contains(&format!("another kinetics-dl (pid {pid})")), "{}", second.stderr);
    assert!(second.stderr.contains(&out.display().to_string()), "{}", second.stderr);
    first.signal(libc::SIGINT);
    first.wait(Duration::from_secs(120)).expect_code(130);
    // The lock goes with its holder: the next run may work in OUT (here with nothing to do).
    let mut next = args.clone();
    next.extend(os(["--limit", "0"]));
    run(&next).expect_code(0);
}

#[test]
fn permanent_failures_alone_exit_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let good = real_rows(80, 1).remove(0);
    let server = server(
        config().with_behaviour("perm404aaaa", Behaviour::Status(404)).with_behaviour("permhtmlaaa", Behaviour::Html),
    );
    let csv = tmp.path().join("a.csv");
    let rows = [good.clone(), Row::new("x", "perm404aaaa", 0.0, 10.0), Row::new("x", "permhtmlaaa", 0.0, 10.0)];
    write_csv(&csv, &rows);
    let mut args = download_args(&server, &out, &[&csv]);
    args.push("--quiet".into());
    let o = run(&args);
    o.expect_code(0);
    assert!(o.stderr.trim().is_empty(), "--quiet prints no summary: {}", o.stderr);
    let status = status_json(&out);
    assert_eq!(status["done"], 1);
    assert_eq!(
        failed_by_category(&status),
        BTreeMap::from([("http_404".to_string(), 1), ("unsupported_url".to_string(), 1)])
    );
    assert_clip(&out, &good);
}

#[test]
fn retryable_failures_that_run_out_of_attempts_exit_three() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config().with_behaviour("down503aaaa", Behaviour::Status(503)));
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &[Row::new("x", "down503aaaa", 0.0, 10.0)]);
    // The direct-URL path keeps this one: yt-dlp's extraction is itself a GET of the media file.
    let o = run(&direct_download_args(&server, &out, &[&csv]));
    o.expect_code(3);
    assert!(o.stderr.contains("some clips remain: rerun the same command to resume"), "{}", o.stderr);
    let failed = read_csv(&out.join("failed.csv"));
    assert_eq!(failed.rows.len(), 1);
    assert_eq!(failed.rows[0]["category"], "server_error");
    assert_eq!(failed.rows[0]["attempts"], "5", "server_error gets five attempts");
    assert_eq!(requests_by_id(&server)["down503aaaa"], 5);
    assert_eq!(failed_by_category(&status_json(&out)), BTreeMap::from([("server_error".to_string(), 1)]));
}

#[test]
fn a_broken_environment_exits_two_and_marks_no_clip_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let rows = real_rows(90, 2);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    let args = download_args(&server, &out, &[&csv]);

    // A missing yt-dlp is found before any clip is tried.
    let mut missing = args.clone();
    missing.extend(os(["--ytdlp", "/nonexistent/yt-dlp"]));
    let o = run(&missing);
    o.expect_code(2);
    assert!(o.stderr.contains("/nonexistent/yt-dlp"), "{}", o.stderr);
    assert!(o.stderr.contains("pip install"), "the error says how to install it: {}", o.stderr);
    assert_eq!(server.stats().total_requests, 0);
    assert!(!journal_path(&out).exists() || journal_clips(&out).iter().all(|c| c.state == "pending"));

    // A yt-dlp that starts but is broken (exit code 2: bad options) stops the run mid-way.
    let broken = write_script(
        tmp.path(),
        "broken-yt-dlp",
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac\necho 'yt-dlp: error: no such option: --bogus' >&2\nexit 2",
    );
    let mut mid_run = args.clone();
    mid_run.push("--ytdlp".into());
    mid_run.push(broken.into());
    let o = run(&mid_run);
    o.expect_code(2);
    assert!(o.stderr.contains("no such option"), "{}", o.stderr);
    let clips = journal_clips(&out);
    assert_eq!(clips.len(), 2);
    assert!(clips.iter().all(|c| c.state == "pending"), "no clip is failed for the machine's fault: {clips:?}");
    assert!(failed_by_category(&status_json(&out)).is_empty());

    // No JS runtime: yt-dlp warns as it does on YouTube and still succeeds (with formats missing). That is
    // the machine's fault and would repeat for every clip: the run stops, no clip failed.
    let no_js = write_script(
        tmp.path(),
        "no-js-yt-dlp",
        "case \"$*\" in *--version*) exec yt-dlp \"$@\" ;; esac
\
         echo 'WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default; \
         to use another runtime add --js-runtimes RUNTIME[:PATH] to your command/config. YouTube extraction without \
         a JS runtime has been deprecated, and some formats may be missing.' >&2
exec yt-dlp \"$@\"",
    );
    let mut without_js = args.clone();
    without_js.push("--ytdlp".into());
    without_js.push(no_js.into());
    let o = run(&without_js);
    o.expect_code(2);
    assert!(o.stderr.contains("JavaScript runtime"), "{}", o.stderr);
    let clips = journal_clips(&out);
    assert!(clips.iter().all(|c| c.state == "pending"), "no clip is failed for a missing JS runtime: {clips:?}");
    assert!(failed_by_category(&status_json(&out)).is_empty());
    assert!(clip_files(&out).is_empty(), "no clip was made without the JS runtime");

    // Fixed, the same command finishes.
    run(&args).expect_code(0);
    for row in &rows {
        assert_clip(&out, row);
    }
}

#[test]
fn hostile_labels_splits_and_ids_stay_inside_out() {
    let tmp = tempfile::tempdir().unwrap();
    // OUT sits two levels down, so `../../x` from a class folder would land inside the temp dir we watch.
    let out = tmp.path().join("a").join("out");
    let server = server(config());
    let long = "x".repeat(300);
    let rows = vec![
        Row::new("../../etc", "-abcdefghij", 1.0, 11.0),
        Row::new("a/b", "--nQbRBEz2s", 2.0, 12.0),
        Row::new("..", "hostile0003", 3.0, 13.0),
        Row::new(&long, "hostile0004", 4.0, 14.0),
        Row::new("fine", "hostile0005", 5.0, 15.0).split("../../up"),
    ];
    let csv = tmp.path().join("hostile.csv");
    write_csv(&csv, &rows);
    run(&download_args(&server, &out, &[&csv])).expect_code(0);

    // Nothing was written outside OUT (the annotation file is ours).
    for file in all_files(tmp.path()) {
        assert!(file.starts_with(&out) || file == csv, "{} is outside OUT", file.display());
    }
    let clips = journal_clips(&out);
    assert_eq!(clips.len(), rows.len());
    let mut class_dirs = std::collections::BTreeSet::new();
    for clip in &clips {
        assert_eq!(clip.state, "done", "{clip:?}");
        let rel = Path::new(&clip.rel_path);
        let parts: Vec<_> = rel.components().collect();
        assert_eq!(parts.len(), 3, "split/class/file: {rel:?}");
        assert!(parts.iter().all(|c| matches!(c, std::path::Component::Normal(_))), "{rel:?}");
        assert!(parts.iter().all(|c| c.as_os_str().len() <= 255), "{rel:?}");
        assert!(!parts[0].as_os_str().to_string_lossy().starts_with('.'), "{rel:?}");
        class_dirs.insert(parts[1].as_os_str().to_owned());
        let row = rows.iter().find(|r| r.id == clip.youtube_id).unwrap();
        assert_eq!(rel.file_name().unwrap().to_string_lossy(), row.name(), "ids starting with `-` keep their name");
        assert_clip_at(&out.join(rel), row);
    }
    assert_eq!(class_dirs.len(), rows.len(), "distinct labels get distinct folders");
    assert_eq!(clip_files(&out).len(), rows.len());
    // Ids that look like options reached the server as ids.
    let requests = requests_by_id(&server);
    assert!(requests.contains_key("-abcdefghij") && requests.contains_key("--nQbRBEz2s"), "{requests:?}");
}

#[test]
fn bad_input_exits_two_naming_file_line_and_field_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    const HEAD: &str = "label,youtube_id,time_start,time_end,split\nok,abcdefghijk,1,11,validate\n";
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("semicolon-id.csv", format!("{HEAD}a,abc;rm -rf,1,11,validate\n"), ":3", Some("youtube_id")),
        ("dotdot-id.csv", format!("{HEAD}a,../x,1,11,validate\n"), ":3", Some("youtube_id")),
        ("bad-number.csv", format!("{HEAD}a,bcdefghijkl,1x,11,validate\n"), ":3", Some("time_start")),
        ("end-before-start.csv", format!("{HEAD}a,bcdefghijkl,12,11,validate\n"), ":3", Some("time_end")),
        ("negative.csv", format!("{HEAD}a,bcdefghijkl,-1,11,validate\n"), ":3", Some("time_start")),
        ("missing-field.csv", format!("{HEAD}a,bcdefghijkl,,11,validate\n"), ":3", Some("time_start")),
        ("field-count.csv", format!("{HEAD}a,bcdefghijkl,1,11\n"), ":3", None),
        ("unterminated.csv", format!("{HEAD}\"a,bcdefghijkl,1,11,validate\n"), ":3", None),
        ("unknown-header.csv", "label,youtube_id,time_start,time_end,splitz\n".to_string(), ":1", Some("splitz")),
        (
            "truncated.json",
            "{\"abcdefghijk\": {\"annotations\": {\"label\": \"a\", \"segment\": [1, 11]}, \"subset\": \"validate\"},\n\
             \"bcdefghijkl\": {\"annotations\": {\"label\": \"b\", \"segment\": [1,"
                .to_string(),
            ":2",
            Some("annotations.segment"),
        ),
    ];
    for (name, text, line, field) in cases {
        let file = tmp.path().join(name);
        write_text(&file, &text);
        let out = tmp.path().join(format!("out-{name}"));
        let o = run(&download_args(&server, &out, &[&file]));
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        let at = format!("{}{line}", file.display());
        assert!(o.stderr.contains(&at), "{name}: the error names {at}: {}", o.stderr);
        if let Some(field) = field {
            assert!(o.stderr.contains(&format!("`{field}`")), "{name}: the error names {field}: {}", o.stderr);
        }
        assert_eq!(server.stats().total_requests, 0, "{name}: no request before the input is valid");
        assert!(!journal_path(&out).exists(), "{name}: no journal for bad input");
    }
}

#[test]
fn scale_fps_no_audio_and_raw_class_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let real = real_rows(100, 1).remove(0);
    let row = Row::new("passing American football (in game)", &real.id, real.start, real.end);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, std::slice::from_ref(&row));
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--short-side", "90", "--fps", "10", "--no-audio", "--class-dirs", "raw"]));
    run(&args).expect_code(0);

    let path = out.join("validate").join("passing American football (in game)").join(row.name());
    let media = probe(&path);
    assert_eq!((media.width, media.height), (160, 90), "short side 90, aspect kept");
    assert!((media.fps - 10.0).abs() < 1e-6, "{media:?}");
    assert!(!media.has_audio, "{media:?}");
    assert!((media.duration - 10.0).abs() <= DURATION_TOLERANCE, "{media:?}");
    let (first, last) = frames(&path);
    let (want_first, want_last) = expected_frames(row.start, row.end);
    assert_eq!(first, want_first, "the first frame is still the one at time_start");
    // At 10 fps the last frame shown is the source frame at time_end - 0.1 s, give or take rounding.
    assert!((want_last - 2..=want_last).contains(&last), "last frame {last}, source ends at {want_last}");
    let frames_in_clip = kinetics_testsrc::clip_frame_sequence(&path).unwrap().len();
    assert!((99..=101).contains(&frames_in_clip), "{frames_in_clip} frames at 10 fps");
}

#[test]
fn trim_copy_and_torchvision_class_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    // Starts between keyframes (every 2 s), where a stream copy cannot cut exactly.
    let row = Row::new("massaging person's head", "trimcopyaaa", 3.0, 13.0);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, std::slice::from_ref(&row));
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--trim", "copy", "--class-dirs", "torchvision"]));
    run(&args).expect_code(0);

    let path = out.join("validate").join("massaging_persons_head").join(row.name());
    let media = probe(&path);
    assert!(media.duration >= 10.0 - DURATION_TOLERANCE, "a copy cut is never short: {media:?}");
    assert!(media.has_audio);
    let (first, last) = frames(&path);
    let (want_first, want_last) = expected_frames(row.start, row.end);
    assert!(first <= want_first, "a keyframe cut starts at or before time_start: frame {first}");
    assert!(last >= want_last, "and covers the whole window: last frame {last}");
    decode_check(&path).unwrap();
    // Copy and re-encode options that need an encode do not mix.
    let mut bad = args.clone();
    bad.extend(os(["--fps", "10"]));
    let o = run(&bad);
    o.expect_code(2);
    assert!(o.stderr.contains("--trim exact"), "{}", o.stderr);
}

/// The journal's `trim` of each done clip, by YouTube id.
fn trims_by_id(out: &Path) -> BTreeMap<String, String> {
    let done = journal_clips(out).into_iter().filter(|c| c.state == "done");
    done.map(|c| (c.youtube_id, c.trim.unwrap_or_default())).collect()
}

/// Without `--trim` the clips are smart-cut; a folder whose last run cut another way goes on that way (a
/// folder begun before smart became the default keeps the exact cut), and says so; `--trim` changes it.
#[test]
fn a_rerun_without_trim_goes_on_with_the_folders_trim() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let rows = [
        Row::new("cat a", "foldtrimaa1", 3.0, 13.0),
        Row::new("cat a", "foldtrimaa2", 5.5, 15.5),
        Row::new("cat a", "foldtrimaa3", 7.0, 17.0),
        Row::new("cat a", "foldtrimaa4", 9.5, 19.5),
    ];
    let csv = tmp.path().join("a.csv");
    let note = "cutting with --trim exact, as this folder's last run did";
    // (rows so far, extra arguments, the trim the new row's clip gets, whether the note is printed)
    let steps: [(usize, &[&str], &str, bool); 4] = [
        (1, &["--trim", "exact"], "exact", false),
        (2, &[], "exact", true),
        (3, &["--trim", "smart"], "smart", false),
        (4, &[], "smart", false),
    ];
    let out = tmp.path().join("out");
    for (n, extra, want, noted) in steps {
        write_csv(&csv, &rows[..n]);
        let mut args = download_args(&server, &out, &[&csv]);
        args.extend(extra.iter().map(OsString::from));
        let o = run(&args);
        o.expect_code(0);
        assert_eq!(o.stderr.contains(note), noted, "step {n}: {}", o.stderr);
        let trims = trims_by_id(&out);
        assert_eq!(trims.len(), n, "step {n}: {trims:?}");
        assert_eq!(trims[&rows[n - 1].id], want, "step {n}: {trims:?}");
        // The clips done before keep the trim they were made with.
        assert_eq!(trims[&rows[0].id], "exact");
    }
    // A new folder without --trim: smart.
    let fresh = tmp.path().join("fresh");
    write_csv(&csv, &rows[..1]);
    run(&download_args(&server, &fresh, &[&csv])).expect_code(0);
    assert_eq!(trims_by_id(&fresh)[&rows[0].id], "smart");
    assert_clip(&fresh, &rows[0]);
}

/// Html ids fail at once and for good (`unsupported_url`), so filter tests need no encode.
fn html_server(ids: &[&str]) -> TestServer {
    server(ids.iter().fold(config(), |c, id| c.with_behaviour(id, Behaviour::Html)))
}

fn planned_ids(out: &Path) -> Vec<String> {
    let mut ids: Vec<String> = journal_clips(out).into_iter().map(|c| c.youtube_id).collect();
    ids.sort();
    ids
}

#[test]
fn split_classes_classes_file_and_limit_select_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = vec![
        Row::new("cat a", "filtera1aaa", 0.0, 10.0).split("train"),
        Row::new("cat a", "filtera2aaa", 0.0, 10.0),
        Row::new("cat b", "filterb1aaa", 0.0, 10.0),
        Row::new("cat c", "filterc1aaa", 0.0, 10.0),
        Row::new("cat b", "filterb2aaa", 0.0, 10.0).split("test"),
    ];
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let server = html_server(&ids);
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    let classes = tmp.path().join("classes.txt");
    write_text(&classes, "cat c\ncat b\n");
    let classes_arg = classes.to_string_lossy().into_owned();

    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("split-classes", vec!["--split", "validate", "--classes", "cat a,cat b"], vec!["filtera2aaa", "filterb1aaa"]),
        ("file-limit", vec!["--classes-file", &classes_arg, "--limit", "2"], vec!["filterb1aaa", "filterc1aaa"]),
        ("val-alias", vec!["--split", "val", "--limit", "1"], vec!["filtera2aaa"]),
        ("two-splits", vec!["--split", "train", "--split", "test"], vec!["filtera1aaa", "filterb2aaa"]),
    ];
    for (name, extra, want) in cases {
        let out = tmp.path().join(name);
        let before = requests_by_id(&server);
        let mut args = download_args(&server, &out, &[&csv]);
        args.extend(extra.iter().map(std::ffi::OsString::from));
        run(&args).expect_code(0);
        assert_eq!(planned_ids(&out), want, "{name}");
        let after = requests_by_id(&server);
        let asked: Vec<&String> = after.iter().filter(|(id, n)| before.get(*id) != Some(n)).map(|(id, _)| id).collect();
        assert_eq!(asked, want.iter().collect::<Vec<_>>(), "{name}: only the selected ids are requested");
    }
}

/// The journal's remembered plan (`meta.plan`: digest, clips, rows, merged rows), if any.
fn remembered_plan(out: &Path) -> Option<String> {
    let conn = open_journal(out).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'plan'", [], |r| r.get(0)).ok()
}

#[test]
fn a_rerun_reads_the_annotations_again_only_when_they_or_the_plan_settings_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = ["replanaaaa1", "replanaaaa2", "replanaaaa3"];
    let server = html_server(&ids);
    let csv = tmp.path().join("a.csv");
    let out = tmp.path().join("out");
    let mut rows = vec![Row::new("cat a", ids[0], 0.0, 10.0), Row::new("cat a", ids[1], 0.0, 10.0)];
    write_csv(&csv, &rows);
    let mut args = download_args(&server, &out, &[&csv]);
    args.push("-v".into());
    let first = run(&args);
    first.expect_code(0);
    assert!(!first.stderr.contains("the journal holds this plan already"), "{}", first.stderr);
    let remembered = remembered_plan(&out).expect("the first run remembers its plan");

    // The same inputs and settings: the journal's clips are taken as they are.
    let again = run(&args);
    again.expect_code(0);
    assert!(again.stderr.contains("the journal holds this plan already"), "{}", again.stderr);
    assert_eq!(remembered_plan(&out).as_ref(), Some(&remembered));

    // The same file, one label edited in place (same size): read again, the failed clip takes the new label.
    rows[1] = Row::new("cat b", ids[1], 0.0, 10.0);
    write_csv(&csv, &rows);
    let edited = run(&args);
    edited.expect_code(0);
    assert!(!edited.stderr.contains("the journal holds this plan already"), "{}", edited.stderr);
    let clip = journal_clips(&out).into_iter().find(|c| c.youtube_id == ids[1]).unwrap();
    assert_eq!(clip.label.as_deref(), Some("cat b"));
    assert!(clip.rel_path.contains("/cat_b/"), "{}", clip.rel_path);
    assert_ne!(remembered_plan(&out).as_ref(), Some(&remembered));

    // Another setting that shapes the plan (the class folders' naming): read again.
    let mut raw = args.clone();
    raw.extend(["--class-dirs".into(), "raw".into()]);
    let renamed = run(&raw);
    renamed.expect_code(0);
    assert!(!renamed.stderr.contains("the journal holds this plan already"), "{}", renamed.stderr);
    let clip = journal_clips(&out).into_iter().find(|c| c.youtube_id == ids[1]).unwrap();
    assert!(clip.rel_path.contains("/cat b/"), "{}", clip.rel_path);

    // A row added: read again and the new clip is planned and tried.
    rows.push(Row::new("cat a", ids[2], 0.0, 10.0));
    write_csv(&csv, &rows);
    let before = requests_by_id(&server);
    run(&raw).expect_code(0);
    assert_eq!(planned_ids(&out), ids.to_vec());
    assert!(requests_by_id(&server).get(ids[2]) > before.get(ids[2]), "the new clip is tried");
}

#[test]
fn retry_failed_retries_permanent_failures_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(
        config().with_behaviour("retry404aaa", Behaviour::Status(404)).with_behaviour("retryhtmla", Behaviour::Html),
    );
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &[Row::new("x", "retry404aaa", 0.0, 10.0), Row::new("x", "retryhtmla", 0.0, 10.0)]);
    let args = download_args(&server, &out, &[&csv]);
    let with = |extra: &str| {
        let mut a = args.clone();
        a.push(extra.into());
        a
    };
    let steps: Vec<(&str, Vec<std::ffi::OsString>, u64, u64)> = vec![
        ("first run", args.clone(), 2, 1),
        ("plain rerun", args.clone(), 0, 0),
        ("only unsupported_url", with("--retry-failed=unsupported_url"), 0, 1),
        ("all", with("--retry-failed"), 2, 1),
    ];
    for (name, args, want_404, want_html) in steps {
        let before = requests_by_id(&server);
        run(&args).expect_code(0);
        let after = requests_by_id(&server);
        let grew = |id: &str| after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
        assert_eq!((grew("retry404aaa"), grew("retryhtmla")), (want_404, want_html), "{name}");
        let failed = read_csv(&out.join("failed.csv"));
        assert_eq!(failed.for_id("retry404aaa")[0]["category"], "http_404", "{name}");
        assert_eq!(failed.for_id("retryhtmla")[0]["category"], "unsupported_url", "{name}");
    }
    let o = run(&with("--retry-failed=no_such_category"));
    o.expect_code(2);
    assert!(o.stderr.contains("no_such_category"), "{}", o.stderr);
}

/// `kinetics400.tar.gz` as DeepMind ships it: `kinetics400/{train,validate,test}.csv`.
fn write_k400_archive(path: &Path, files: &[(&str, String)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("kinetics400/{name}"), text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn dataset_mode_fetches_the_archive_once_and_downloads_the_chosen_split() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let validate = real_rows(110, 2);
    let validate_csv = tmp.path().join("v.csv");
    write_csv(&validate_csv, &validate);
    write_k400_archive(
        &files.join("kinetics400.tar.gz"),
        &[
            ("train.csv", "label,youtube_id,time_start,time_end,split\nx,trainonlyaa,0,10,train\n".to_string()),
            ("validate.csv", std::fs::read_to_string(&validate_csv).unwrap()),
            ("test.csv", "youtube_id,time_start,time_end,split\ntestonlyaaa,0,10,test\n".to_string()),
        ],
    );
    let server = server(config().with_static_dir(&files));
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let mut args = os(["download", "k400", "--split", "validate", "--annotations-base-url"]);
    args.push(format!("{}/files", server.base_url()).into());
    args.push("--cache-dir".into());
    args.push(cache.into());
    args.extend(download_args(&server, &out, &[]).into_iter().skip(1));
    let archive_requests =
        |s: &TestServer| s.stats().log.iter().filter(|e| e.path == "/files/kinetics400.tar.gz").count();

    run(&args).expect_code(0);
    assert_eq!(archive_requests(&server), 1);
    assert_eq!(planned_ids(&out), {
        let mut v: Vec<String> = validate.iter().map(|r| r.id.clone()).collect();
        v.sort();
        v
    });
    for row in &validate {
        assert_clip(&out, row);
    }
    let requests = requests_by_id(&server);
    assert!(!requests.contains_key("trainonlyaa") && !requests.contains_key("testonlyaaa"), "{requests:?}");

    // The archive is cached: a rerun neither fetches it nor any clip again.
    let before = requests_by_id(&server);
    run(&args).expect_code(0);
    assert_eq!(archive_requests(&server), 1);
    assert_eq!(requests_by_id(&server), before);
}

#[test]
fn a_relative_out_dir_works_for_every_fetch_path() {
    let tmp = tempfile::tempdir().unwrap();
    let real = real_rows(120, 1).remove(0);
    let server = server(config().with_behaviour("relnorangea", Behaviour::NoRange));
    let rows = [real.clone(), Row::new("x", "relnorangea", 3.0, 13.0)];
    write_csv(&tmp.path().join("a.csv"), &rows);
    // The watch page (the DASH pair) and the direct URL of the progressive file.
    type MakeArgs = fn(&TestServer, &Path, &[&Path]) -> Vec<OsString>;
    let paths: [(&str, MakeArgs); 2] = [("out", download_args), ("out-direct", direct_download_args)];
    for (dir, make_args) in paths {
        let args = make_args(&server, Path::new(dir), &[Path::new("a.csv")]);
        let o = run_in(Some(tmp.path()), &args);
        let out = tmp.path().join(dir);
        let failed = read_csv(&out.join("failed.csv"));
        assert!(failed.rows.is_empty(), "{dir}: no clip fails because OUT is relative: {:?}", failed.rows);
        o.expect_code(0);
        for row in &rows {
            assert_clip(&out, row);
        }
        let stats = read_csv(&out.join("stats.csv"));
        assert_eq!(stats.for_id("relnorangea")[0]["whole_video"], "1", "{dir}");
        let format = &stats.for_id(&real.id)[0]["format_id"];
        assert_eq!(format, if dir == "out" { "133+140" } else { "mp4" }, "{dir}");
    }
}

/// The arguments of a download of `row` alone into `out`, cut exactly, with `tool` (`--ffmpeg` or `--ffprobe`)
/// replaced by the script at `path`.
fn one_exact_row(server: &TestServer, dir: &Path, out: &Path, row: &Row, tool: &str, path: &Path) -> Vec<OsString> {
    let csv = dir.join("a.csv");
    write_csv(&csv, std::slice::from_ref(row));
    let mut args = download_args(server, out, &[&csv]);
    args.extend([OsString::from(tool), path.into(), "--trim".into(), "exact".into()]);
    args
}

/// The frame rate that places a sub-frame cut comes from probing the fetched window. Once in a few hundred runs
/// under heavy load that probe failed and the cut fell back, silently, to the window's own times, which keep
/// the frame on screen at `time_start`: frames 322-471 where 323-472 belong. Here ffprobe fails its first
/// probe of a window (`--ffprobe` wraps the real one): that attempt fails and the retry cuts the right frames.
/// The window is read in process first (`tools::mkv`), which asks ffprobe only where it declines;
/// `KINETICS_DL_WINDOW_READER=ffprobe` asks ffprobe always, as the in-process reader's way out.
#[test]
fn a_window_whose_probe_fails_fails_the_attempt_and_never_cuts_the_frame_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let mark = tmp.path().join("failed-once");
    let ffprobe = write_script(
        tmp.path(),
        "ffprobe-fails-once",
        &format!(
            "case \"$*\" in *-version*) exec ffprobe \"$@\" ;; esac\n\
             if mkdir '{}' 2>/dev/null; then echo 'Resource temporarily unavailable' >&2; exit 1; fi\n\
             exec ffprobe \"$@\"",
            mark.display()
        ),
    );
    let row = Row::new("x", "subframe047", 21.47, 31.47);
    // The exact cut probes the window for its rate alone. (The smart cut's listing of the window, the
    // default, falls back to that probe when it fails, and so takes a probe that fails once in its stride.)
    let args = one_exact_row(&server, tmp.path(), &out, &row, "--ffprobe", &ffprobe);
    let mut cmd = command();
    cmd.args(&args).env("KINETICS_DL_WINDOW_READER", "ffprobe");
    Running::start(cmd).wait(RUN_LIMIT).expect_code(0);
    assert!(mark.exists(), "the wrapper failed a probe");
    let tried: Vec<_> = attempts(&out).into_iter().map(|a| (a.outcome, a.category)).collect();
    assert_eq!(
        tried,
        [("retry".to_string(), Some("corrupt".to_string())), ("done".to_string(), None)],
        "the failed probe failed its attempt"
    );
    let frames = frame_sequence(&out.join(row.rel_path()));
    assert_eq!((frames.first(), frames.last(), frames.len()), (Some(&323), Some(&472), 150), "{frames:?}");
    assert_clip(&out, &row);
}

/// A clip damaged between its encode and its check (as a disk or a bug in between would damage it) is never
/// counted: the exact cut's check compares the file with the packets its encoder wrote
/// (`Ffmpeg::check_packets`), so a few bytes changed in the middle of the clip fail the attempt as `corrupt`,
/// however well a decoder would conceal them, and the retry makes the clip again.
#[test]
fn an_exact_cut_damaged_before_its_check_fails_the_attempt_and_is_made_again() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let mark = tmp.path().join("damaged-once");
    // The cut is the ffmpeg run whose last argument is the tee's list of outputs, the clip's path first.
    let ffmpeg = write_script(
        tmp.path(),
        "damaging-ffmpeg",
        &format!(
            "for a in \"$@\"; do last=\"$a\"; done\n\
             case \"$last\" in '[f=mp4:movflags=+faststart]'*) ;; *) exec ffmpeg \"$@\" ;; esac\n\
             ffmpeg \"$@\" || exit $?\n\
             clip=\"${{last#*]}}\"; clip=\"${{clip%%|*}}\"\n\
             if mkdir '{}' 2>/dev/null; then\n\
               size=$(stat -c %s \"$clip\")\n\
               printf 'kinetics-dl' | dd of=\"$clip\" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null\n\
             fi",
            mark.display()
        ),
    );
    let row = Row::new("x", "damaged0001", 12.0, 22.0);
    run(&one_exact_row(&server, tmp.path(), &out, &row, "--ffmpeg", &ffmpeg)).expect_code(0);
    assert!(mark.exists(), "the wrapper damaged a clip");
    let tried: Vec<_> = attempts(&out).into_iter().map(|a| (a.outcome, a.category)).collect();
    assert_eq!(
        tried,
        [("retry".to_string(), Some("corrupt".to_string())), ("done".to_string(), None)],
        "the damaged clip failed its attempt"
    );
    let message: String = open_journal(&out)
        .unwrap()
        .query_row("SELECT message FROM attempts WHERE outcome = 'retry'", [], |r| r.get(0))
        .unwrap();
    assert!(message.starts_with("the clip is not what its encoder wrote: "), "{message}");
    assert_clip(&out, &row);
}

/// An `--ffmpeg` wrapper that keeps the cut's stdout to itself hands over no packets: the exact cut's clip is
/// then decoded to the end, as before the packets' check, and still counts.
#[test]
fn an_exact_cut_whose_packets_never_arrive_is_decoded_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let ffmpeg = write_script(tmp.path(), "quiet-ffmpeg", "ffmpeg \"$@\" > /dev/null");
    let row = Row::new("x", "quietcut001", 12.0, 22.0);
    let mut args = one_exact_row(&server, tmp.path(), &out, &row, "--ffmpeg", &ffmpeg);
    args.push("-v".into());
    let done = run(&args);
    done.expect_code(0);
    assert!(
        done.stderr.contains("the encode gave no packets on stdout: its clip is checked by a decode"),
        "{}",
        done.stderr
    );
    let tried: Vec<_> = attempts(&out).into_iter().map(|a| (a.outcome, a.category)).collect();
    assert_eq!(tried, [("done".to_string(), None)]);
    assert_clip(&out, &row);
}

#[test]
fn sub_frame_windows_keep_the_frames_inside_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    // At 15 fps frame 322 is at 21.4667 s and frame 323 at 21.5333 s. A window starting between them (as
    // integer Kinetics times do on 29.97 fps videos) holds the frames whose time is inside it: 323 to 472,
    // 150 distinct frames, none repeated. 40.15 to 44.9 s is 602.25 to 673.5 in frames: 603 to 673, 71
    // frames (a cut that started at frame 602, on screen at 40.15 s, kept 72). One aligned window is the
    // control.
    let rows = [
        Row::new("x", "subframe047", 21.47, 31.47),
        Row::new("x", "subframe049", 21.49, 31.49),
        Row::new("x", "subframe415", 40.15, 44.9),
        Row::new("x", "subframe000", 3.0, 13.0),
    ];
    let counts = [150, 150, 71, 150];
    let csv = tmp.path().join("a.csv");
    write_csv(&csv, &rows);
    run(&download_args(&server, &out, &[&csv])).expect_code(0);
    assert_eq!((expected_frames(21.47, 31.47), expected_frames(40.15, 44.9)), ((323, 472), (603, 673)));
    for (row, n) in rows.iter().zip(counts) {
        assert_eq!(frame_sequence(&out.join(row.rel_path())).len(), n, "{}: frames in the window at 15 fps", row.id);
        assert_clip(&out, row);
    }
}

/// A source damaged in the middle (the test source flips 512 bytes from half of each media file on) is not
/// made into a clip: a decoder conceals damaged packets, and a clip cut from them holds pictures the video
/// does not, which its own check cannot see (an encoder's packets are sound whatever it was given). The exact
/// cut fails as `corrupt` (three attempts, as any) on its decoder's complaint, and so does the default smart cut, whose head is
/// encoded and whose copied packets are decoded by its check; a clip of the same video away from the damage
/// is made and exact.
#[test]
fn a_source_damaged_in_the_window_fails_as_corrupt_and_one_away_from_it_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = ["garbledexa1", "garbledsma1", "garbledaway"];
    let server = server(ids.iter().fold(config(), |c, id| c.with_behaviour(id, Behaviour::Garble { fraction: 0.5 })));
    // Half of each file is about half of the video (30 s): the first two windows hold the damage.
    let exact = Row::new("x", ids[0], 25.0, 35.0);
    let smart = Row::new("x", ids[1], 25.0, 35.0);
    let away = Row::new("x", ids[2], 5.0, 15.0);
    for (trim, rows) in [("exact", vec![exact.clone(), away.clone()]), ("smart", vec![smart.clone()])] {
        let out = tmp.path().join(trim);
        let csv = tmp.path().join(format!("{trim}.csv"));
        write_csv(&csv, &rows);
        let mut args = download_args(&server, &out, &[&csv]);
        args.extend(os(["--trim", trim]));
        let o = run(&args);
        o.expect_code(3);
        let failed = read_csv(&out.join("failed.csv"));
        assert_eq!(failed.rows.len(), 1, "{trim}: {:?}", failed.rows);
        let row = &failed.rows[0];
        assert_eq!((row["category"].as_str(), row["attempts"].as_str()), ("corrupt", "3"), "{trim}: {row:?}");
        if trim == "exact" {
            assert_eq!(row["youtube_id"], ids[0]);
            let message = &row["message"];
            assert!(message.starts_with("the source is damaged: decoding it, ffmpeg said \"["), "{message}");
            assert!(!message.contains(" @ 0x"), "{message}");
            assert!(!out.join(exact.rel_path()).exists());
            assert_clip(&out, &away);
        } else {
            // The damage is in the copied part (the check's decode) or in an encoded part (the cut's decoder).
            let message = &row["message"];
            assert!(
                message.starts_with("decoding failed: ") || message.starts_with("the source is damaged: "),
                "{message}"
            );
            eprintln!("smart: {message}");
            assert!(!out.join(smart.rel_path()).exists());
        }
    }
}
