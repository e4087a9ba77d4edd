//! The real Kinetics-400 validate CSV, as CSV, as JSON and replicated to ~100k rows.

use super::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn real_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/k400_validate.csv")
}

#[test]
fn real_kinetics_400_validate() {
    let rows = read_file(&real_csv()).unwrap();
    assert_eq!(rows.len(), 17_770);
    let labels: BTreeSet<_> = rows.iter().map(|r| r.label.as_deref().unwrap()).collect();
    assert_eq!(labels.len(), 400);
    assert!(rows.iter().all(|r| r.split.as_deref() == Some("validate")));
    assert!(rows.iter().all(|r| r.time_end - r.time_start == 10.0));
    assert!(rows.iter().enumerate().all(|(i, r)| r.line == i as u64 + 2));
    assert_eq!(simplify(&rows[..1]), [(Some("javelin throw"), "--07WQ2iBlw", 1.0, 11.0, Some("validate"), 2)]);
}

/// The real rows as DeepMind-shaped JSON, one entry a line (line numbers then match the CSV's).
fn as_json(rows: &[Row], copies: usize) -> Vec<u8> {
    let mut out = b"{\n".to_vec();
    for copy in 0..copies {
        for (i, r) in rows.iter().enumerate() {
            let last = copy + 1 == copies && i + 1 == rows.len();
            let entry = serde_json::json!({
                "annotations": {"label": r.label, "segment": [r.time_start, r.time_end]},
                "duration": r.time_end - r.time_start,
                "subset": r.split,
                "url": format!("https://www.youtube.com/watch?v={}", r.youtube_id),
            });
            let key = format!("{}{}", r.youtube_id, if copy == 0 { String::new() } else { format!("_{copy}") });
            out.extend(format!("{:?}: {entry}{}\n", key, if last { "" } else { "," }).bytes());
        }
    }
    out.extend(b"}\n");
    out
}

#[test]
fn real_rows_through_json() {
    let csv_rows = read_file(&real_csv()).unwrap();
    let json_rows = read_one(&as_json(&csv_rows, 1), &Filters::default()).unwrap();
    assert_eq!(simplify(&json_rows), simplify(&csv_rows));
}

/// Kinetics-700 is ~650k rows; this replicates the real file to ~100k rows in both formats. No timing is
/// asserted; run with `--release -- --nocapture` to see it.
#[test]
fn scale() {
    let copies = 6;
    let text = std::fs::read_to_string(real_csv()).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut big = format!("{header}\n");
    for _ in 0..copies {
        big.push_str(body);
    }
    let started = std::time::Instant::now();
    let rows = read_one(big.as_bytes(), &Filters::default()).unwrap();
    let csv_time = started.elapsed();
    assert_eq!(rows.len(), 17_770 * copies);
    assert_eq!(rows.last().unwrap().line, 17_770 * copies as u64 + 1);
    let json = as_json(&rows[..17_770], copies);
    let started = std::time::Instant::now();
    let json_rows = read_one(&json, &Filters::default()).unwrap();
    eprintln!("{} rows: CSV {csv_time:?}, JSON {:?} ({} MB)", rows.len(), started.elapsed(), json.len() >> 20);
    assert_eq!(json_rows.len(), rows.len());
    assert!(Arc::ptr_eq(&json_rows[0].file, &json_rows[json_rows.len() - 1].file));
}
