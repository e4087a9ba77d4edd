//! Tests of `build`: keys, merging, conflicts, paths and the class list, on fixtures and the real CSV.

use super::*;
use crate::annotations::{self, Row};
use std::collections::HashSet;
use std::path::{Component, Path};
use std::sync::Arc;

fn row(label: Option<&str>, id: &str, start: f64, end: f64, split: Option<&str>) -> Row {
    Row {
        label: label.map(str::to_owned),
        extra_labels: Vec::new(),
        boxes: Vec::new(),
        youtube_id: id.to_owned(),
        time_start: start,
        time_end: end,
        split: split.map(str::to_owned),
        file: Arc::from(Path::new("ann.csv")),
        line: 2,
    }
}

fn paths(plan: &Plan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.rel_path.to_str().unwrap()).collect()
}

#[test]
fn paths_by_mode() {
    let rows = [
        row(Some("passing American football (in game)"), "0wR5jVB-WPk", 417.0, 427.0, Some("train")),
        row(Some("air drumming"), "-abc", 17.5, 27.5, Some("validate")),
        row(None, "t1", 0.0, 10.0, Some("test")),
        row(Some("yoga"), "u1", 0.0, 10.0, None),
        row(Some("../../etc"), "h1", 1.0, 2.0, Some("../x")),
    ];
    let cases = [
        (
            ClassDirs::Raw,
            [
                "train/passing American football (in game)/0wR5jVB-WPk_000417_000427.mp4",
                "validate/air drumming/-abc_000017.500_000027.500.mp4",
                "test/t1_000000_000010.mp4",
                "unsplit/yoga/u1_000000_000010.mp4",
                "_.._x/_.._.._etc/h1_000001_000002.mp4",
            ],
        ),
        (
            ClassDirs::Underscore,
            [
                "train/passing_American_football_(in_game)/0wR5jVB-WPk_000417_000427.mp4",
                "validate/air_drumming/-abc_000017.500_000027.500.mp4",
                "test/t1_000000_000010.mp4",
                "unsplit/yoga/u1_000000_000010.mp4",
                "_.._x/_.._.._etc/h1_000001_000002.mp4",
            ],
        ),
        (
            ClassDirs::Torchvision,
            [
                "train/passing_American_football_in_game/0wR5jVB-WPk_000417_000427.mp4",
                "validate/air_drumming/-abc_000017.500_000027.500.mp4",
                "test/t1_000000_000010.mp4",
                "unsplit/yoga/u1_000000_000010.mp4",
                "_.._x/_.._.._etc/h1_000001_000002.mp4",
            ],
        ),
    ];
    for (mode, want) in cases {
        let plan = build(&rows, mode, "mp4");
        assert_eq!(paths(&plan), want, "{mode:?}");
        assert_eq!(plan.class_dirs, mode);
    }
}

#[test]
fn duplicates_merge_in_first_appearance_order() {
    let rows = [
        row(Some("yoga"), "a", 1.0, 11.0, Some("train")),
        row(Some("zumba"), "b", 1.0, 11.0, Some("train")),
        row(Some("yoga"), "a", 1.0, 11.0, Some("train")),
        row(Some("yoga"), "a", 2.0, 12.0, Some("train")),
        // 0.4 ms apart: the same clip once times are rounded to milliseconds.
        row(Some("dancing"), "a", 1.0004, 11.0, Some("validate")),
        row(Some("zumba"), "b", 1.0, 11.0, Some("train")),
        row(None, "a", 1.0, 11.0, Some("train")),
        row(Some("dancing"), "a", 1.0, 11.0, Some("train")),
    ];
    let plan = build(&rows, ClassDirs::Underscore, "mp4");
    let jobs: Vec<_> = plan
        .jobs
        .iter()
        .map(|j| (j.key.youtube_id.as_str(), j.key.start_ms, j.key.end_ms, j.label.as_deref(), j.rows))
        .collect();
    assert_eq!(
        jobs,
        [
            ("a", 1000, 11000, Some("yoga"), 5),
            ("b", 1000, 11000, Some("zumba"), 2),
            ("a", 2000, 12000, Some("yoga"), 1)
        ]
    );
    assert_eq!(plan.duplicates_merged, 5);
    let a = ClipKey { youtube_id: "a".into(), start_ms: 1000, end_ms: 11000 };
    assert_eq!(
        plan.label_conflicts,
        [Conflict { key: a.clone(), kept: Some("yoga".into()), others: vec![Some("dancing".into()), None] }]
    );
    assert_eq!(
        plan.split_conflicts,
        [Conflict { key: a, kept: Some("train".into()), others: vec![Some("validate".into())] }]
    );
    assert_eq!(plan.jobs[0].rel_path, Path::new("train/yoga/a_000001_000011.mp4"));
    let labels: Vec<_> = plan.classes.iter().map(|c| c.label()).collect();
    assert_eq!(labels, ["yoga", "zumba"], "only the labels that jobs kept");
}

