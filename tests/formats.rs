//! Clips from YouTube-shaped watch pages, which offer both a progressive MP4 (itag 18) and DASH video-only +
//! audio-only fragmented MP4s: the default format choice takes the DASH pair, `--ytdlp-arg=-f
//! --ytdlp-arg=18` the progressive file. Either way every clip is frame-accurate and only the window (plus
//! the file's header) is fetched.

mod common;

use std::ffi::OsString;

use common::*;

fn with_template(mut args: Vec<OsString>, template: &str) -> Vec<OsString> {
    let at = args.iter().position(|a| a == "--url-template").expect("download_args sets a template");
    args[at + 1] = template.into();
    args
}

#[test]
fn watch_pages_give_the_dash_pair_or_itag_18_and_only_the_window_is_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let mut rows = real_rows(60, 5);
    rows.push(Row::new("fractional", "fmtfracaaaa", 17.4, 27.4));
    rows.push(Row::new("near the end", "fmtendaaaaa", 55.0, 65.0));
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let id = &rows[0].id;
    let dash = server.dash_media(id);
    let audio = dash.audio.as_ref().expect("the test profile has audio");
    let (video_packets, audio_packets) = (packets(&dash.video.path), packets(&audio.path));
    let progressive_packets = packets(server.video_path(id));
    let dash_header = mp4_header_len(&dash.video.path) + mp4_header_len(&audio.path);
    let progressive_header = mp4_header_len(server.video_path(id));

    // Requests the test source logs per clip, at most (issue 14's targets): the watch page, which lists every
    // format as YouTube's does (no manifest request), then per stream one header read that also holds what
    // ffmpeg probes after the header (the first packets), and the window in one piece that, for DASH, also
    // holds what ffmpeg usually reads past it. The DASH files end with their last fragment, as YouTube's do,
    // so ffmpeg does not look at their last bytes for an `mfra`. Before: 6 (DASH) and 4 (itag 18), with the
    // manifest yt-dlp fetched from the page; 8 and 5 before the relay's first read was sized.
    // (name, extra arguments, format id, header bytes, most requests per clip)
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, u64, usize);
    let cases: [Case; 2] = [
        ("dash", &[], "133+140", dash_header, 5),
        ("progressive", &["--ytdlp-arg=-f", "--ytdlp-arg=18"], "18", progressive_header, 3),
    ];
    let mut logged = 0;
    for (name, extra, format_id, header, most_requests) in cases {
        let out = tmp.path().join(name);
        let mut args = with_template(download_args(&server, &out, &[&csv]), &server.watch_url_template());
        args.extend(extra.iter().map(OsString::from));
        run(&args).expect_code(0);

        let log = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
        for row in &rows {
            let requests: Vec<_> = log[logged..].iter().filter(|e| e.id.as_deref() == Some(row.id.as_str())).collect();
            // (path, range, status, ms after the clip's first request)
            let t0 = requests.iter().map(|e| e.time_ms).min().unwrap_or(0);
            let shown: Vec<_> =
                requests.iter().map(|e| (e.path.as_str(), e.range.as_deref(), e.status, e.time_ms - t0)).collect();
            let served: u64 = requests.iter().map(|e| e.bytes).sum();
            println!("{name}: {} took {} requests, {served} B: {shown:?}", row.id, requests.len());
            assert!(requests.len() <= most_requests, "{name}: {} took {} requests: {shown:?}", row.id, requests.len());
            let pages = requests.iter().filter(|e| e.path == "/watch").count();
            assert_eq!(pages, 1, "{name}: {} fetched the page once: {shown:?}", row.id);
            assert!(requests.iter().all(|e| !e.path.ends_with(".mpd")), "{name}: {} needed no manifest", row.id);
        }
        let logged_before = logged;
        logged = log.len();
        let stats = read_csv(&out.join("stats.csv"));
        assert_eq!(stats.rows.len(), rows.len(), "{name}");
        let status = run(&[OsString::from("status"), "--json".into(), "--out".into(), out.clone().into()]);
        let status: serde_json::Value = serde_json::from_str(&status.expect_code(0).stdout).expect("status JSON");
        let recorded: u64 = stats.rows.iter().map(|r| r["media_requests"].parse::<u64>().unwrap()).sum();
        assert_eq!(status["media_requests"], recorded, "{name}: status --json sums stats.csv");
        let report = run(&[OsString::from("report"), "--json".into(), "--out".into(), out.clone().into()]);
        let report: serde_json::Value = serde_json::from_str(&report.expect_code(0).stdout).expect("report JSON");
        assert_eq!(report["bytes"]["media_requests_for_done"], recorded, "{name}: report --json sums stats.csv");
        let per_clip = recorded as f64 / rows.len() as f64;
        for (what, value) in
            [("status", &status["media_requests_per_clip"]), ("report", &report["bytes"]["media_requests_per_clip"])]
        {
            let value = value.as_f64().unwrap_or_else(|| panic!("{name}: {what} says media requests a clip"));
            assert!(
                (value - per_clip).abs() < 1e-9,
                "{name}: {what} says {value} media requests a clip, not {per_clip}"
            );
        }
        for row in &rows {
            assert_clip(&out, row);
            let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
            assert_eq!(line["format_id"], format_id, "{name}: {}", row.id);
            assert_eq!(line["whole_video"], "0", "{name}: {}", row.id);
            // The recorded count is the source's own count of media requests (all but the watch page).
            let media = log[logged_before..]
                .iter()
                .filter(|e| e.id.as_deref() == Some(row.id.as_str()) && e.path != "/watch")
                .count();
            assert_eq!(line["media_requests"], media.to_string(), "{name}: {}", row.id);
            // Every id serves the same synthetic video, so the window's packets are the same for all.
            let end = row.end.min(VIDEO_SECS);
            let window = if name == "dash" {
                window_bytes(&video_packets, row.start, end) + window_bytes(&audio_packets, row.start, end)
            } else {
                window_bytes(&progressive_packets, row.start, end)
            };
            let fetched: u64 = line["bytes_fetched"].parse().unwrap();
            // The header, the window from the sync sample before it (2 s GOP) to a little past its end, and
            // what ffmpeg probes at the start of the media: well within 1.5x the window plus the header.
            assert!(
                fetched <= header + window * 3 / 2,
                "{name}: {} fetched {fetched} B for a {window} B window (header {header} B)",
                row.id
            );
        }
    }
    // The page is small, and no request fetched a whole file.
    let stats = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle");
    let biggest = stats.log.iter().map(|e| e.bytes).max().unwrap_or(0);
    assert!(biggest < dash.video.len / 3, "a request of {biggest} B");
}

