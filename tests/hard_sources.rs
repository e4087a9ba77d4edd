//! Cuts from sources as rough as YouTube's, through the watch page: B-frames (composition offsets and an
//! edit list), keyframes at irregular times up to 9.6 s apart, ~5 s DASH fragments with unaligned audio,
//! and a tag per video so a clip cut from another id's stream fails. Every clip is checked frame by frame
//! on the default DASH pair and on itag 18, and the bytes each clip fetched are printed beside its window.

mod common;

use std::ffi::OsString;
use std::path::Path;

use common::*;
use kinetics_testsrc::{Config, Profile, ScenarioEntry, TestServer};

/// A 60 s, 15 fps video like the default one, with YouTube's rough edges and its own tag.
fn hard_profile(tag: u32) -> Profile {
    Profile {
        duration_secs: VIDEO_SECS,
        bframes: 2,
        irregular_keyframes: true,
        dash_fragment_secs: 5.0,
        tag,
        ..Config::for_tests().profile
    }
}

/// Two videos with their own tags; ids map to them by their first letters.
fn hard_server() -> TestServer {
    let mut config = config();
    for (id, tag) in [("hardaaaaaaa", 101), ("hardbbbbbbb", 202)] {
        config = config.with_profile(id, hard_profile(tag)).with_entry(id, ScenarioEntry::default().with_profile(id));
    }
    server(config)
}

/// Windows that meet the irregular keyframes (0, 4.6, 5.9, 13.8, 17, 26.6, 27.2, 32.7, 39.4, 41.5, 49.8,
/// 54.4, 55.7 s) where cuts go wrong: just before one, just after one at the start of a 9.6 s gap,
/// fractional times between them, and the end of the video.
fn hard_rows() -> Vec<Row> {
    vec![
        Row::new("before a keyframe", "hardaaaaaaa", 4.4, 14.4),
        Row::new("in a long gap", "hardaaaaaaa", 17.2, 27.2),
        Row::new("fractional", "hardbbbbbbb", 30.33, 40.33),
        Row::new("at the end", "hardbbbbbbb", 50.0, 60.0),
    ]
}

fn with_template(mut args: Vec<OsString>, template: &str) -> Vec<OsString> {
    let at = args.iter().position(|a| a == "--url-template").expect("download_args sets a template");
    args[at + 1] = template.into();
    args
}

/// Presentation times of the video keyframes of a local file.
fn keyframe_times(path: &Path) -> Vec<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut keys: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split_once(','))
        .filter(|(_, flags)| flags.starts_with('K'))
        .filter_map(|(pts, _)| pts.parse().ok())
        .collect();
    keys.sort_by(f64::total_cmp);
    keys
}

/// The bytes a cut of `start..end` cannot do without, per file: every packet from the last keyframe at or
/// before `start` (decoding starts there) to `end`, and in a fragmented file from the start of the fragment
/// holding that keyframe (its `moof` describes the samples that follow).
fn needed_bytes(files: &[&Path], start: f64, end: f64) -> u64 {
    let mut total = 0;
    for file in files {
        let all = packets(file);
        let keys = keyframe_times(file);
        let from =
            if keys.is_empty() { start } else { keys.into_iter().filter(|k| *k <= start + 1e-6).fold(0.0, f64::max) };
        let mut first_pos = in_window(&all, from, end).map(|p| p.pos).min().expect("packets in the window");
        if let Ok(fragments) = kinetics_testsrc::mp4::sidx_fragments(file) {
            first_pos = fragments.iter().map(|f| f.offset).filter(|o| *o <= first_pos).max().unwrap_or(first_pos);
        }
        total += all.iter().filter(|p| p.pos >= first_pos && p.pts < end).map(|p| p.size).sum::<u64>();
    }
    total
}