#[test]
fn fractional_times_are_distinct_clips() {
    let rows = [
        row(Some("yoga"), "a", 17.0, 27.0, Some("train")),
        row(Some("yoga"), "a", 17.5, 27.5, Some("train")),
        row(Some("yoga"), "a", 17.05, 27.0, Some("train")),
    ];
    let plan = build(&rows, ClassDirs::Raw, "mp4");
    assert_eq!(plan.duplicates_merged, 0);
    assert_eq!(
        paths(&plan),
        [
            "train/yoga/a_000017_000027.mp4",
            "train/yoga/a_000017.500_000027.500.mp4",
            "train/yoga/a_000017.050_000027.mp4",
        ]
    );
}

#[test]
fn hostile_labels_stay_inside_out() {
    let long = "\u{e9}".repeat(200);
    let labels = ["../../etc", "a/b", "..", ".", "b\0c", "\\..\\..", long.as_str()];
    let rows: Vec<Row> =
        labels.iter().enumerate().map(|(i, l)| row(Some(l), &format!("-{i}"), 0.0, 1.0, Some(".."))).collect();
    for mode in [ClassDirs::Raw, ClassDirs::Underscore, ClassDirs::Torchvision] {
        let plan = build(&rows, mode, "mp4");
        for job in &plan.jobs {
            let parts: Vec<_> = job.rel_path.components().collect();
            assert_eq!(parts.len(), 3, "{:?}", job.rel_path);
            assert!(parts.iter().all(|c| matches!(c, Component::Normal(n) if n.len() <= 255)), "{:?}", job.rel_path);
        }
        let dirs: HashSet<_> = plan.jobs.iter().map(|j| j.rel_path.parent().unwrap()).collect();
        assert_eq!(dirs.len(), labels.len(), "{mode:?}: distinct labels, distinct folders");
    }
}

#[test]
fn real_kinetics_400_validate() {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/k400_validate.csv");
    let rows = annotations::read_file(&csv).unwrap();
    let mut doubled = rows.clone();
    doubled.extend(rows.iter().cloned());
    for mode in [ClassDirs::Raw, ClassDirs::Underscore, ClassDirs::Torchvision] {
        let plan = build(&doubled, mode, "mp4");
        assert_eq!(plan.jobs.len(), rows.len());
        assert_eq!(plan.duplicates_merged, rows.len());
        assert!(plan.label_conflicts.is_empty() && plan.split_conflicts.is_empty());
        assert!(plan.jobs.iter().all(|j| j.rows == 2));
        assert_eq!(plan.classes.len(), 400);
        assert_eq!(plan.class_collisions().count(), 0);
        let unique: HashSet<_> = plan.jobs.iter().map(|j| &j.rel_path).collect();
        assert_eq!(unique.len(), rows.len());
        for job in &plan.jobs {
            assert!(job.rel_path.starts_with("validate"));
            let label = job.label.as_deref().unwrap();
            let index = plan.class_index(label).unwrap();
            assert_eq!(job.rel_path.parent().unwrap().file_name().unwrap(), plan.classes[index].dir.as_str());
        }
        let dirs: Vec<_> = plan.classes.iter().map(|c| c.dir.clone()).collect();
        let mut sorted = dirs.clone();
        sorted.sort();
        assert_eq!(dirs, sorted);
    }
    let plan = build(&rows[..1], ClassDirs::Underscore, "mp4");
    assert_eq!(paths(&plan), ["validate/javelin_throw/--07WQ2iBlw_000001_000011.mp4"]);
}

/// A hash that is the same for every key: every lookup past the first key goes through the exact map.
#[derive(Clone, Default)]
struct Collide;

impl std::hash::BuildHasher for Collide {
    type Hasher = Constant;
    fn build_hasher(&self) -> Constant {
        Constant
    }
}

struct Constant;

