//! Integration tests for the CVDF mirror source: synthetic mirrors in every real layout, served over HTTP
//! on 127.0.0.1, fetched with the real ffprobe/ffmpeg verifying each clip.

#[path = "common/mirror_fixtures.rs"]
mod mirror_fixtures;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinetics_dl::mirror::{self, MirrorConfig, MirrorDataset, MirrorEvent, MirrorStats, Wanted};
use kinetics_testsrc::{spawn, Config, TestServer};
use mirror_fixtures::{Expect, Fixture, CLIP_SECS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

const ALL: [&str; 3] = ["train", "validate", "test"];

fn serve(root: &Path, bandwidth: u64) -> TestServer {
    let config = Config::for_tests().with_duration(2.0).with_static_dir(root).with_bandwidth(bandwidth);
    spawn(config, "127.0.0.1:0".parse().unwrap()).expect("start the test server")
}

fn base(server: &TestServer) -> String {
    format!("{}/files", server.base_url())
}

/// Runs a future on a fresh runtime with a hard deadline instead of hanging the suite.
fn block_on<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(180), fut).await.expect("test deadline passed") })
}

fn config(base: &str, dataset: MirrorDataset, splits: &[&str], out: &Path) -> MirrorConfig {
    let mut cfg = MirrorConfig::new(dataset, out.join(".kdl/mirror"), out.join(".kdl/tmp"));
    cfg.base_url = base.to_string();
    cfg.splits = splits.iter().map(|s| s.to_string()).collect();
    cfg.concurrency = 2;
    cfg.verify_concurrency = 2;
    cfg
}

fn clip_dest(out: &Path, split: &str, label: &str, name: &str) -> PathBuf {
    out.join(split).join(label).join(name)
}

/// Wanted clips built the way the CLI will: from the mirror's own annotation CSVs.
async fn wanted_from_annotations(
    base: &str,
    dataset: MirrorDataset,
    splits: &[&str],
    out: &Path,
) -> HashMap<String, Wanted> {
    let mut wanted = HashMap::new();
    for &split in splits {
        let url = mirror::annotations_url(base, dataset, split).unwrap().expect("this dataset has annotations");
        let text = reqwest::get(&url).await.unwrap().error_for_status().unwrap().text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (label, id, start, end) =
            (col("label"), col("youtube_id").unwrap(), col("time_start").unwrap(), col("time_end").unwrap());
        for row in reader.records() {
            let row = row.unwrap();
            let secs = |i: usize| row[i].parse::<f64>().unwrap() as u32;
            let name = format!("{}_{:06}_{:06}.mp4", &row[id], secs(start), secs(end));
            let label = label.map(|i| row[i].to_string()).unwrap_or_default();
            let w = Wanted {
                clip_id: wanted.len() as i64,
                dest: clip_dest(out, split, &label, &name),
                expected_duration: CLIP_SECS,
            };
            assert!(wanted.insert(name, w).is_none(), "one row per clip in the fixture");
        }
    }
    wanted
}

/// For datasets without annotations on the mirror (K600): straight from the fixture.
fn wanted_from_fixture(f: &Fixture, splits: &[&str], out: &Path) -> HashMap<String, Wanted> {
    f.rows(splits)
        .enumerate()
        .map(|(i, c)| {
            let w = Wanted {
                clip_id: i as i64,
                dest: clip_dest(out, &c.split, &c.label, &c.file_name()),
                expected_duration: CLIP_SECS,
            };
            (c.file_name(), w)
        })
        .collect()
}

async fn fetch(cfg: &MirrorConfig, wanted: HashMap<String, Wanted>) -> (MirrorStats, Vec<MirrorEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop, stop_rx) = watch::channel(false);
    let stats = mirror::fetch(cfg, wanted, reqwest::Client::new(), tx, stop_rx).await.expect("fetch");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (stats, events)
}

