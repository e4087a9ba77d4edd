//! `--trim smart` re-encodes only up to the first keyframe of a clip and copies the rest: on the default DASH
//! pair and on itag 18 its clips hold exactly the frames of the exact cut (checked frame by frame on the
//! test source's numbered frames), with audio as long; where a source cannot be smart-cut (B-frames,
//! `--short-side`) the exact cut is made and the journal says which trim made each clip and why.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use common::*;
use kinetics_testsrc::{Config, Profile, ScenarioEntry};

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

/// The audio stream's duration in seconds.
fn audio_secs(path: &Path) -> f64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or_else(|_| panic!("{} has no audio", path.display()))
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
            let (ea, sa) = (audio_secs(&exact), audio_secs(&smart));
            assert!((ea - sa).abs() <= DURATION_TOLERANCE, "{name} {}: audio {sa:.3} s smart, {ea:.3} s exact", row.id);
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
