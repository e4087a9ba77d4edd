//! The other datasets' published annotation formats, planned and downloaded end to end against the test
//! source: `tests/data/presets/` holds a small sample of each, written from the format's documentation
//! (the ids are made up; the test source serves any id).

mod common;

use common::*;
use std::ffi::OsString;
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

fn audioset(name: &str) -> PathBuf {
    sample("audioset").join(name)
}

/// AudioSet's clips under the default layout: one label in its class folder, several in the split's.
fn audioset_rows() -> [(Row, &'static str, Vec<&'static str>); 3] {
    [
        (Row::new("Speech", "audioset-a1", 0.0, 10.0).split("eval"), "eval", vec!["Speech", "Music"]),
        (Row::new("Animal", "audioset_b2", 12.25, 22.25).split("eval"), "eval/Animal", vec!["Animal"]),
        (
            Row::new("Music", "audioset-a1", 30.0, 40.0).split("eval"),
            "eval",
            vec!["Music", "Male speech, man speaking"],
        ),
    ]
}

fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(String::from).collect()
}

#[test]
fn audioset_clips_keep_every_label_in_the_journal_the_manifest_and_the_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    // No --preset: the `#` comments and the column line say AudioSet; the file's name gives the split.
    let mut args = download_args(&server, &out, &[&audioset("eval_segments.csv")]);
    args.extend([OsString::from("--labels-file"), audioset("class_labels_indices.csv").into()]);
    run(&args).expect_code(0);
    for (row, folder, _) in audioset_rows() {
        assert_clip_at(&out.join(folder).join(row.name()), &row);
    }
    assert_eq!(clip_files(&out).len(), 3, "{:?}", clip_files(&out));
    assert_eq!(done_count(&out), 3);

    // The journal keeps every label; the manifest lists them for the clips with several.
    run(&os(["manifest", "--out", out.to_str().unwrap()])).expect_code(0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let clips = manifest["clips"].as_array().unwrap();
    for (row, _, labels) in audioset_rows() {
        let clip = clips
            .iter()
            .find(|c| c["youtube_id"] == row.id.as_str() && c["time_start"] == row.start)
            .unwrap_or_else(|| panic!("{} {} in the manifest", row.id, row.start));
        assert_eq!(clip["label"], labels[0], "{clip}");
        let want = if labels.len() > 1 { serde_json::json!(labels) } else { serde_json::Value::Null };
        assert_eq!(clip["labels"], want, "{clip}");
    }

    let export = |format: &str| run(&os(["export", "--out", out.to_str().unwrap(), "--format", format]));
    export("mmaction2").expect_code(0);
    // classes.txt in byte order: Animal 0, Male speech 1, Music 2, Speech 3.
    assert_eq!(lines(&out.join("classes.txt")), ["Animal", "Male speech, man speaking", "Music", "Speech"]);
    assert_eq!(
        lines(&out.join("kinetics_eval_list_videos.txt")),
        [
            "Animal/audioset_b2_000012.250_000022.250.mp4 0",
            "audioset-a1_000000_000010.mp4 3 2",
            "audioset-a1_000030_000040.mp4 2 1",
        ]
    );
    export("pytorchvideo").expect_code(0);
    let pairs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pytorchvideo/eval.json")).unwrap()).unwrap();
    assert_eq!(
        pairs,
        serde_json::json!([
            ["eval/Animal/audioset_b2_000012.250_000022.250.mp4", {"label": [0]}],
            ["eval/audioset-a1_000000_000010.mp4", {"label": [3, 2]}],
            ["eval/audioset-a1_000030_000040.mp4", {"label": [2, 1]}],
        ])
    );
    let o = export("slowfast");
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("several labels"), "{}", o.stderr);
    export("csv").expect_code(0);
    let mut reader = csv::Reader::from_path(out.join("clips.csv")).unwrap();
    let at = reader.headers().unwrap().iter().position(|h| h == "labels").expect("a labels column");
    let mut cells: Vec<String> = reader.records().map(|r| r.unwrap()[at].to_string()).collect();
    cells.sort();
    assert_eq!(cells, ["", r#"["Music","Male speech, man speaking"]"#, r#"["Speech","Music"]"#]);

    export("webdataset").expect_code(0);
    let script = r#"
import json, sys, webdataset as wds
for s in wds.WebDataset(sys.argv[1:], shardshuffle=False):
    print(json.dumps(json.loads(s["json"]), sort_keys=True))
"#;
    let shard = out.join("webdataset/eval-00000.tar");
    let o = std::process::Command::new("python3").arg("-c").arg(script).arg(&shard).output().unwrap();
    assert!(
        o.status.success(),
        "the Python webdataset package reads the shard: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut metas: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    metas.sort_by(|a, b| a["time_start"].as_f64().partial_cmp(&b["time_start"].as_f64()).unwrap());
    let want_labels = [
        Some(serde_json::json!(["Speech", "Music"])),
        None,
        Some(serde_json::json!(["Music", "Male speech, man speaking"])),
    ];
    let want_indices = [Some(serde_json::json!([3, 2])), None, Some(serde_json::json!([2, 1]))];
    assert_eq!(metas.len(), 3);
    for (meta, (labels, indices)) in metas.iter().zip(want_labels.iter().zip(&want_indices)) {
        assert_eq!(meta.get("labels"), labels.as_ref(), "{meta}");
        assert_eq!(meta.get("label_indices"), indices.as_ref(), "{meta}");
    }
    assert_eq!(metas[1]["label"], "Animal");
    assert_eq!(metas[1]["label_index"], 0);
}

/// `status` and `report` (text and JSON) count a clip with several labels once in each of its classes; their
/// totals count it once.
#[test]
fn per_class_coverage_counts_every_label_of_a_clip_with_several() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // 410 Gone: failed at once as unavailable, never retried.
    let server = server(config().with_behaviour("audioset-gone", kinetics_testsrc::Behaviour::Status(410)));
    let segments = tmp.path().join("eval_segments.csv");
    std::fs::write(
        &segments,
        "# YTID, start_seconds, end_seconds, positive_labels\n\
         audioset-ok1, 0.000, 10.000, \"/m/09x0r,/m/04rlf\"\n\
         audioset-gone, 5.000, 15.000, \"/m/04rlf,/m/0jbk\"\n\
         audioset-ok1, 20.000, 30.000, \"/m/0jbk\"\n",
    )
    .unwrap();
    let mut args = download_args(&server, &out, &[&segments]);
    args.extend([OsString::from("--labels-file"), audioset("class_labels_indices.csv").into()]);
    run(&args).expect_code(0);
    let out_s = out.to_str().unwrap();

    // Speech: the first clip (done). Music: the first clip's second label (done) and the gone clip's first
    // (failed). Animal: the gone clip's second label (failed) and the last clip (done). Counting first labels
    // only would give Music 0/1 and Animal 1/1.
    let want_rows = serde_json::json!([
        {"label": "Animal", "total": 2, "done": 1, "failed": 1, "pending": 0, "missing": 1, "coverage": 0.5},
        {"label": "Music", "total": 2, "done": 1, "failed": 1, "pending": 0, "missing": 1, "coverage": 0.5},
        {"label": "Speech", "total": 1, "done": 1, "failed": 0, "pending": 0, "missing": 0, "coverage": 1.0},
    ]);
    let o = run(&os(["report", "--out", out_s, "--json"]));
    o.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(report["classes"]["rows"], want_rows, "{}", report["classes"]);
    assert_eq!(report["classes"]["count"], 3);
    assert_eq!(report["classes"]["multi_label_clips"], 2);
    assert_eq!(report["classes"]["min_done"], 1);
    assert_eq!(report["classes"]["min_done_classes"], serde_json::json!(["Animal", "Music", "Speech"]));
    let totals = &report["totals"];
    assert_eq!(
        (totals["total"].as_u64(), totals["done"].as_u64(), totals["failed"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("2 clips with several labels count in each of their classes"),
        "the page says how classes count"
    );

    let o = run(&os(["status", "--out", out_s, "--json"]));
    o.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(status["classes"], report["classes"], "status counts the classes as the report does");
    assert_eq!((status["total"].as_u64(), status["done"].as_u64()), (Some(3), Some(2)));

    let o = run(&os(["status", "--out", out_s]));
    o.expect_code(0);
    for line in [
        "  classes          3 (2 clips have several labels and count in each)",
        "    fewest done 1: \"Animal\", \"Music\", \"Speech\"; median 1",
        "    worst coverage \"Animal\" 1/2 (50%), \"Music\" 1/2 (50%), \"Speech\" 1/1 (100%)",
    ] {
        assert!(o.stdout.lines().any(|l| l == line), "{line:?} in:\n{}", o.stdout);
    }
}

#[test]
fn class_dirs_first_puts_a_multi_label_clip_under_its_first_label() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let mut args = download_args(&server, &out, &[&audioset("eval_segments.csv")]);
    // Without names the labels are AudioSet's ids; folders make them safe (`/` becomes `_`).
    args.extend(os(["--preset", "audioset", "--class-dirs", "first", "--split", "eval", "--limit", "1"]));
    run(&args).expect_code(0);
    let row = Row::new("/m/09x0r", "audioset-a1", 0.0, 10.0).split("eval");
    assert_clip_at(&out.join("eval/_m_09x0r").join(row.name()), &row);
    assert_eq!(clip_files(&out).len(), 1, "{:?}", clip_files(&out));
}

#[test]
fn malformed_audioset_rows_and_labels_files_exit_two_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let head = "# Segments csv created Sun Mar  5 10:54:25 2017\n# YTID, start_seconds, end_seconds, positive_labels\n";
    let good_labels = "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n1,/m/04rlf,\"Music\"\n";
    // (name, segments text, labels file text or none, what stderr names after the file)
    let cases: [(&str, String, Option<&str>, &str, &str); 9] = [
        (
            "id",
            format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r\"\nab/cd, 0.000, 10.000, \"/m/09x0r\"\n"),
            None,
            ":4",
            "`YTID`",
        ),
        ("start", format!("{head}abcdefghijk, x0.000, 10.000, \"/m/09x0r\"\n"), None, ":3", "`start_seconds`"),
        ("end", format!("{head}abcdefghijk, 10.000, 5.000, \"/m/09x0r\"\n"), None, ":3", "`end_seconds`"),
        ("quote", format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r,/m/04rlf\n"), None, ":3", "`line`"),
        ("count", format!("{head}abcdefghijk, 0.000, 10.000\n"), None, ":3", "expected 4 fields"),
        (
            "empty-label",
            format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r,,/m/04rlf\"\n"),
            None,
            ":3",
            "`positive_labels`",
        ),
        (
            "unknown-label",
            format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r,/m/0zzzz\"\n"),
            Some(good_labels),
            ":3",
            "\"/m/0zzzz\" is not in",
        ),
        (
            "labels-header",
            format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r\"\n"),
            Some("id,name\n0,x\n"),
            "labels.csv:1",
            "`header`",
        ),
        (
            "labels-twice",
            format!("{head}abcdefghijk, 0.000, 10.000, \"/m/09x0r\"\n"),
            Some("index,mid,display_name\n0,/m/09x0r,Speech\nx,/m/04rlf,Music\n"),
            "labels.csv:3",
            "`index`",
        ),
    ];
    for (name, text, labels, line, names) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("segments.csv");
        std::fs::write(&file, text).unwrap();
        let mut args = download_args(&server, &dir.join("out"), &[&file]);
        if let Some(labels) = labels {
            std::fs::write(dir.join("labels.csv"), labels).unwrap();
            args.extend([OsString::from("--labels-file"), dir.join("labels.csv").into()]);
        }
        let o = run(&args);
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        let at = if line.starts_with(':') {
            format!("{}{line}", file.display())
        } else {
            format!("{}/{line}", dir.display())
        };
        assert!(o.stderr.contains(&at), "{name}: the error names {at}: {}", o.stderr);
        assert!(o.stderr.contains(names), "{name}: the error names {names}: {}", o.stderr);
        assert_eq!(server.stats().total_requests, 0, "{name}: no request before the input is valid");
    }
}