/// Every outcome the fixture promises, checked against files on disk, events and counters.
fn check(f: &Fixture, splits: &[&str], wanted: &HashMap<String, Wanted>, stats: &MirrorStats, events: &[MirrorEvent]) {
    let rows: Vec<_> = f.rows(splits).collect();
    assert_eq!(wanted.len(), rows.len(), "the annotations hold exactly the fixture's rows");
    let mut done: HashMap<i64, usize> = HashMap::new();
    let mut bad: HashMap<i64, usize> = HashMap::new();
    for e in events {
        match e {
            MirrorEvent::ClipDone { clip_id, duration, .. } => {
                assert!((duration - CLIP_SECS).abs() < 0.2, "duration {duration}");
                *done.entry(*clip_id).or_default() += 1;
            }
            MirrorEvent::ClipBad { clip_id, category, .. } => {
                assert_eq!(*category, "corrupt");
                *bad.entry(*clip_id).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut counts = (0, 0, 0);
    for c in &rows {
        let w = &wanted[&c.file_name()];
        let (d, b) = (done.get(&w.clip_id).copied().unwrap_or(0), bad.get(&w.clip_id).copied().unwrap_or(0));
        match c.expect {
            Expect::Placed(content) => {
                counts.0 += 1;
                assert_eq!((d, b), (1, 0), "{} should be placed once", c.file_name());
                let bytes = std::fs::read(&w.dest).unwrap_or_else(|e| panic!("{}: {e}", w.dest.display()));
                assert!(bytes == content.bytes(), "{} holds the wrong copy (want {content:?})", c.file_name());
            }
            Expect::Bad => {
                counts.1 += 1;
                assert_eq!((d, b), (0, 1), "{} should be reported bad once", c.file_name());
                assert!(!w.dest.exists(), "{} must not be placed", c.file_name());
            }
            Expect::Absent => {
                counts.2 += 1;
                assert_eq!((d, b), (0, 0), "{} is in no tarball", c.file_name());
                assert!(!w.dest.exists());
            }
        }
    }
    assert_eq!((stats.clips_placed, stats.clips_bad, stats.wanted_without_clip), counts);
    let unmatched = events.iter().filter(|e| matches!(e, MirrorEvent::Unmatched { .. })).count();
    assert_eq!(unmatched, f.unmatched(splits));
    assert_eq!(stats.unmatched_clips as usize, unmatched);
}

fn temp_files(cfg: &MirrorConfig) -> Vec<PathBuf> {
    std::fs::read_dir(&cfg.tmp_dir).unwrap().map(|e| e.unwrap().path()).collect()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

fn bad_message<'a>(events: &'a [MirrorEvent], wanted: &HashMap<String, Wanted>, name: &str) -> &'a str {
    let id = wanted[name].clip_id;
    events
        .iter()
        .find_map(|e| match e {
            MirrorEvent::ClipBad { clip_id, message, .. } if *clip_id == id => Some(message.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ClipBad for {name}"))
}

#[test]
fn k400_layouts_replacement_bad_clips_and_refused_entries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let f = mirror_fixtures::k400(&root);
    // Capped and three at a time: the train parts finish downloading before the (larger) replacement,
    // so its copies win only because train parts wait for it.
    let server = serve(&root, 1_000_000);
    let out = dir.path().join("out");
    let mut cfg = config(&base(&server), MirrorDataset::K400, &ALL, &out);
    cfg.concurrency = 3;
    let (wanted, stats, events) = block_on(async {
        let wanted = wanted_from_annotations(&base(&server), MirrorDataset::K400, &ALL, &out).await;
        let (stats, events) = fetch(&cfg, wanted.clone()).await;
        (wanted, stats, events)
    });
    check(&f, &ALL, &wanted, &stats, &events);
    assert!(stats.is_complete(), "{stats:?}");
    assert_eq!((stats.tarballs, stats.tarballs_failed, stats.entries_refused), (6, 0, 2));
    let sizes: u64 = f.tarballs.iter().map(|t| std::fs::metadata(root.join(t)).unwrap().len()).sum();
    assert_eq!(stats.bytes_downloaded, sizes);
    assert!(stats.peak_disk_bytes > 0 && stats.peak_disk_bytes <= sizes + 64 * 1024 * 1024);

    // Indices follow the order `mirror_fixtures::k400` adds clips in.
    let names: Vec<String> = f.clips.iter().map(|c| c.file_name()).collect();
    assert_eq!(bad_message(&events, &wanted, &names[14]), "zero-byte clip");
    assert!(bad_message(&events, &wanted, &names[15]).contains("moov atom not found"));
    assert!(bad_message(&events, &wanted, &names[16]).starts_with("ffprobe failed"));
    assert!(bad_message(&events, &wanted, &names[17]).starts_with("decoding failed"), "damaged clip");
    // Bad only in the replacement and in no part: reported once, with the replacement's verdict.
    assert!(bad_message(&events, &wanted, &names[6]).contains("moov atom not found"));
    let from = |name: &str| {
        let id = wanted[name].clip_id;
        events.iter().find_map(|e| match e {
            MirrorEvent::ClipDone { clip_id, tarball, .. } if *clip_id == id => Some(tarball.clone()),
            _ => None,
        })
    };
    assert_eq!(from(&names[0]).as_deref(), Some("400/replacement_for_corrupted_k400.tgz"));
    assert_eq!(from(&names[4]).as_deref(), Some("400/train/part_1.tar.gz"), "plain tar with a deep prefix");
    assert_eq!(from(&names[5]).as_deref(), Some("400/train/part_1.tar.gz"), "bad in the replacement");

    // Refused entries wrote nothing anywhere; downloads and temp clips are gone, clip lists stay.
    assert!(!Path::new("/tmp/evil").join(&names[22]).exists());
    assert!(!out.join("..").join(&names[21]).exists());
    assert!(temp_files(&cfg).is_empty());
    let left = files_under(&cfg.work_dir);
    assert!(left.iter().all(|p| p.ends_with(".clips")), "{left:?}");
    assert_eq!(left.len(), 6);
    let done = events.iter().filter(|e| matches!(e, MirrorEvent::TarballDone { .. })).count();
    assert_eq!(done, 6);
}

#[test]
fn k600_class_tarballs_with_odd_names_apple_double_and_a_missing_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let f = mirror_fixtures::k600(&root);
    let server = serve(&root, 0);
    let out = dir.path().join("out");
    let splits = ["train", "validate"];
    let mut cfg = config(&base(&server), MirrorDataset::K600, &splits, &out);
    cfg.keep_tarballs = true;
    let wanted = wanted_from_fixture(&f, &splits, &out);
    let (stats, events) = block_on(fetch(&cfg, wanted.clone()));
    check(&f, &splits, &wanted, &stats, &events);
    assert_eq!((stats.tarballs, stats.tarballs_failed), (4, 1));
    assert!(!stats.is_complete());
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MirrorEvent::TarballFailed { name, message } => Some((name.as_str(), message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "600/val/zumba.tar.gz");
    assert!(failed[0].1.contains("404"), "{}", failed[0].1);
    let paths: Vec<String> = server.stats().log.iter().map(|e| e.path.clone()).collect();
    let football = "/files/600/train/passing%20American%20football%20%28in%20game%29.tar.gz";
    assert!(paths.iter().any(|p| p == football), "{paths:?}");
    // keep_tarballs leaves the downloads, under their decoded names.
    assert!(cfg.work_dir.join("600/train/massaging person's head.tar.gz").is_file());
    assert!(cfg.work_dir.join("600/val/tying knot (not on a tie).tar.gz").is_file());
    // Only clips were placed: no AppleDouble file anywhere in the output.
    let placed = files_under(&out);
    assert!(placed.iter().all(|p| !p.contains("._")), "{placed:?}");
}

#[test]
fn k700_class_folders_then_a_rerun_skips_finished_tarballs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let f = mirror_fixtures::k700_2020(&root);
    let server = serve(&root, 0);
    let out = dir.path().join("out");
    let cfg = config(&base(&server), MirrorDataset::K700_2020, &ALL, &out);
    let (wanted, stats, events) = block_on(async {
        let wanted = wanted_from_annotations(&base(&server), MirrorDataset::K700_2020, &ALL, &out).await;
        let (stats, events) = fetch(&cfg, wanted.clone()).await;
        (wanted, stats, events)
    });
    check(&f, &ALL, &wanted, &stats, &events);
    assert!(stats.is_complete());
    assert_eq!(stats.tarballs, 7);
    let knot = f.clips.iter().find(|c| c.split == "train" && c.label == "tying knot (not on a tie)").unwrap();
    let dest = &wanted[&knot.file_name()].dest;
    assert!(dest.ends_with(format!("train/tying knot (not on a tie)/{}", knot.file_name())));

    // The clip goes missing; the rerun wants only it and must fetch only the tarball that holds it.
    std::fs::remove_file(dest).unwrap();
    let again: HashMap<String, Wanted> =
        wanted.iter().filter(|(n, _)| **n == knot.file_name()).map(|(n, w)| (n.clone(), w.clone())).collect();
    let requests_before = server.stats().log.len();
    let (stats, events) = block_on(fetch(&cfg, again));
    assert_eq!((stats.tarballs, stats.tarballs_skipped, stats.clips_placed), (1, 6, 1));
    assert!(dest.is_file());
    let log = server.stats().log;
    let tarball_requests: Vec<&str> =
        log[requests_before..].iter().map(|e| e.path.as_str()).filter(|p| p.ends_with(".tar.gz")).collect();
    assert_eq!(tarball_requests, ["/files/700_2020/train/k700_train_003.tar.gz"]);
    let packed = f.clips.iter().filter(|c| c.expect != Expect::Absent).count();
    let unmatched = events.iter().filter(|e| matches!(e, MirrorEvent::Unmatched { .. })).count();
    assert_eq!(unmatched, packed - 1, "skipped tarballs still report their unwanted clips");
}

/// A part of more than 1 MB, fetched through a capped server so that it can be cut off midway.
fn resumable_fixture(root: &Path) -> (Fixture, u64) {
    let f = mirror_fixtures::k400_scaled(root, &["validate"], 1, 24);
    let size = std::fs::metadata(root.join("400/val/part_0.tar.gz")).unwrap().len();
    assert!(size > 1_000_000, "{size}");
    (f, size)
}

/// Waits (bounded) until the fetch has received at least `bytes`.
async fn wait_for_bytes(rx: &mut mpsc::UnboundedReceiver<MirrorEvent>, bytes: u64) {
    let mut seen = 0;
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(MirrorEvent::Bytes { n })) => seen += n,
            Ok(Some(_)) => {}
            other => panic!("the fetch ended or stalled before {bytes} bytes: {other:?}"),
        }
        if seen >= bytes {
            return;
        }
    }
    panic!("too many events before {bytes} bytes");
}