#[test]
fn cuts_from_b_frame_sources_with_irregular_keyframes_are_frame_accurate_on_dash_and_itag_18() {
    let tmp = tempfile::tempdir().unwrap();
    let server = hard_server();
    let rows = hard_rows();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let cases: [(&str, &[&str], &str); 2] =
        [("dash", &[], "133+140"), ("progressive", &["--ytdlp-arg=-f", "--ytdlp-arg=18"], "18")];
    for (name, extra, format_id) in cases {
        let out = tmp.path().join(name);
        let mut args = with_template(download_args(&server, &out, &[&csv]), &server.watch_url_template());
        args.extend(extra.iter().map(OsString::from));
        run(&args).expect_code(0);
        let stats = read_csv(&out.join("stats.csv"));
        assert_eq!(stats.rows.len(), rows.len(), "{name}");
        for row in &rows {
            let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
            let fetched: u64 = line["bytes_fetched"].parse().unwrap();
            let dash = server.dash_media(&row.id);
            let files: Vec<&Path> = if name == "dash" {
                vec![&dash.video.path, &dash.audio.as_ref().unwrap().path]
            } else {
                vec![server.video_path(&row.id)]
            };
            let window: u64 = files.iter().map(|f| window_bytes(&packets(f), row.start, row.end)).sum();
            let needed = needed_bytes(&files, row.start, row.end);
            let header: u64 = files.iter().map(|f| mp4_header_len(f)).sum();
            println!(
                "{name} {} {}-{}: fetched {fetched} B for a {window} B window ({:.2}x), {needed} B from the \
                 keyframe's fragment on ({:.2}x), header {header} B",
                row.id,
                row.start,
                row.end,
                fetched as f64 / window as f64,
                fetched as f64 / (needed + header) as f64,
            );
            // The header, the window from the keyframe before it, a pad past its end and what ffmpeg probes.
            assert!(
                fetched <= header + needed * 5 / 4 + 64 * 1024,
                "{name}: {} fetched {fetched} B; needed {needed} B, header {header} B",
                row.id
            );
            assert_eq!(line["format_id"], format_id, "{name}: {}", row.id);
            assert_clip(&out, row);
            assert_tag(&out.join(row.rel_path()), server.profile_for(&row.id).tag);
        }
    }
}

/// A video that YouTube also offers as VP9 at a height nearer the target than its H.264: the default choice
/// takes the WebM video (itag 243) with the AAC audio, and `-f 243+251` the full WebM pair (VP9 + Opus).
/// The relay has no index plan for WebM (it falls back to its size ramp); the cut must still be exact.
#[test]
fn cuts_from_webm_vp9_and_opus_are_frame_accurate() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = Profile { webm_height: 360, tag: 303, ..Config::for_tests().profile.clone() };
    let profile = Profile { duration_secs: VIDEO_SECS, ..profile };
    let config =
        config().with_profile("webm", profile).with_entry("webmaaaaaaa", ScenarioEntry::default().with_profile("webm"));
    let server = server(config);
    let rows =
        vec![Row::new("webm fractional", "webmaaaaaaa", 12.4, 22.4), Row::new("webm end", "webmaaaaaaa", 50.0, 60.0)];
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let dash = server.dash_media("webmaaaaaaa");
    let (vp9, opus) = (dash.webm_video.as_ref().expect("VP9 video"), dash.webm_audio.as_ref().expect("Opus audio"));
    let aac = dash.audio.as_ref().expect("AAC audio");
    let cases: [(&str, &[&str], &str, [&kinetics_testsrc::TrackFile; 2]); 2] = [
        ("default", &[], "243+140", [vp9, aac]),
        ("webm pair", &["--ytdlp-arg=-f", "--ytdlp-arg=243+251"], "243+251", [vp9, opus]),
    ];
    for (name, extra, format_id, files) in cases {
        let out = tmp.path().join(name.replace(' ', "-"));
        let mut args = with_template(download_args(&server, &out, &[&csv]), &server.watch_url_template());
        args.extend(extra.iter().map(OsString::from));
        run(&args).expect_code(0);
        let stats = read_csv(&out.join("stats.csv"));
        for row in &rows {
            let line = stats.rows.iter().find(|r| r["path"] == row.rel_path()).expect("a stats.csv line");
            assert_eq!(line["format_id"], format_id, "{name}: {}", row.id);
            assert_clip(&out, row);
            assert_tag(&out.join(row.rel_path()), 303);
            let fetched: u64 = line["bytes_fetched"].parse().unwrap();
            let window: u64 = files.iter().map(|f| window_bytes(&packets(&f.path), row.start, row.end)).sum();
            let header: u64 = files.iter().map(|f| f.layout.segment.index_last + 1).sum();
            println!(
                "{name} {} {}-{}: fetched {fetched} B for a {window} B window ({:.2}x), header and index {header} B",
                row.id,
                row.start,
                row.end,
                fetched as f64 / window as f64
            );
            // No plan for WebM: the size ramp may overshoot, but never toward the whole file.
            let whole: u64 = files.iter().map(|f| f.len).sum();
            assert!(fetched < whole / 2, "{name}: {} fetched {fetched} B of {whole} B", row.id);
        }
    }
}
