//! The other datasets' published annotation formats, planned and downloaded end to end against the test
//! source: `tests/data/presets/` holds a small sample of each, written from the format's documentation
//! (the ids are made up; the test source serves any id).

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/presets").join(name)
}

/// Downloads `file` (with `extra` options) into a fresh OUT and checks every expected clip is there, frame
/// accurate, and nothing else.
fn download_and_check(file: &Path, extra: &[&str], want: &[Row]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let mut args = download_args(&server, &out, &[file]);
    args.extend(extra.iter().map(Into::into));
    run(&args).expect_code(0);
    for row in want {
        assert_clip(&out, row);
    }
    assert_eq!(clip_files(&out).len(), want.len(), "{:?}", clip_files(&out));
    assert_eq!(done_count(&out), want.len());
}

#[test]
fn vggsound_rows_are_ten_second_clips_recognised_without_a_preset() {
    let want = [
        Row::new("cattle, bovinae cowbell", "vggsound-a1", 4.0, 14.0).split("train"),
        Row::new("dog barking", "vggsound_b2", 12.5, 22.5).split("test"),
        Row::new("people marching", "vggsound-a1", 30.0, 40.0).split("train"),
    ];
    download_and_check(&sample("vggsound.csv"), &[], &want);
}

#[test]
fn activitynet_json_gives_one_clip_per_segment() {
    let want = [
        Row::new("Cleaning windows", "anet-video1", 3.2, 9.73).split("training"),
        Row::new("Cleaning windows", "anet-video1", 21.0, 27.5).split("training"),
        Row::new("Playing bagpipes", "anet-video2", 40.15, 44.9).split("validation"),
    ];
    download_and_check(&sample("activitynet.json"), &["--preset", "activitynet"], &want);
}

#[test]
fn malformed_rows_of_each_format_exit_two_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let cases: [(&str, &str, &str, &str, Option<&str>); 5] = [
        ("vgg-id.csv", "vggsound", "abcdefghijk,1,dog,train\nab/cd,1,dog,train\n", ":2", Some("youtube_id")),
        ("vgg-start.csv", "vggsound", "abcdefghijk,1,dog,train\nabcdefghijk,x1,dog,train\n", ":2", Some("start_seconds")),
        ("vgg-count.csv", "vggsound", "abcdefghijk,1,dog,train\n\nabcdefghijk,1,dog\n", ":3", None),
        (
            "anet-segment.json",
            "activitynet",
            "{\"database\": {\n\"abcdefghijk\": {\"subset\": \"training\",\n \"annotations\": [{\"segment\": [5, 2], \"label\": \"a\"}]}}}",
            ":2",
            Some("annotations.segment"),
        ),
        (
            "anet-id.json",
            "hacs-segments",
            "{\"database\": {\"abcdefghijk\": {\"annotations\": []},\n\n\"a b\": {\"annotations\": []}}}",
            ":3",
            Some("youtube_id"),
        ),
    ];
    for (name, preset, text, line, field) in cases {
        let file = tmp.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        let mut args = download_args(&server, &out, &[&file]);
        args.extend(os(["--preset", preset]));
        let o = run(&args);
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        let at = format!("{}{line}", file.display());
        assert!(o.stderr.contains(&at), "{name}: the error names {at}: {}", o.stderr);
        if let Some(field) = field {
            assert!(o.stderr.contains(&format!("`{field}`")), "{name}: the error names {field}: {}", o.stderr);
        }
        assert_eq!(server.stats().total_requests, 0, "{name}: no request before the input is valid");
    }
}