#[test]
fn a_killed_fetch_resumes_the_tarball_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let (f, size) = resumable_fixture(&root);
    let out = dir.path().join("out");
    let splits = ["validate"];
    let wanted = wanted_from_fixture(&f, &splits, &out);
    let part = {
        let slow = serve(&root, 250_000);
        let cfg = config(&base(&slow), MirrorDataset::K400, &splits, &out);
        let part = cfg.work_dir.join("400/val/part_0.tar.gz.part");
        let wanted = wanted.clone();
        block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let (_stop, stop_rx) = watch::channel(false);
            let task =
                tokio::spawn(async move { mirror::fetch(&cfg, wanted, reqwest::Client::new(), tx, stop_rx).await });
            wait_for_bytes(&mut rx, 250_000).await;
            // Dropping the future mid-download is what a SIGKILL leaves behind.
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        });
        part
    };
    let have = std::fs::metadata(&part).expect("the .part stays").len();
    assert!(have >= 250_000 && have < size, "{have} of {size}");

    let fast = serve(&root, 0);
    let cfg = config(&base(&fast), MirrorDataset::K400, &splits, &out);
    let (stats, events) = block_on(fetch(&cfg, wanted.clone()));
    let log = fast.stats().log;
    let gets: Vec<_> = log.iter().filter(|e| e.path == "/files/400/val/part_0.tar.gz").collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range.as_deref(), Some(format!("bytes={have}-").as_str()));
    assert_eq!(gets[0].status, 206);
    assert_eq!(stats.bytes_downloaded, size - have);
    check(&f, &splits, &wanted, &stats, &events);
    assert!(!part.exists());
    let started = events.iter().find_map(|e| match e {
        MirrorEvent::TarballStarted { total_bytes, .. } => Some(*total_bytes),
        _ => None,
    });
    assert_eq!(started, Some(Some(size)));
}

