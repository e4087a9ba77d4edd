//! `--trim smart` re-encodes only up to the first keyframe of a clip and copies the rest: on the default DASH
//! pair and on itag 18 its clips hold exactly the frames of the exact cut (checked frame by frame on the
//! test source's numbered frames), with the source's AAC audio copied, not encoded, starting on the exact
//! cut's sample (the test source's sound track names its seconds and marks each with a 10 ms silence,
//! `kinetics_testsrc::tone`) and as long to within an AAC frame; where a source cannot be smart-cut (B-frames,
//! `--short-side`) the exact cut is made and the journal says which trim made each clip and why.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use common::*;
use kinetics_testsrc::{tone, Config, Profile, ScenarioEntry};

fn with_template(mut args: Vec<OsString>, template: &str) -> Vec<OsString> {
    let at = args.iter().position(|a| a == "--url-template").expect("download_args sets a template");
    args[at + 1] = template.into();
    args
}

/// The `trim` the journal recorded for each done clip, by youtube id.
fn trims(out: &Path) -> std::collections::BTreeMap<String, String> {
    let conn = open_journal(out).expect("the journal opens");
    let mut stmt = conn.prepare("SELECT youtube_id, COALESCE(trim, '') FROM clips WHERE state = 'done'").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The audio stream's duration in seconds and its channels.
fn audio_stream(path: &Path) -> (f64, u32) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration,channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&o.stdout);
    let (channels, secs) = text.trim().split_once(',').unwrap_or_else(|| panic!("{} has no audio", path.display()));
    (secs.parse().unwrap(), channels.parse().unwrap())
}

/// How far a smart cut's sound may start from its first frame's time: the window's Matroska timestamps are
/// rounded to the millisecond. The exact cut's is let be 2.5 ms off: its AAC encode starts 1-2 ms late on
/// these windows (measured 0.95-1.7 ms), which this test records but does not set out to check.
const GAP_TOLERANCE_S: [f64; 2] = [0.0025, 0.00075];

/// Where the first gap after `row.start`'s next whole second falls in a clip that starts on the first frame
/// at or after `row.start` (15 fps), to the sample.
fn first_gap_meant(row: &Row) -> f64 {
    let first = (row.start * f64::from(FPS) - 1e-6).ceil() / f64::from(FPS);
    first.floor() + 1.0 - first + tone::GAP_SECS / 2.0
}