#[test]
fn ava_kinetics_keyframes_become_one_clip_each_with_every_action_and_box() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = server(config());
    let file = sample("ava").join("ava_val_v2.2.csv");
    // No --preset: the first line's shape says AVA-Kinetics; `val` in the file's name gives the split.
    run(&download_args(&server, &out, &[&file])).expect_code(0);
    // (row, its folder, its labels): 5 s either side of the keyframe, never before 0.
    let want = [
        (Row::new("80", "avamovie-01", 7.0, 17.0), "validate", vec!["80", "12", "74"]),
        (Row::new("17", "avamovie-01", 15.0, 25.0), "validate/17", vec!["17"]),
        (Row::new("11", "avakin_02", 0.0, 8.5), "validate/11", vec!["11"]),
    ];
    for (row, folder, _) in &want {
        assert_clip_at(&out.join(folder).join(row.name()), row);
    }
    assert_eq!(clip_files(&out).len(), want.len(), "{:?}", clip_files(&out));
    run(&os(["manifest", "--out", out.to_str().unwrap()])).expect_code(0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let clips = manifest["clips"].as_array().unwrap();
    let find = |row: &Row| {
        clips.iter().find(|c| c["youtube_id"] == row.id.as_str() && c["time_start"] == row.start).unwrap().clone()
    };
    let keyframe = find(&want[0].0);
    assert_eq!(keyframe["labels"], serde_json::json!(want[0].2), "{keyframe}");
    assert_eq!(
        keyframe["boxes"],
        serde_json::json!([
            {"box": [0.077, 0.151, 0.283, 0.811], "label": "80", "person_id": 1},
            {"box": [0.077, 0.151, 0.283, 0.811], "label": "12", "person_id": 1},
            {"box": [0.332, 0.194, 0.481, 0.891], "label": "80", "person_id": 0},
            {"box": [0.5, 0.5, 0.9, 0.9], "label": "74", "person_id": 3},
        ])
    );
    let single = find(&want[2].0);
    assert_eq!(single["label"], "11");
    assert_eq!(single["labels"], serde_json::Value::Null, "one label: no list");
    assert_eq!(single["boxes"], serde_json::json!([{"box": [0.1, 0.2, 0.5, 0.9], "label": "11"}]));

    // Another window around the same keyframes, the actions named by AVA's action list.
    let out = tmp.path().join("narrow");
    let mut args = download_args(&server, &out, &[&file]);
    args.extend(os(["--preset", "ava-kinetics", "--window-before", "1", "--window-after", "1.5", "--limit", "1"]));
    args.extend([OsString::from("--labels-file"), sample("ava").join("ava_action_list_v2.2.pbtxt").into()]);
    run(&args).expect_code(0);
    let row = Row::new("watch (a person)", "avamovie-01", 11.0, 13.5);
    assert_clip_at(&out.join("validate").join(row.name()), &row);
    assert_eq!(clip_files(&out).len(), 1, "{:?}", clip_files(&out));
    let conn = rusqlite::Connection::open(out.join(".kinetics-dl/journal.sqlite")).unwrap();
    let (labels, boxes): (String, String) =
        conn.query_row("SELECT labels, boxes FROM clips", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(labels, r#"["watch (a person)","stand","listen to (a person)"]"#);
    let boxes: serde_json::Value = serde_json::from_str(&boxes).unwrap();
    assert_eq!(boxes.as_array().unwrap().len(), 4);
    assert_eq!(
        boxes[3],
        serde_json::json!({"box": [0.5, 0.5, 0.9, 0.9], "label": "listen to (a person)", "person_id": 3})
    );
}

#[test]
fn malformed_ava_rows_exit_two_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(config());
    let good = "avaaaaaaaaa,12,0.1,0.2,0.5,0.9,80,1\n";
    // (name, text, line, field or what the message says)
    let cases: [(&str, String, &str, &str); 7] = [
        ("id", format!("{good}ava/bad,12,0.1,0.2,0.5,0.9,80,1\n"), ":2", "`youtube_id`"),
        ("time", format!("{good}avaaaaaaaaa,x,0.1,0.2,0.5,0.9,80,1\n"), ":2", "`timestamp`"),
        ("outside", format!("{good}avaaaaaaaaa,12,0.1,0.2,1.5,0.9,80,1\n"), ":2", "`x2`"),
        ("upside-down", format!("{good}\navaaaaaaaaa,12,0.1,0.9,0.5,0.2,80,1\n"), ":3", "`y2`"),
        ("action", format!("{good}avaaaaaaaaa,12,0.1,0.2,0.5,0.9,run,1\n"), ":2", "`action_id`"),
        ("person", format!("{good}avaaaaaaaaa,12,0.1,0.2,0.5,0.9,80,p1\n"), ":2", "`person_id`"),
        ("count", format!("{good}avaaaaaaaaa,12,0.1,0.2,0.5,0.9\n"), ":2", "expected 7 or 8 fields"),
    ];
    for (name, text, line, names) in cases {
        let file = tmp.path().join(format!("{name}.csv"));
        std::fs::write(&file, text).unwrap();
        let mut args = download_args(&server, &tmp.path().join(format!("out-{name}")), &[&file]);
        args.extend(os(["--preset", "ava-kinetics"]));
        let o = run(&args);
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr);
        let at = format!("{}{line}", file.display());
        assert!(o.stderr.contains(&at), "{name}: the error names {at}: {}", o.stderr);
        assert!(o.stderr.contains(names), "{name}: the error names {names}: {}", o.stderr);
        assert_eq!(server.stats().total_requests, 0, "{name}: no request before the input is valid");
    }
    let file = tmp.path().join("id.csv");
    let mut args = download_args(&server, &tmp.path().join("out-window"), &[&file]);
    args.extend(os(["--window-before=-1"]));
    let o = run(&args);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("--window-before must be between 0 and 3600"), "{}", o.stderr);
}

#[test]
fn hacs_clips_negatives_are_kept_only_when_asked() {
    let positives = [
        Row::new("Archery", "hacsclip-a1", 2.5, 4.5).split("training"),
        Row::new("Bowling", "hacsclip_b2", 20.0, 22.0).split("validation"),
    ];
    download_and_check(&sample("hacs_clips.csv"), &["--preset", "hacs-clips"], &positives);
    let mut all = positives.to_vec();
    all.push(Row::new("Archery", "hacsclip-a1", 10.0, 12.0).split("training_negatives"));
    all.push(Row::new("Bowling", "hacsclip_b2", 30.0, 32.0).split("validation_negatives"));
    download_and_check(&sample("hacs_clips.csv"), &["--keep-negatives"], &all);
}