#[test]
fn stop_returns_promptly_keeping_the_part_and_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let (f, size) = resumable_fixture(&root);
    let out = dir.path().join("out");
    let splits = ["validate"];
    let wanted = wanted_from_fixture(&f, &splits, &out);
    let slow = serve(&root, 300_000);
    let cfg = config(&base(&slow), MirrorDataset::K400, &splits, &out);
    let (stats, events) = block_on({
        let (cfg, wanted) = (cfg.clone(), wanted.clone());
        async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let (stop, stop_rx) = watch::channel(false);
            let task =
                tokio::spawn(async move { mirror::fetch(&cfg, wanted, reqwest::Client::new(), tx, stop_rx).await });
            wait_for_bytes(&mut rx, 200_000).await;
            stop.send_replace(true);
            let stats = task.await.unwrap().expect("a stopped fetch is not an error");
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            (stats, events)
        }
    });
    assert!(stats.stopped && !stats.is_complete(), "{stats:?}");
    assert!(stats.bytes_downloaded < size);
    assert!(!events.iter().any(|e| matches!(e, MirrorEvent::ClipDone { .. } | MirrorEvent::ClipBad { .. })));
    let part = std::fs::metadata(cfg.work_dir.join("400/val/part_0.tar.gz.part")).expect("the .part stays");
    assert!(part.len() > 0 && part.len() < size);
    assert!(temp_files(&cfg).is_empty());
    assert_eq!(stats.clips_placed, 0);
}