/// A progressive file's `moov` grows with its length: on a 3-minute source it is 74 KB, more than a fixed
/// first read holds with what ffmpeg reads after it. The relay sizes that read from the duration (here, as on
/// a DASH manifest, from each format's size and bitrate: the page gives no duration), so the header still
/// takes one request: 3 a clip on itag 18, 5 on the DASH pair, counted by the source.
#[test]
fn a_long_sources_header_takes_one_request() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config().with_duration(180.0));
    let rows = [
        Row::new("long", "longhdraaaa", 5.0, 15.0),
        Row::new("long", "longhdrbbbb", 30.0, 40.0),
        Row::new("long", "longhdrcccc", 47.2, 57.2),
    ];
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let moov = mp4_header_len(server.video_path(&rows[0].id));
    assert!(moov > 64 * 1024, "the premise: a moov of {moov} B, more than the fixed first read");
    let mut logged = 0;
    for (name, extra, most) in [("progressive", &["--ytdlp-arg=-f", "--ytdlp-arg=18"][..], 3), ("dash", &[][..], 5)] {
        let out = tmp.path().join(name);
        let mut args = download_args(&server, &out, &[&csv]);
        args.extend(extra.iter().map(OsString::from));
        run(&args).expect_code(0);
        let log = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
        for row in &rows {
            let requests: Vec<_> = log[logged..]
                .iter()
                .filter(|e| e.id.as_deref() == Some(row.id.as_str()))
                .map(|e| (e.path.as_str(), e.range.as_deref(), e.status))
                .collect();
            assert!(requests.len() <= most, "{name}: {} took {} requests: {requests:?}", row.id, requests.len());
            assert_clip(&out, row);
        }
        logged = log.len();
    }
}