impl std::hash::Hasher for Constant {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

/// The plan's key index gives the same jobs when every key's hash collides as with a real hash.
#[test]
fn colliding_key_hashes_still_merge_exactly() {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/k400_validate.csv");
    let rows = annotations::read_file(&csv).unwrap();
    let mut rows: Vec<Row> = rows[..300].to_vec();
    rows.extend(rows.clone().into_iter().step_by(3).map(|mut r| {
        r.label = Some("relabelled".into());
        r
    }));
    rows.push(row(Some("yoga"), "--07WQ2iBlw", 1.0, 11.5, Some("validate")));
    let real = build(&rows, ClassDirs::Underscore, "mp4");
    let mut b = Builder::with_hasher(ClassDirs::Underscore, "mp4", Collide);
    for r in &rows {
        b.add(r.clone());
    }
    let collided = b.finish();
    assert_eq!(collided.jobs, real.jobs);
    assert_eq!(collided.jobs.len(), 301);
    assert_eq!(collided.duplicates_merged, 100);
    assert_eq!(collided.label_conflicts, real.label_conflicts);
    assert_eq!(collided.label_conflicts.len(), 100);

    let index = KeyIndex::with_hasher(&real.jobs, Collide);
    for (i, job) in real.jobs.iter().enumerate() {
        let k = &job.key;
        assert_eq!(index.get(&real.jobs, (&k.youtube_id, k.start_ms, k.end_ms)), Some(i as u32));
        assert_eq!(index.get(&real.jobs, (&k.youtube_id, k.start_ms + 1, k.end_ms)), None);
    }
    let index = KeyIndex::of(&real.jobs);
    let k = &real.jobs[300].key;
    assert_eq!(index.get(&real.jobs, (&k.youtube_id, k.start_ms, k.end_ms)), Some(300));
    assert_eq!(index.get(&real.jobs, ("absent", 0, 10_000)), None);
}

/// Rows planned as they are read (what `download` does) give the plan of the rows read first, for CSV and
/// for DeepMind's JSON, with a limit.
#[test]
fn planning_while_reading_is_planning_after() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let csv = data.join("k400_validate.csv");
    let json = tempfile::tempdir().unwrap();
    let json_path = json.path().join("k400_validate.json");
    let rows = annotations::read_file(&csv).unwrap();
    let entries: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|r| {
            let entry = serde_json::json!({
                "annotations": {"label": r.label, "segment": [r.time_start, r.time_end]},
                "subset": r.split,
            });
            (r.youtube_id.clone(), entry)
        })
        .collect();
    std::fs::write(&json_path, serde_json::to_vec(&entries).unwrap()).unwrap();
    for limit in [None, Some(1000)] {
        let filters = annotations::Filters { limit, ..Default::default() };
        let paths = [csv.clone(), json_path.clone()];
        let preset = annotations::Preset::Auto;
        let all = annotations::read_all_as(&paths, &filters, &preset).unwrap();
        let after = build(&all, ClassDirs::Underscore, "mp4");
        let mut b = Builder::new(ClassDirs::Underscore, "mp4");
        let options = annotations::ReadOptions::default();
        let n = annotations::read_each_with(&paths, &filters, &preset, &options, &mut |r| b.add(r)).unwrap();
        let during = b.finish();
        assert_eq!(n, all.len());
        match limit {
            Some(limit) => assert_eq!(n, limit),
            None => assert!(n > rows.len() && during.duplicates_merged > 0, "both files read: {n} rows"),
        }
        assert_eq!(during.jobs, after.jobs);
        assert_eq!(during.duplicates_merged, after.duplicates_merged);
        assert_eq!(during.label_conflicts, after.label_conflicts);
        assert_eq!(during.split_conflicts, after.split_conflicts);
        assert_eq!(during.classes, after.classes);
    }
}

/// A job's labels and boxes as the journal's and the fleet's columns hold them, and back: one label and no
/// boxes is NULL in both; several labels list every one, the first first; boxes keep an absent person id.
#[test]
fn multi_label_columns_round_trip() {
    use crate::annotations::PersonBox;
    let boxes = vec![
        PersonBox { bbox: [0.077, 0.151, 0.283, 0.811], label: "80".into(), person_id: Some(1) },
        PersonBox { bbox: [0.1, 0.2, 0.5, 0.9], label: "11".into(), person_id: None },
    ];
    /// (labels, boxes, the labels column, the boxes column)
    type Case<'a> = (&'a [&'a str], Vec<PersonBox>, Option<&'a str>, Option<&'a str>);
    let cases: [Case; 4] = [
        (&["Speech"], vec![], None, None),
        (&["Speech", "Music"], vec![], Some(r#"["Speech","Music"]"#), None),
        (&["80"], boxes[..1].to_vec(), None, Some(r#"[{"box":[0.077,0.151,0.283,0.811],"label":"80","person_id":1}]"#)),
        (
            &["80", "11"],
            boxes.clone(),
            Some(r#"["80","11"]"#),
            Some(
                r#"[{"box":[0.077,0.151,0.283,0.811],"label":"80","person_id":1},{"box":[0.1,0.2,0.5,0.9],"label":"11"}]"#,
            ),
        ),
    ];
    for (labels, boxes, want_labels, want_boxes) in cases {
        let job = Job {
            label: Some(labels[0].to_string()),
            extra_labels: labels[1..].iter().map(|l| l.to_string()).collect(),
            boxes,
            ..Job::default()
        };
        let (l, b) = job.multi_label_columns().unwrap();
        assert_eq!((l.as_deref(), b.as_deref()), (want_labels, want_boxes), "{labels:?}");
        // Back, also from the spacing PostgreSQL's jsonb prints.
        let spaced = l.as_deref().map(|t| t.replace(',', ", "));
        let mut back = Job { label: job.label.clone(), ..Job::default() };
        back.set_multi_label_columns(spaced.as_deref(), b.as_deref()).unwrap();
        assert_eq!(back, job, "{labels:?}");
    }
    let mut job = Job::default();
    assert!(job.set_multi_label_columns(Some("Speech"), None).is_err(), "not a JSON list");
    assert!(job.set_multi_label_columns(None, Some(r#"[{"label":"x"}]"#)).is_err(), "a box without its corners");
}