#[test]
fn short_clips_are_bad_and_a_missing_ffprobe_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let f = mirror_fixtures::k400_scaled(&root, &["test"], 1, 2);
    let server = serve(&root, 0);
    let out = dir.path().join("out");
    let mut wanted = wanted_from_fixture(&f, &["test"], &out);
    let short = f.clips[0].file_name();
    wanted.get_mut(&short).unwrap().expected_duration = 10.0;
    let cfg = config(&base(&server), MirrorDataset::K400, &["test"], &out);
    let (stats, events) = block_on(fetch(&cfg, wanted.clone()));
    assert_eq!((stats.clips_placed, stats.clips_bad), (1, 1));
    assert!(bad_message(&events, &wanted, &short).starts_with("too short: 3."), "{events:?}");

    // Without ffprobe every clip would look corrupt: that is the machine's fault and ends the run instead.
    let mut broken = config(&base(&server), MirrorDataset::K400, &["test"], &dir.path().join("out2"));
    broken.ffprobe = dir.path().join("no-such-ffprobe");
    let (result, events) = block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = watch::channel(false);
        let result = mirror::fetch(&broken, wanted, reqwest::Client::new(), tx, stop_rx).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (result, events)
    });
    let err = result.expect_err("a missing tool is an error");
    assert!(format!("{err:#}").contains("was not found"), "{err:#}");
    assert!(!events.iter().any(|e| matches!(e, MirrorEvent::ClipBad { .. } | MirrorEvent::ClipDone { .. })));
    assert!(temp_files(&broken).is_empty());
}

type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A static server over `root` that cuts the first response for each tarball after `cut` body bytes while
/// promising the whole length, the way a dropped S3 connection looks. It records each path and Range.
async fn cutting_server(root: PathBuf, cut: usize) -> (String, RequestLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = RequestLog::default();
    let shared = log.clone();
    tokio::spawn(async move {
        for _ in 0..1000 {
            let Ok((sock, _)) = listener.accept().await else { return };
            tokio::spawn(answer(sock, root.clone(), shared.clone(), cut));
        }
    });
    (format!("http://{addr}"), log)
}

async fn answer(mut sock: tokio::net::TcpStream, root: PathBuf, log: RequestLog, cut: usize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(n) if n > 0 && head.len() < 16 * 1024 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = text.lines().find_map(|l| l.strip_prefix("range:").map(|v| v.trim().to_string()));
    let first = {
        let mut log = log.lock().unwrap();
        let first = !log.iter().any(|(p, _)| *p == path);
        log.push((path.clone(), range.clone()));
        first
    };
    let Ok(body) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
        let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        return;
    };
    let start =
        range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok()).unwrap_or(0);
    let len = body.len();
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n",
            len - start,
            len - 1
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    let body = &body[start..];
    let send = if first && path.ends_with(".tar.gz") { &body[..cut.min(body.len())] } else { body };
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(send).await;
    let _ = sock.shutdown().await;
}

#[test]
fn a_dropped_connection_is_resumed_within_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let (f, size) = resumable_fixture(&root);
    let out = dir.path().join("out");
    let splits = ["validate"];
    let wanted = wanted_from_fixture(&f, &splits, &out);
    let cut = 100_000;
    let (stats, events, log) = block_on(async {
        let (base, log) = cutting_server(root.clone(), cut).await;
        let cfg = config(&base, MirrorDataset::K400, &splits, &out);
        let (stats, events) = fetch(&cfg, wanted.clone()).await;
        let log = log.lock().unwrap().clone();
        (stats, events, log)
    });
    let ranges: Vec<Option<String>> =
        log.iter().filter(|(p, _)| p == "/400/val/part_0.tar.gz").map(|(_, r)| r.clone()).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={cut}-"))]);
    assert_eq!(stats.bytes_downloaded, size);
    check(&f, &splits, &wanted, &stats, &events);
}
