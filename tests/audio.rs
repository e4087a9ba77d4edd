//! `--audio-only`: clips of the audio stream alone, fetched from the audio-only DASH format (itag 140)
//! through the relay, cut to the sample, in FLAC, WAV or M4A. The test source's sound track names its
//! seconds by pitch and is silent for the first 10 ms of each (`kinetics_testsrc::tone`), so a decoded
//! clip shows which seconds it holds and, from where the next silence falls, where it starts to a
//! fraction of a millisecond.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/skip.rs"]
mod skip;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use common::*;
use kinetics_testsrc::tone;

/// How far a clip's first sample may be from its start time, in seconds: a few samples. Matroska's
/// millisecond timestamps (the video window's container) would already miss by up to 0.5 ms, an AAC
/// frame by 23 ms.
const START_TOLERANCE_S: f64 = 0.00025;

/// The clip file of `row` with extension `ext`.
fn audio_path(out: &Path, row: &Row, ext: &str) -> std::path::PathBuf {
    out.join(row.rel_path().replace(".mp4", &format!(".{ext}")))
}

/// Checks a decoded clip: its length, the seconds its first and last tenth of a second come from, and
/// where the first silent gap after its start falls.
#[track_caller]
fn assert_audio_clip(path: &Path, row: &Row, rate: u32, exact_length: bool) {
    let samples = tone::decode(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    assert_eq!(samples.rate, rate, "{}", path.display());
    let want = ((row.end - row.start) * f64::from(rate)).round() as usize;
    let got = samples.data.len();
    if exact_length {
        assert!(got.abs_diff(want) <= 1, "{}: {got} samples, want {want}", path.display());
    } else {
        // AAC: whole frames of 1024 samples, trimmed by the file's edit list.
        assert!(got.abs_diff(want) <= 1024, "{}: {got} samples, want {want}", path.display());
    }
    let second = |t: f64| (t.floor() as u32) % tone::CYCLE;
    assert_eq!(samples.first_second(0.1), Some(second(row.start)), "{}: first second", path.display());
    assert_eq!(samples.last_second(0.1), Some(second(row.end - 0.05)), "{}: last second", path.display());
    let boundary = row.start.floor() + 1.0 - row.start;
    let middle = samples.gap_middle(boundary).unwrap_or_else(|| panic!("{}: no gap near {boundary}", path.display()));
    let off = middle - (boundary + tone::GAP_SECS / 2.0);
    assert!(off.abs() < START_TOLERANCE_S, "{}: the cut starts {:.3} ms off", path.display(), off * 1000.0);
}

/// The clip files under OUT ending in `.{ext}`.
fn files_with(out: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let clips = all_files(out).into_iter().filter(|p| !p.strip_prefix(out).unwrap().starts_with(".kinetics-dl"));
    clips.filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
}

/// The kinds of the streams in a file (`audio`, `video`), from ffprobe.
fn stream_kinds(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().trim_end_matches(',').to_owned()).collect()
}

/// Bytes the source sent for `id` since log entry `from`, and the paths it served them from.
fn served(server: &kinetics_testsrc::TestServer, from: usize, id: &str) -> (u64, Vec<String>) {
    let log = server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log;
    let mine: Vec<_> = log[from..].iter().filter(|e| e.id.as_deref() == Some(id)).collect();
    (mine.iter().map(|e| e.bytes).sum(), mine.iter().map(|e| e.path.clone()).collect())
}

fn log_len(server: &kinetics_testsrc::TestServer) -> usize {
    server.wait_idle(std::time::Duration::from_secs(30)).expect("the server goes idle").log.len()
}

