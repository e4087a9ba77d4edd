//! `export` against a real journal and real clips, every format checked line by line; the WebDataset
//! shards are read back with the Python `webdataset` package.

#[path = "common/skip.rs"]
mod skip;

use kinetics_dl::export::{self, Dataset, ExportOptions, Format};
use kinetics_dl::journal::Journal;
use rusqlite::params;
use std::path::Path;
use std::process::Command;

/// (youtube_id, label, split, rel_path, state); times are 1..11 s for every clip.
const CLIPS: [(&str, Option<&str>, &str, &str, &str); 9] = [
    ("a1", Some("air drumming"), "train", "train/air drumming/a1_000001_000011.mp4", "done"),
    ("a2", Some("abseiling"), "train", "train/abseiling/a2_000001_000011.mp4", "done"),
    (
        "a3",
        Some("skiing (not slalom or crosscountry)"),
        "train",
        "train/skiing (not slalom or crosscountry)/a3_000001_000011.mp4",
        "done",
    ),
    ("a4", Some("skiing crosscountry"), "train", "train/skiing crosscountry/a4_000001_000011.mp4", "done"),
    ("a5", Some("abseiling"), "train", "train/abseiling/a5_000001_000011.mp4", "failed"),
    ("b1", Some("air drumming"), "validate", "validate/air drumming/b1_000001_000011.mp4", "done"),
    ("b2", Some("zumba"), "validate", "validate/zumba/b2_000001_000011.mp4", "pending"),
    ("b3", Some("abseiling"), "validate", "validate/abseiling/b3_000001_000011.mp4", "done"),
    ("c1", None, "test", "test/c1_000001_000011.mp4", "done"),
];

/// A real (tiny) mp4 per done clip, each different, except b3 whose file is gone.
fn dataset(out: &Path) {
    std::fs::create_dir_all(out.join(".kinetics-dl")).unwrap();
    // The journal makes its schema; the rows go in through SQL of the test's own.
    drop(Journal::open(&Journal::path_in(out)).unwrap());
    let j = rusqlite::Connection::open(Journal::path_in(out)).unwrap();
    for (i, (id, label, split, rel, state)) in CLIPS.iter().enumerate() {
        let path = out.join(rel);
        let size = if *state == "done" && *id != "b3" { make_clip(&path, 200 + 40 * i as u32) } else { 0 };
        j.execute(
                "INSERT INTO clips (youtube_id, start_ms, end_ms, label, split, rel_path, state, category, size_bytes,
                   duration_s, source, format_id) VALUES (?1, 1000, 11000, ?2, ?3, ?4, ?5, ?6, ?7, 1.0, 'youtube', '18')",
                params![id, label, split, rel, state, (*state == "failed").then_some("private"), size],
            )
            .unwrap();
    }
}

fn make_clip(path: &Path, frequency: u32) -> i64 {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("ffmpeg")
        .args("-v error -y -f lavfi -i testsrc2=size=160x90:rate=15 -f lavfi".split(' '))
        .arg("-i")
        .arg(format!("sine=frequency={frequency}"))
        .args("-t 1 -c:v libx264 -preset ultrafast -c:a aac -shortest".split(' '))
        .arg(path)
        .status()
        .expect("ffmpeg is needed for the export tests");
    assert!(status.success());
    std::fs::metadata(path).unwrap().len() as i64
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

fn run(out: &Path, format: Format) -> Vec<String> {
    let ds = Dataset::load(out).unwrap();
    assert_eq!((ds.done(), ds.missing_files), (6, 1), "b3's file is gone, a5 failed, b2 pending");
    export::export(&ds, format, 2).unwrap()
}

const CLASSES: [&str; 5] =
    ["abseiling", "air drumming", "skiing (not slalom or crosscountry)", "skiing crosscountry", "zumba"];

#[test]
fn torchvision_writes_classes_and_a_val_alias() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path());
    let notes = run(dir.path(), Format::Torchvision).join("\n");
    assert_eq!(lines(&dir.path().join("classes.txt")), CLASSES);
    let val = dir.path().join("val");
    assert_eq!(std::fs::read_link(&val).unwrap(), Path::new("validate"));
    assert!(val.join("air drumming/b1_000001_000011.mp4").is_file());
    // validate has one class folder only, so torchvision would number it 0 where classes.txt says 1.
    assert!(notes.contains("split validate: torchvision numbers classes"), "{notes}");
    assert!(!notes.contains("split train: torchvision"), "train's folders sort like classes.txt: {notes}");
    assert!(notes.contains("split test has no class folders"), "{notes}");
    let code = kinetics_dl::commands::export::run(&ExportOptions {
        out: dir.path().into(),
        format: Format::Torchvision,
        shard_size: 1000,
    })
    .unwrap();
    assert_eq!(code, 0, "a second export finds the alias in place");
}

