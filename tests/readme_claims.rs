//! README claims with a test each: `--proxy` and `--cookies` reach yt-dlp and the relay, `--request-size`
//! bounds every range asked of the media server, temp space is swept at start and holds at most `-j`
//! windows, and clips are H.264 + AAC with the `moov` first (`+faststart`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use kinetics_testsrc::Behaviour;

/// `(codec_type, codec_name)` of every stream, from ffprobe.
fn codecs(path: &Path) -> Vec<(String, String)> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(',').map(|(name, kind)| (kind.to_owned(), name.to_owned())))
        .collect()
}

/// Top-level MP4 box types in file order.
fn top_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let (mut pos, mut kinds) = (0usize, Vec::new());
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned());
        if size < 8 {
            break;
        }
        pos += size;
    }
    kinds
}

/// `a-b` of a `bytes=a-b` header; `None` for open or suffix ranges.
fn span(range: &str) -> Option<u64> {
    let (a, b) = range.strip_prefix("bytes=")?.split_once('-')?;
    Some(b.parse::<u64>().ok()? - a.parse::<u64>().ok()? + 1)
}

#[test]
fn request_size_bounds_ranges_temp_space_is_swept_and_bounded_and_clips_are_faststart_h264_aac() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(100, 4);
    // Slow bodies keep windows in flight long enough to watch the temp space.
    let mut config = config();
    for row in &rows {
        config = config.with_behaviour(&row.id, Behaviour::Slow { bytes_per_sec: 300_000 });
    }
    let server = server(config);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("out");
    // Left over from a killed run: swept at start.
    let stale = out.join(".kinetics-dl").join("tmp").join("stale-window");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("part.mp4"), vec![0u8; 4096]).unwrap();

    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 2);
    args.extend(os(["--request-size", "65536"]));
    let mut running = Running::download(&args);
    let tmp_dir = out.join(".kinetics-dl").join("tmp");
    let (mut most, deadline) = (0usize, Instant::now() + Duration::from_secs(240));
    while !running.exited() {
        let entries = std::fs::read_dir(&tmp_dir).map(|d| d.count()).unwrap_or(0);
        most = most.max(entries);
        assert!(!stale.exists() || most == 0 || entries <= 2, "the stale window outlived the start");
        assert!(Instant::now() < deadline, "the download takes too long");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.wait(Duration::from_secs(10)).expect_code(0);
    assert!(!stale.exists(), "the stale temp window was swept");
    assert!((1..=2).contains(&most), "temp space held {most} windows at once with -j 2");
    assert_eq!(std::fs::read_dir(&tmp_dir).map(|d| d.count()).unwrap_or(0), 0, "temp space is empty after the run");

    for row in &rows {
        assert_clip(&out, row);
        let clip = out.join(row.rel_path());
        let mut streams = codecs(&clip);
        streams.sort();
        assert_eq!(streams, [("audio".into(), "aac".into()), ("video".into(), "h264".into())], "{}", row.id);
        let boxes = top_boxes(&clip);
        let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
        assert!(moov.is_some() && moov < mdat, "{}: moov before mdat (+faststart): {boxes:?}", row.id);
    }
    // Every range the relay asked for is bounded and at most --request-size.
    let stats = server.wait_idle(Duration::from_secs(30)).expect("the server goes idle");
    let ranges: Vec<&String> = stats.log.iter().filter_map(|e| e.range.as_ref()).collect();
    assert!(!ranges.is_empty());
    let too_big: Vec<_> = ranges.iter().filter(|r| span(r).is_none_or(|n| n > 65536)).collect();
    assert!(too_big.is_empty(), "ranges over --request-size 65536: {too_big:?}");
}

#[test]
fn proxy_and_cookies_reach_yt_dlp_and_the_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(110, 2);
    let server = server(config());
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let cookies = tmp.path().join("cookies.txt");
    std::fs::write(
        &cookies,
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t2147483647\tkdl\tfrom-the-cookie-file\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    // The test source doubles as an HTTP proxy: a request for a whole URL is served and marked proxied.
    let proxy = server.base_url();
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--proxy", &proxy, "--cookies"]));
    args.push(cookies.into());
    run(&args).expect_code(0);
    for row in &rows {
        assert_clip(&out, row);
    }
    let stats = server.wait_idle(Duration::from_secs(30)).expect("the server goes idle");
    let direct: Vec<_> = stats.log.iter().filter(|e| !e.proxied).map(|e| (&e.path, &e.range)).collect();
    assert!(direct.is_empty(), "requests that did not go through --proxy: {direct:?}");
    let media: Vec<_> = stats.log.iter().filter(|e| e.range.is_some()).collect();
    assert!(!media.is_empty(), "the relay's requests are in the log");
    let without: Vec<_> = stats
        .log
        .iter()
        .filter(|e| !e.cookie.as_deref().is_some_and(|c| c.contains("kdl=from-the-cookie-file")))
        .map(|e| (&e.path, &e.range))
        .collect();
    assert!(without.is_empty(), "requests without the --cookies cookie: {without:?}");
}

#[test]
fn encode_jobs_bounds_the_encodes_running_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = real_rows(120, 4);
    let server = server(config());
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let log = tmp.path().join("cuts.log");
    // The cut (the one ffmpeg run with +faststart) logs when it starts and ends, and takes a second longer.
    let ffmpeg = write_script(
        tmp.path(),
        "logging-ffmpeg",
        &format!(
            "case \"$*\" in *+faststart*)\n\
               echo \"$(date +%s%3N) start\" >> '{log}'; sleep 1; ffmpeg \"$@\"; rc=$?\n\
               echo \"$(date +%s%3N) end\" >> '{log}'; exit $rc ;;\n\
             esac\n\
             exec ffmpeg \"$@\"",
            log = log.display()
        ),
    );
    let out = tmp.path().join("out");
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 4);
    args.extend(os(["--encode-jobs", "1", "--ffmpeg"]));
    args.push(ffmpeg.into());
    run(&args).expect_code(0);
    for row in &rows {
        assert_clip(&out, row);
    }
    // At most one cut at a time, although the clips' attempts overlapped (so more could have run).
    let mut events: Vec<(i64, i32)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (ms, what) = l.split_once(' ').unwrap();
            (ms.parse().unwrap(), if what == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by_key(|&(ms, delta)| (ms, delta));
    assert_eq!(events.len(), 2 * rows.len(), "one cut a clip: {events:?}");
    let most = events.iter().scan(0, |running, (_, delta)| {
        *running += delta;
        Some(*running)
    });
    assert_eq!(most.max(), Some(1), "cuts ran at once with --encode-jobs 1: {events:?}");
    let attempts = attempts(&out);
    let overlapping = attempts.iter().any(|a| {
        attempts.iter().any(|b| !std::ptr::eq(a, b) && a.started_ms < b.finished_ms && b.started_ms < a.finished_ms)
    });
    assert!(overlapping, "the clips' attempts never overlapped, so the bound was not tested: {attempts:#?}");
}