#[test]
fn audio_only_clips_are_cut_to_the_sample_and_fetch_only_the_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let rows = vec![
        Row::new("tone", "audioaaaaaa", 12.7, 15.2),
        // From the very start: the AAC priming frame (before 0) must not shift the sound.
        Row::new("tone", "audiobbbbbb", 0.0, 2.5),
        // AudioSet's shape: 10 s at a fractional start.
        Row::new("tone", "audiocccccc", 33.25, 43.25),
        Row::new("tone", "audiodddddd", 50.5, 58.5),
    ];
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);

    // FLAC at 16 kHz mono, the usual shape of audio datasets.
    let out = tmp.path().join("flac");
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--audio-only", "--sample-rate", "16000", "--channels", "1"]));
    let before = log_len(&server);
    run(&args).expect_code(0);
    let audio_bytes: Vec<(u64, Vec<String>)> = rows.iter().map(|r| served(&server, before, &r.id)).collect();
    let files = files_with(&out, "flac");
    assert_eq!(files.len(), rows.len(), "{files:?}");
    assert!(clip_files(&out).is_empty(), "no video clips");
    let stats = read_csv(&out.join("stats.csv"));
    assert_eq!(stats.rows.len(), rows.len());
    for row in &rows {
        let path = audio_path(&out, row, "flac");
        assert!(path.is_file(), "{} missing; clips: {files:?}", path.display());
        assert_audio_clip(&path, row, 16_000, true);
        assert_eq!(stream_kinds(&path), ["audio"], "{}", path.display());
        let rel = path.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
        let line = stats.rows.iter().find(|r| r["path"] == rel).unwrap_or_else(|| panic!("stats.csv has {rel}"));
        assert_eq!(line["format_id"], "140", "{rel}: the audio-only format");
    }
    for ((_, paths), row) in audio_bytes.iter().zip(&rows) {
        assert!(paths.iter().any(|p| p.ends_with("/audio.m4a")), "{}: {paths:?}", row.id);
        assert!(!paths.iter().any(|p| p.ends_with("/video.mp4") || p.ends_with(".mp4")), "{}: {paths:?}", row.id);
    }
    let journal = journal_clips(&out);
    assert_eq!(journal.iter().filter(|c| c.state == "done").count(), rows.len());
    run(&[OsString::from("verify"), "--out".into(), out.clone().into()]).expect_code(0);

    // A rerun finds every clip done and fetches nothing.
    let before = log_len(&server);
    run(&args).expect_code(0);
    assert_eq!(log_len(&server), before, "a rerun fetched media");

    // The same rows as video: the audio clips cost a fraction of the video clips' bytes.
    let video_out = tmp.path().join("video");
    let before = log_len(&server);
    run(&download_args(&server, &video_out, &[&csv])).expect_code(0);
    for ((audio, _), row) in audio_bytes.iter().zip(&rows) {
        let (video, _) = served(&server, before, &row.id);
        println!("{}: {audio} B for audio only, {video} B for video with audio", row.id);
        assert!(*audio * 3 < video, "{}: {audio} B for audio only against {video} B for video", row.id);
    }

    // WAV at the source's rate (44.1 kHz) and M4A (AAC, whole frames), from other starts.
    let more = vec![Row::new("tone", "audioeeeeee", 7.333, 9.5), Row::new("tone", "audioffffff", 20.125, 24.5)];
    let more_csv = tmp.path().join("more.csv");
    write_csv(&more_csv, &more);
    for (format, exact) in [("wav", true), ("m4a", false)] {
        let out = tmp.path().join(format);
        let mut args = download_args(&server, &out, &[&more_csv]);
        args.extend(os(["--audio-only", "--audio-format", format]));
        run(&args).expect_code(0);
        assert_eq!(files_with(&out, format).len(), more.len(), "{format}");
        for row in &more {
            assert_audio_clip(&audio_path(&out, row, format), row, 44_100, exact);
        }
    }
}

/// Options that need `--audio-only`, or that `--audio-only` excludes, are refused before any download.
#[test]
fn audio_options_out_of_place_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &[Row::new("tone", "audiozzzzzz", 1.0, 3.0)]);
    let cases: [(&[&str], &str); 9] = [
        (&["--audio-format", "wav"], "--audio-format goes with --audio-only"),
        (&["--sample-rate", "16000"], "--sample-rate goes with --audio-only"),
        (&["--channels", "1"], "--channels goes with --audio-only"),
        (&["--audio-only", "--trim", "copy"], "--audio-only excludes --trim copy/smart"),
        (&["--audio-only", "--no-audio"], "--audio-only excludes --no-audio"),
        (&["--audio-only", "--short-side", "128"], "--audio-only excludes --short-side"),
        (&["--audio-only", "--source", "mirror"], "--audio-only excludes --source mirror/auto"),
        (&["--audio-only", "--sample-rate", "100"], "--sample-rate must be between 8000 and 192000"),
        (&["--audio-only", "--channels", "0"], "--channels must be between 1 and 8"),
    ];
    for (extra, message) in cases {
        let out = tmp.path().join("out");
        let mut args = os(["download", "--url-template", "http://127.0.0.1:9/watch?v={youtube_id}", "--out"]);
        args.push(out.clone().into());
        args.push("--annotations".into());
        args.push(csv.clone().into());
        args.extend(extra.iter().map(OsString::from));
        let output = run(&args);
        output.expect_code(2);
        assert!(output.stderr.contains(message), "{extra:?}: {}", output.stderr);
        assert!(!out.join(".kinetics-dl").exists(), "{extra:?}: nothing is started");
    }
}