#[test]
fn mmaction2_lists_are_relative_to_the_split_folder_without_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    dataset(out);
    let notes = run(out, Format::Mmaction2).join("\n");
    let train = lines(&out.join("kinetics_train_list_videos.txt"));
    assert_eq!(
        train,
        [
            "abseiling/a2_000001_000011.mp4 0",
            "air_drumming/a1_000001_000011.mp4 1",
            "skiing_(not_slalom_or_crosscountry)/a3_000001_000011.mp4 2",
            "skiing_crosscountry/a4_000001_000011.mp4 3",
        ]
    );
    assert!(notes.contains(&format!("data_prefix {}", out.join("links/train").display())), "{notes}");
    for (line, rel) in train.iter().zip([1, 0, 2, 3].map(|i| CLIPS[i].3)) {
        let (path, _) = line.split_once(' ').unwrap();
        let linked = std::fs::read(out.join("links/train").join(path)).unwrap();
        assert_eq!(linked, std::fs::read(out.join(rel)).unwrap(), "{line} must resolve to {rel}");
    }
    assert_eq!(lines(&out.join("kinetics_validate_list_videos.txt")), ["air_drumming/b1_000001_000011.mp4 1"]);
    assert_eq!(lines(&out.join("kinetics_test_list_videos.txt")), ["c1_000001_000011.mp4 -1"]);
    assert!(notes.contains(&format!("data_prefix {}", out.join("test").display())), "no links without spaces: {notes}");
    assert!(!out.join("links/test").exists());
}

#[test]
fn pytorchvideo_and_slowfast_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    dataset(out);
    run(out, Format::Pytorchvideo);
    let train = lines(&out.join("pytorchvideo/train.csv"));
    assert_eq!(train[1], "train/air drumming/a1_000001_000011.mp4 1");
    for line in &train {
        // PyTorchVideo splits from the right, so the path keeps its spaces.
        let (path, label) = line.rsplit_once(' ').unwrap();
        assert!(out.join(path).is_file(), "{path}");
        assert!(label.parse::<i64>().is_ok());
    }
    assert_eq!(lines(&out.join("pytorchvideo/test.csv")), ["test/c1_000001_000011.mp4 -1"]);
    run(out, Format::Slowfast);
    let mut all = 0;
    for mode in ["train", "val", "test"] {
        for line in lines(&out.join(format!("slowfast/{mode}.csv"))) {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 2, "exactly two space-separated fields: {line}");
            assert!(out.join(fields[0]).is_file(), "{line}");
            assert!(fields[1].parse::<i64>().is_ok(), "{line}");
            all += 1;
        }
    }
    assert_eq!(all, 6);
    assert_eq!(lines(&out.join("slowfast/val.csv")), ["links/validate/air_drumming/b1_000001_000011.mp4 1"]);
}

#[test]
fn csv_holds_every_column_of_the_done_clips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    dataset(out);
    run(out, Format::Csv);
    let columns: Vec<String> = {
        let conn = rusqlite::Connection::open(Journal::path_in(out)).unwrap();
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('clips')").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let mut reader = csv::Reader::from_path(out.join("clips.csv")).unwrap();
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), columns);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let at = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| &r[at("youtube_id")]).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "a4", "b1", "c1"]);
    assert!(rows.iter().all(|r| &r[at("state")] == "done"));
    assert_eq!(&rows[2][at("rel_path")], CLIPS[2].3, "commas, spaces and parentheses survive");
    assert_eq!(&rows[5][at("label")], "", "NULL is an empty field");
}

#[test]
fn webdataset_shards_read_back_with_the_python_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    dataset(out);
    std::fs::create_dir_all(out.join("webdataset")).unwrap();
    std::fs::write(out.join("webdataset/train-00005.tar"), b"stale").unwrap();
    run(out, Format::Webdataset);
    let mut shards: Vec<String> = std::fs::read_dir(out.join("webdataset"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    shards.sort();
    assert_eq!(shards, ["test-00000.tar", "train-00000.tar", "train-00001.tar", "validate-00000.tar"]);
    let first = std::fs::read(out.join("webdataset/train-00000.tar")).unwrap();
    run(out, Format::Webdataset);
    assert_eq!(std::fs::read(out.join("webdataset/train-00000.tar")).unwrap(), first, "shards are reproducible");

    let probe = Command::new("python3").args(["-c", "import webdataset"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip::missing_tool("the Python `webdataset` package", "pip install webdataset");
        return;
    }
    let script = r#"
import hashlib, json, sys, webdataset as wds
for s in wds.WebDataset(sys.argv[1:], shardshuffle=False):
    meta = json.loads(s["json"])
    print(s["__key__"], hashlib.sha256(s["mp4"]).hexdigest(), json.dumps(meta, sort_keys=True))
"#;
    let urls: Vec<String> = shards.iter().map(|s| out.join("webdataset").join(s).display().to_string()).collect();
    let o = Command::new("python3").arg("-c").arg(script).args(&urls).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let mut samples: Vec<(String, String, serde_json::Value)> = text
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (key, sha, json) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            (key.to_string(), sha.to_string(), serde_json::from_str(json).unwrap())
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<&str> = samples.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        keys,
        [
            "a1_000001_000011",
            "a2_000001_000011",
            "a3_000001_000011",
            "a4_000001_000011",
            "b1_000001_000011",
            "c1_000001_000011"
        ]
    );
    for (key, sha, meta) in &samples {
        let clip = CLIPS.iter().find(|c| c.3.ends_with(&format!("{key}.mp4"))).unwrap();
        let want_sha = kinetics_dl::manifest::build::sha256_file(&out.join(clip.3)).unwrap();
        assert_eq!(sha, &want_sha, "{key}: the sample's mp4 is the clip's bytes");
        let label_index = clip.1.map_or(-1, |l| CLASSES.iter().position(|c| *c == l).unwrap() as i64);
        let want = serde_json::json!({
            "label": clip.1, "label_index": label_index, "split": clip.2, "youtube_id": clip.0,
            "time_start": 1.0, "time_end": 11.0, "source": "youtube",
        });
        assert_eq!(meta, &want, "{key}");
    }
}
