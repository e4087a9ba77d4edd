//! Annotation rows for the tests: real Kinetics-400 rows that fit the served video, scripted ids, and
//! writing them as DeepMind-style CSV or JSON.

use std::path::Path;

use super::VIDEO_SECS;

/// Real Kinetics-400 validate rows (header `label,youtube_id,time_start,time_end,split`).
pub const K400_VALIDATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/k400_validate.csv");

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub id: String,
    pub start: f64,
    pub end: f64,
    pub split: String,
}

impl Row {
    /// A `validate` row.
    pub fn new(label: &str, id: &str, start: f64, end: f64) -> Row {
        Row { label: label.into(), id: id.into(), start, end, split: "validate".into() }
    }

    pub fn split(mut self, split: &str) -> Row {
        self.split = split.into();
        self
    }

    /// The clip's path under OUT with the default (`underscore`) class folders.
    pub fn rel_path(&self) -> String {
        format!("{}/{}/{}", self.split, self.label.replace(' ', "_"), self.name())
    }

    pub fn name(&self) -> String {
        super::clip_name(&self.id, self.start, self.end)
    }
}

/// The first `n` rows of the real file (skipping `skip` eligible ones) that lie inside the served video,
/// one per id.
pub fn real_rows(skip: usize, n: usize) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(K400_VALIDATE).expect("the real K400 file");
    let mut seen = std::collections::BTreeSet::new();
    let rows: Vec<Row> = reader
        .records()
        .map(|r| r.expect("a real row"))
        .map(|r| Row {
            label: r[0].to_owned(),
            id: r[1].to_owned(),
            start: r[2].parse().expect("time_start"),
            end: r[3].parse().expect("time_end"),
            split: r[4].to_owned(),
        })
        .filter(|r| r.end <= VIDEO_SECS)
        .filter(|r| seen.insert(r.id.clone()))
        .skip(skip)
        .take(n)
        .collect();
    assert_eq!(rows.len(), n, "the real file has enough short rows");
    rows
}

/// `real_rows(0, n)` plus a second clip of the first video, outside its first clip (the two clips of one
/// video must stay together in a shard and in a merge).
pub fn real_rows_with_a_second_clip(n: usize) -> Vec<Row> {
    let mut rows = real_rows(0, n);
    let first = rows[0].clone();
    let (start, end) =
        if first.start >= 12.0 { (0.0, 10.0) } else { (first.end.max(40.0), first.end.max(40.0) + 10.0) };
    rows.push(Row::new(&first.label, &first.id, start, end));
    rows
}

/// Seconds as annotation files write them: `4` or `17.4`.
pub fn time_text(t: f64) -> String {
    if t.fract() == 0.0 {
        format!("{}", t as i64)
    } else {
        format!("{t}")
    }
}

/// Writes rows as a DeepMind CSV (`label,youtube_id,time_start,time_end,split`), quoting where needed.
pub fn write_csv(path: &Path, rows: &[Row]) {
    let mut w = csv::Writer::from_path(path).expect("create the annotation file");
    w.write_record(["label", "youtube_id", "time_start", "time_end", "split"]).unwrap();
    for r in rows {
        w.write_record([r.label.as_str(), &r.id, &time_text(r.start), &time_text(r.end), &r.split]).unwrap();
    }
    w.flush().unwrap();
}

/// Writes rows as DeepMind's JSON: `{"id": {"annotations": {"label", "segment"}, "subset", ...}}`.
pub fn write_json(path: &Path, rows: &[Row]) {
    let map: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|r| {
            let entry = serde_json::json!({
                "annotations": {"label": r.label, "segment": [r.start, r.end]},
                "duration": 10.0,
                "subset": r.split,
                "url": format!("https://www.youtube.com/watch?v={}", r.id),
            });
            (r.id.clone(), entry)
        })
        .collect();
    std::fs::write(path, serde_json::to_string_pretty(&map).unwrap()).expect("write the JSON file");
}

/// Writes raw annotation text (for malformed inputs).
pub fn write_text(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the annotation file");
}