/// AudioSet's segments file as audio only: every clip cut to the sample, clips with several labels in the
/// split's folder, every label in the journal.
#[test]
fn audioset_segments_as_audio_only() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/presets/audioset");
    let out = tmp.path().join("out");
    let mut args = download_args(&server, &out, &[&dir.join("eval_segments.csv")]);
    args.extend(os(["--preset", "audioset", "--audio-only", "--sample-rate", "16000", "--channels", "1"]));
    args.extend([OsString::from("--labels-file"), dir.join("class_labels_indices.csv").into()]);
    run(&args).expect_code(0);
    // (row, its folder under OUT)
    let rows = [
        (Row::new("Speech", "audioset-a1", 0.0, 10.0).split("eval"), "eval"),
        (Row::new("Animal", "audioset_b2", 12.25, 22.25).split("eval"), "eval/Animal"),
        (Row::new("Music", "audioset-a1", 30.0, 40.0).split("eval"), "eval"),
    ];
    assert_eq!(files_with(&out, "flac").len(), rows.len(), "{:?}", files_with(&out, "flac"));
    assert!(clip_files(&out).is_empty(), "no video clips");
    for (row, folder) in &rows {
        let path = out.join(folder).join(row.name().replace(".mp4", ".flac"));
        assert_audio_clip(&path, row, 16_000, true);
        assert_eq!(stream_kinds(&path), ["audio"], "{}", path.display());
    }
    let conn = rusqlite::Connection::open(out.join(".kinetics-dl/journal.sqlite")).unwrap();
    let mut labels: Vec<(String, Option<String>)> = conn
        .prepare("SELECT label, labels FROM clips WHERE state = 'done' ORDER BY start_ms")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("Animal".to_string(), None),
            ("Music".to_string(), Some(r#"["Music","Male speech, man speaking"]"#.to_string())),
            ("Speech".to_string(), Some(r#"["Speech","Music"]"#.to_string())),
        ]
    );
}

/// An audio fleet (`download --db URL --fleet NAME --audio-only`): two workers share the clips, each clip is
/// made once as audio, cut to the sample; the audio settings are pinned like the video ones, so a worker
/// asking for video, or for another audio format, is refused before it claims anything.
#[test]
fn an_audio_fleet_shares_its_clips_and_pins_its_audio_settings() {
    let Some(url) = pg::url() else { return };
    let schema = pg::Schema::create(&url, "audio");
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let rows = vec![
        Row::new("tone", "audiogggggg", 3.5, 6.0),
        Row::new("tone", "audiohhhhhh", 17.25, 20.0),
        Row::new("tone", "audioiiiiii", 41.0, 44.5),
        Row::new("tone", "audiojjjjjj", 28.125, 31.0),
    ];
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let worker = |out: &Path, addr: &str, extra: &[&str]| {
        let mut args = os(["download", "--db", &url, "--db-schema", &schema.name, "--fleet", "f", "--out"]);
        args.push(out.into());
        args.extend(os(["--url-template", &server.watch_url_template(), "--retry-delay", "0s", "-j", "2"]));
        args.extend(os(["--source-address", addr, "--quiet"]));
        args.extend(extra.iter().map(OsString::from));
        args
    };
    let audio = ["--audio-only", "--sample-rate", "16000", "--channels", "1"];
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut seeding = worker(&out_a, "127.0.0.2", &audio);
    seeding.extend(os(["--annotations", csv.to_str().unwrap()]));
    let a = Running::download(&seeding);
    let b = Running::download(&worker(&out_b, "127.0.0.3", &audio));
    a.wait(Duration::from_secs(600)).expect_code(0);
    b.wait(Duration::from_secs(600)).expect_code(0);

    let sql = format!(
        "SELECT clip_key, state, rel_path, sha256 FROM {}.clip WHERE fleet = 'f' ORDER BY clip_key",
        schema.name
    );
    let clips: Vec<Vec<String>> =
        pg::psql(&url, &sql).lines().map(|l| l.split('|').map(str::to_string).collect()).collect();
    assert_eq!(clips.len(), rows.len(), "{clips:?}");
    for row in &rows {
        let rel = row.rel_path().replace(".mp4", ".flac");
        let clip = clips.iter().find(|c| c[2] == rel).unwrap_or_else(|| panic!("{rel} in the fleet: {clips:?}"));
        assert_eq!(clip[1], "done", "{clip:?}");
        let copies: Vec<std::path::PathBuf> =
            [&out_a, &out_b].iter().map(|o| o.join(&rel)).filter(|p| p.is_file()).collect();
        assert_eq!(copies.len(), 1, "{rel}: made once, in one worker's folder: {copies:?}");
        assert_eq!(sha256_hex(&copies[0]), clip[3], "{rel}: the file is the one the fleet recorded");
        assert_audio_clip(&copies[0], row, 16_000, true);
        assert_eq!(stream_kinds(&copies[0]), ["audio"], "{rel}");
    }
    assert!(files_with(&out_a, "mp4").is_empty() && files_with(&out_b, "mp4").is_empty(), "no video clips");
    // `merge` with the fleet as arbiter joins the two folders into one, as for video.
    let merged = tmp.path().join("merged");
    let mut args = os(["merge", "--db", &url, "--db-schema", &schema.name, "--fleet", "f", "--mode", "copy", "--out"]);
    args.push(merged.clone().into());
    args.extend([out_a.clone().into(), out_b.clone().into()]);
    run(&args).expect_code(0);
    assert_eq!(files_with(&merged, "flac").len(), rows.len(), "{:?}", all_files(&merged));
    for clip in &clips {
        assert_eq!(sha256_hex(&merged.join(&clip[2])), clip[3], "{}", clip[2]);
    }

    // Settings that would mix other clips into the fleet are refused, naming the option, before any claim.
    let cases: [(&[&str], &str); 2] = [
        (&[], "--audio-only/--audio-format is unset here, `flac` in the fleet"),
        (
            &["--audio-only", "--audio-format", "wav", "--sample-rate", "16000", "--channels", "1"],
            "--audio-only/--audio-format is `wav` here, `flac` in the fleet",
        ),
    ];
    for (extra, says) in cases {
        let out = tmp.path().join("refused");
        let o = run(&worker(&out, "127.0.0.4", extra));
        o.expect_code(2);
        assert!(o.stderr.contains(says), "{extra:?}: {}", o.stderr);
        assert!(files_with(&out, "flac").is_empty() && clip_files(&out).is_empty(), "{extra:?}: nothing made");
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An audio track damaged in the clip's window (the test source flips 512 bytes from half of each media file
/// on) is not made into a clip: the AAC decoder's complaint (`Reserved bit set.`) fails the cut as `corrupt`,
/// since the encoded FLAC or M4A would hold the decoder's concealment and decode cleanly itself.
#[test]
fn a_damaged_audio_track_fails_as_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let id = "audiogarble";
    let server = server(config().with_behaviour(id, kinetics_testsrc::Behaviour::Garble { fraction: 0.5 }));
    // Half of the audio file is about half of the 60 s video.
    let row = Row::new("tone", id, 25.0, 35.0);
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, std::slice::from_ref(&row));
    for format in ["flac", "m4a"] {
        let out = tmp.path().join(format);
        let mut args = download_args(&server, &out, &[&csv]);
        args.extend(os(["--audio-only", "--audio-format", format]));
        run(&args).expect_code(3);
        let failed = read_csv(&out.join("failed.csv"));
        assert_eq!(failed.rows.len(), 1, "{format}: {:?}", failed.rows);
        let line = &failed.rows[0];
        assert_eq!((line["category"].as_str(), line["attempts"].as_str()), ("corrupt", "3"), "{format}: {line:?}");
        let message = &line["message"];
        assert!(message.starts_with("the source is damaged: decoding it, ffmpeg said \"[aac] "), "{message}");
        assert!(files_with(&out, format).is_empty(), "{format}");
    }
}
