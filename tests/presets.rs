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

#[test]
fn a_column_map_reads_files_of_any_shape() {
    let tmp = tempfile::tempdir().unwrap();
    // Its own column names and order, `;` between fields, YouTube URLs for ids, a column nobody maps.
    let urls = tmp.path().join("clips.txt");
    std::fs::write(
        &urls,
        "clip_url;what;from;to;part;notes\n\
         https://www.youtube.com/watch?v=colmapurl01&t=4s;dog barking;4;9.5;train;loud\n\
         https://youtu.be/colmapurl02?si=Xa1;\"cats; purring\";12.25;16;val;\n\
         https://www.youtube.com/shorts/colmapurl01;dog barking;30;34.2;train;\n",
    )
    .unwrap();
    let want = [
        Row::new("dog barking", "colmapurl01", 4.0, 9.5).split("train"),
        Row::new("cats; purring", "colmapurl02", 12.25, 16.0).split("validate"),
        Row::new("dog barking", "colmapurl01", 30.0, 34.2).split("train"),
    ];
    let map = ["--columns", "id=clip_url,start=from,end=to,label=what,split=part", "--id-from-url", "--delimiter", ";"];
    download_and_check(&urls, &map, &want);

    // No header, tab-separated, a start only: every clip lasts --duration.
    let bare = tmp.path().join("bare.tsv");
    std::fs::write(&bare, "4.5\tcolmaptab01\tplaying drums\n20\tcolmaptab01\tplaying drums\n").unwrap();
    let want = [
        Row::new("playing drums", "colmaptab01", 4.5, 8.0).split("unsplit"),
        Row::new("playing drums", "colmaptab01", 20.0, 23.5).split("unsplit"),
    ];
    let map = ["--columns", "id=1,start=0,label=2", "--no-header", "--delimiter", "\\t", "--duration", "3.5"];
    download_and_check(&bare, &map, &want);
}

#[test]
fn bad_column_maps_and_rows_exit_two_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let good = "ytid,t0,t1,cls\ncolmapbad01,1,5,dog\n";
    // (file name, text, options, what stderr names)
    let cases: [(&str, &str, &[&str], &str); 7] = [
        ("no-such-column.csv", good, &["--columns", "id=ytid,start=t0,end=stop"], ":1: field `stop`"),
        (
            "bad-id.csv",
            "ytid,t0,t1,cls\ncolmapbad01,1,5,dog\ncolmap/bad,1,5,dog\n",
            &["--columns", "id=ytid,start=t0,end=t1"],
            ":3: field `ytid`",
        ),
        (
            "bad-url.csv",
            "ytid,t0,t1\nhttps://youtu.be.evil.example/colmapbad01,1,5\n",
            &["--columns", "id=ytid,start=t0,end=t1", "--id-from-url"],
            ":2: field `ytid`",
        ),
        ("bad-end.csv", "ytid,t0,t1\ncolmapbad01,7,5\n", &["--columns", "id=ytid,start=t0,end=t1"], ":2: field `t1`"),
        (
            "past-the-end.tsv",
            "colmapbad01\t1\n",
            &["--columns", "id=0,start=1,label=2", "--no-header", "--delimiter", "\\t", "--duration", "2"],
            ":1: field `column 2`",
        ),
        ("unknown-key.csv", good, &["--columns", "id=ytid,begin=t0,end=t1"], "unknown key \"begin\""),
        ("no-end.csv", good, &["--columns", "id=ytid,start=t0"], "--duration S"),
    ];
    for (name, text, options, names) in cases {
        let file = tmp.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        let mut args = download_args(&server, &out, &[&file]);
        args.extend(options.iter().map(std::ffi::OsString::from));
        let o = run(&args);
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        let want = if names.starts_with(':') { format!("{}{names}", file.display()) } else { names.to_string() };
        assert!(o.stderr.contains(&want), "{name}: the error says {want}: {}", o.stderr);
        assert_eq!(server.stats().total_requests, 0, "{name}: no request before the input is valid");
    }
    // Options that need a column map refuse to stand alone.
    let file = tmp.path().join("no-such-column.csv");
    let mut args = download_args(&server, &tmp.path().join("out-alone"), &[&file]);
    args.extend(os(["--no-header"]));
    run(&args).expect_code(2);
}