/// YouTube since mid-2026: an egress without a proof-of-origin token is served a DASH file's first bytes,
/// then 403s. Here 127.0.0.3 is such an egress (past the first 128 KiB of each DASH file; YouTube's ~1 MB
/// scaled to the test's short video), 127.0.0.2 is not. Every clip through 127.0.0.3 ends done from itag 18
/// in its one attempt, frame-accurate; once refused, that egress's later clips skip DASH; 127.0.0.2 keeps
/// the DASH pair.
#[test]
fn dash_refused_past_its_first_bytes_on_one_egress_falls_back_to_itag_18_there_only() {
    const REFUSED: &str = "127.0.0.3";
    const JOBS: usize = 2;
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config().with_dash_token(&[REFUSED], 128 * 1024));
    let rows = real_rows(20, 10);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let out = tmp.path().join("out");
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, JOBS);
    // The exact cut: its encode (about 2 s a clip, the same through either egress) keeps the two egresses'
    // clips in step, so the refusing one serves clips after its refusal. With the smart cut's 0.3 s, the
    // other egress can run through nearly every row while the refusing one's first clip falls back to
    // itag 18, and there is no later clip to show that it skips DASH.
    args.extend(os(["--source-address", "127.0.0.2", "--source-address", REFUSED, "--trim", "exact"]));
    run(&args).expect_code(0);

    let log = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
    let stats = read_csv(&out.join("stats.csv"));
    let is_dash = |path: &str| path.ends_with("/video.mp4") || path.ends_with("/audio.m4a");
    let (mut refused_clips, mut dash_on_refused, mut kept) = (0, 0, 0);
    for row in &rows {
        assert_clip(&out, row);
        let requests: Vec<_> = log.iter().filter(|e| e.id.as_deref() == Some(row.id.as_str())).collect();
        let ips: std::collections::BTreeSet<&str> = requests.iter().map(|e| e.ip.as_str()).collect();
        assert_eq!(ips.len(), 1, "{}: one egress per clip: {ips:?}", row.id);
        let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
        let dash_requests = requests.iter().filter(|e| is_dash(&e.path)).count();
        let shown: Vec<_> = requests.iter().map(|e| (e.path.as_str(), e.range.as_deref(), e.status)).collect();
        if ips.contains(REFUSED) {
            refused_clips += 1;
            assert_eq!(line["format_id"], "18", "{}: {shown:?}", row.id);
            dash_on_refused += usize::from(dash_requests > 0);
        } else {
            kept += 1;
            assert_eq!(line["format_id"], "133+140", "{}: {shown:?}", row.id);
            assert!(requests.iter().all(|e| e.status < 400), "{}: {shown:?}", row.id);
        }
        // What the relay sent upstream, the refused DASH requests included, is what the clip records.
        let media = requests.iter().filter(|e| e.path != "/watch").count();
        assert_eq!(line["media_requests"], media.to_string(), "{}: {shown:?}", row.id);
        assert_eq!(line["whole_video"], "0", "{}", row.id);
    }
    assert!(kept >= 1 && refused_clips >= 1, "both egresses served clips: {kept} and {refused_clips}");
    // Only the clips already running when the first 403 came tried DASH on the refusing egress.
    assert!(dash_on_refused >= 1, "the refusing egress was asked for DASH once");
    assert!(dash_on_refused <= JOBS, "{dash_on_refused} clips tried DASH on {REFUSED}");
    let refused_log = log.iter().filter(|e| e.ip == REFUSED && is_dash(&e.path) && e.status == 403).count();
    assert!(refused_log >= 1, "the test source refused DASH on {REFUSED}");
    assert!(refused_clips > dash_on_refused, "{REFUSED}'s later clips skipped DASH: {refused_clips} clips");
    // No attempt charged: one attempt per clip, each done.
    let attempts = attempts(&out);
    assert_eq!(attempts.len(), rows.len(), "{attempts:?}");
    assert!(attempts.iter().all(|a| a.outcome == "done"), "{attempts:?}");
}