/// Where, in seconds from its first decoded sample, the clip's sound track has its first silent gap after
/// `row.start`'s next whole second: the same in two clips that start on the same sample.
fn first_gap(path: &Path, row: &Row) -> f64 {
    let samples = tone::decode(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let boundary = row.start.floor() + 1.0 - row.start;
    samples.gap_middle(boundary).unwrap_or_else(|| panic!("{}: no gap near {boundary}", path.display()))
}

#[test]
fn smart_cuts_hold_the_exact_cuts_frames_on_the_dash_pair_and_itag_18() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let mut rows = real_rows(90, 3);
    rows.push(Row::new("fractional", "smartfracaa", 17.4, 27.4));
    // 2 s GOPs: 20 s is a keyframe, so nothing is re-encoded; 21.9 s is one frame before the next.
    rows.push(Row::new("on a keyframe", "smartkeyaaa", 20.0, 30.0));
    rows.push(Row::new("just before a keyframe", "smartprekey", 21.9, 31.9));
    rows.push(Row::new("near the end", "smartendaaa", 55.0, 65.0));
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);
    let formats: [(&str, &[&str]); 2] = [("dash", &[]), ("itag18", &["--ytdlp-arg=-f", "--ytdlp-arg=18"])];
    for (name, extra) in formats {
        let mut outs = Vec::new();
        for trim in ["exact", "smart"] {
            let out = tmp.path().join(format!("{name}-{trim}"));
            let mut args = with_template(download_args(&server, &out, &[&csv]), &server.watch_url_template());
            args.extend(extra.iter().map(OsString::from));
            args.extend(os(["--trim", trim]));
            run(&args).expect_code(0);
            let recorded = trims(&out);
            assert_eq!(recorded.len(), rows.len(), "{name} {trim}: every clip done");
            for (id, used) in &recorded {
                assert_eq!(used, trim, "{name}: {id} was made by another trim");
            }
            outs.push(out);
        }
        for row in &rows {
            let (exact, smart) = (outs[0].join(row.rel_path()), outs[1].join(row.rel_path()));
            assert_clip_at(&smart, row);
            let (e, s) = (frame_sequence(&exact), frame_sequence(&smart));
            println!(
                "{name} {}: exact {} frames {:?}, smart {} frames {:?}",
                row.id,
                e.len(),
                (e[0], e[e.len() - 1]),
                s.len(),
                (s[0], s[s.len() - 1])
            );
            assert_eq!(s, e, "{name} {}: the smart cut's frames differ from the exact cut's", row.id);
            // The exact cut encodes stereo AAC; the smart cut copies the source's mono track, its first packet
            // trimmed to the clip's first sample by the edit list, its last a whole AAC frame (23 ms).
            let ((ea, e_channels), (sa, s_channels)) = (audio_stream(&exact), audio_stream(&smart));
            assert_eq!((e_channels, s_channels), (2, 1), "{name} {}: the smart cut copies the audio", row.id);
            assert!((sa - ea).abs() < 0.03, "{name} {}: audio {sa:.3} s smart, {ea:.3} s exact", row.id);
            let (eg, sg) = (first_gap(&exact, row), first_gap(&smart, row));
            let meant = first_gap_meant(row);
            println!(
                "{name} {}: the first gap at {:.3} ms exact, {:.3} ms smart, {:.3} ms meant",
                row.id,
                eg * 1e3,
                sg * 1e3,
                meant * 1e3
            );
            for ((trim, gap), tolerance) in [("exact", eg), ("smart", sg)].into_iter().zip(GAP_TOLERANCE_S) {
                assert!(
                    (gap - meant).abs() < tolerance,
                    "{name} {}: the {trim} cut's sound starts {:.3} ms off",
                    row.id,
                    (meant - gap) * 1e3
                );
            }
            decode_check(&smart).unwrap_or_else(|e| panic!("{name} {}: {e}", row.id));
        }
    }
}

#[test]
fn sources_that_cannot_be_smart_cut_are_cut_exactly_and_the_journal_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    // B-frames reorder frames: the copy could not stop at any packet, so this id is cut exactly.
    let bframes = Profile { duration_secs: VIDEO_SECS, bframes: 2, ..Config::for_tests().profile };
    let config =
        config().with_profile("bf", bframes).with_entry("bframesaaaa", ScenarioEntry::default().with_profile("bf"));
    let server = server(config);
    let rows = vec![Row::new("b-frames", "bframesaaaa", 12.3, 22.3), Row::new("plain", "plainaaaaaa", 12.3, 22.3)];
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv, &rows);

    let out = tmp.path().join("smart");
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--trim", "smart"]));
    run(&args).expect_code(0);
    let recorded = trims(&out);
    assert!(recorded["bframesaaaa"].starts_with("exact (B-frames"), "{recorded:?}");
    assert_eq!(recorded["plainaaaaaa"], "smart", "{recorded:?}");
    for row in &rows {
        assert_clip(&out, row);
    }

    // A resize needs the whole clip re-encoded.
    let out = tmp.path().join("scaled");
    let mut args = download_args(&server, &out, &[&csv]);
    args.extend(os(["--trim", "smart", "--short-side", "90"]));
    run(&args).expect_code(0);
    for (id, used) in trims(&out) {
        assert_eq!(used, "exact (the clip is scaled or resampled)", "{id}");
    }
    for row in &rows {
        assert_clip(&out, row);
        assert_eq!(probe(&out.join(row.rel_path())).height, 90);
    }
}