/// The refusal outlives the run: the journal keeps it per egress, `status` and the report show it, and a
/// rerun with new clips through that egress asks for no DASH byte at all, every clip coming from itag 18.
#[test]
fn dash_refused_on_an_egress_is_remembered_by_the_next_run() {
    const REFUSED: &str = "127.0.0.3";
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config().with_dash_token(&[REFUSED], 128 * 1024));
    let first = real_rows(40, 2);
    let csv = tmp.path().join("first.csv");
    write_csv(&csv, &first);
    let out = tmp.path().join("out");
    let mut args = download_args(&server, &out, &[&csv]);
    set_jobs(&mut args, 1);
    args.extend(os(["--source-address", REFUSED]));
    run(&args).expect_code(0);
    let is_dash = |path: &str| path.ends_with("/video.mp4") || path.ends_with("/audio.m4a");
    let log = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
    assert!(log.iter().any(|e| is_dash(&e.path) && e.status == 403), "the first run was refused DASH");

    let status = run(&[OsString::from("status"), "--json".into(), "--out".into(), out.clone().into()]);
    let status: serde_json::Value = serde_json::from_str(&status.expect_code(0).stdout).expect("status JSON");
    let egresses = status["egresses"].as_array().expect("egresses");
    let refused: Vec<_> = egresses.iter().filter(|e| e["dash_refused_since"].is_string()).collect();
    assert_eq!(refused.len(), 1, "{egresses:?}");
    assert!(refused[0]["egress"].as_str().unwrap().contains(REFUSED), "{egresses:?}");
    let status_text =
        run(&[OsString::from("status"), "--out".into(), out.clone().into()]).expect_code(0).stdout.clone();
    assert!(
        status_text.contains("DASH refused since") && status_text.contains("clips start from itag 18"),
        "{status_text}"
    );
    let report = run(&[OsString::from("report"), "--json".into(), "--out".into(), out.clone().into()]);
    let report: serde_json::Value = serde_json::from_str(&report.expect_code(0).stdout).expect("report JSON");
    let listed = report["throughput"]["dash_refused"].as_array().expect("the report lists refused egresses");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["egress"], refused[0]["egress"]);

    // The rerun: the same clips (done) and new ones, through the same egress.
    let second = real_rows(42, 3);
    let csv2 = tmp.path().join("second.csv");
    write_csv(&csv2, &second);
    let mut args = download_args(&server, &out, &[&csv, &csv2]);
    set_jobs(&mut args, 2);
    args.extend(os(["--source-address", REFUSED]));
    run(&args).expect_code(0);
    let log2 = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
    let rerun = &log2[log.len()..];
    let shown: Vec<_> = rerun.iter().map(|e| (e.path.as_str(), e.range.as_deref(), e.status)).collect();
    assert!(rerun.iter().all(|e| !is_dash(&e.path)), "the rerun asked for DASH: {shown:?}");
    assert!(!rerun.is_empty(), "the rerun fetched the new clips");
    let stats = read_csv(&out.join("stats.csv"));
    for row in first.iter().chain(&second) {
        assert_clip(&out, row);
    }
    // (A first-run clip whose window lies in the first bytes of each DASH file may have come from DASH.)
    for row in &second {
        let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
        assert_eq!(line["format_id"], "18", "{}", row.id);
    }
    // Nothing charged: one attempt per clip.
    let all = attempts(&out);
    assert_eq!(all.len(), first.len() + second.len(), "{all:?}");
    assert!(all.iter().all(|a| a.outcome == "done"), "{all:?}");

    // A day later the refusal has lapsed (its time moved back 25 hours here): status says so, and the next
    // run tries DASH again through that egress. Refused again, its clips still end done from itag 18,
    // uncharged, and the refusal holds from the new one.
    let conn = rusqlite::Connection::open(journal_path(&out)).unwrap();
    let day_ago = conn
        .query_row("UPDATE dash_refused SET since_ms = since_ms - 25 * 3600 * 1000 RETURNING since_ms", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    drop(conn);
    let status_text =
        run(&[OsString::from("status"), "--out".into(), out.clone().into()]).expect_code(0).stdout.clone();
    assert!(status_text.contains("the next run tries DASH again"), "{status_text}");
    let third = real_rows(50, 2);
    let csv3 = tmp.path().join("third.csv");
    write_csv(&csv3, &third);
    let mut args = download_args(&server, &out, &[&csv, &csv2, &csv3]);
    set_jobs(&mut args, 1);
    args.extend(os(["--source-address", REFUSED]));
    run(&args).expect_code(0);
    let log3 = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
    let again = &log3[log2.len()..];
    assert!(again.iter().any(|e| is_dash(&e.path) && e.status == 403), "the lapsed refusal let DASH be tried");
    let stats = read_csv(&out.join("stats.csv"));
    for row in &third {
        assert_clip(&out, row);
        let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
        assert_eq!(line["format_id"], "18", "{}", row.id);
    }
    let all = attempts(&out);
    assert_eq!(all.len(), first.len() + second.len() + third.len(), "nothing charged: {all:?}");
    let renewed: i64 = rusqlite::Connection::open(journal_path(&out))
        .unwrap()
        .query_row("SELECT since_ms FROM dash_refused", [], |r| r.get(0))
        .unwrap();
    assert!(renewed > day_ago + 24 * 3600 * 1000, "the refusal holds from the new one: {renewed} vs {day_ago}");
    let status = run(&[OsString::from("status"), "--json".into(), "--out".into(), out.clone().into()]);
    let status: serde_json::Value = serde_json::from_str(&status.expect_code(0).stdout).expect("status JSON");
    let egress = status["egresses"].as_array().unwrap().iter().find(|e| e["dash_refused_since"].is_string()).cloned();
    let egress = egress.expect("the refused egress");
    assert_eq!(egress["dash_refused_lapsed"], false, "{egress:#}");
    assert!(egress["dash_refused_until"].is_string(), "{egress:#}");
}
