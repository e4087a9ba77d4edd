//! Filters, and validation of the rows they drop.

use super::*;
use std::collections::BTreeSet;

fn classes(names: &[&str]) -> Option<BTreeSet<String>> {
    Some(names.iter().map(|s| s.to_string()).collect())
}

#[test]
fn filters() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&dir, "a.csv", format!("{H}yoga,a1,1,2,train\nzumba,a2,1,2,val\nyoga,a3,1,2,test\n").as_bytes());
    let b = write(&dir, "b.csv", b"youtube_id,time_start,time_end\nb1,1,2\nb2,1,2\n");
    let paths = [a, b];
    let ids = |filters: Filters| -> Vec<String> {
        read_all(&paths, &filters).unwrap().into_iter().map(|r| r.youtube_id).collect()
    };
    let split = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, Filters, &[&str])> = vec![
        ("none", Filters::default(), &["a1", "a2", "a3", "b1", "b2"]),
        ("split", Filters { splits: split(&["train"]), ..Default::default() }, &["a1"]),
        ("val is validate", Filters { splits: split(&["VAL", "test"]), ..Default::default() }, &["a2", "a3"]),
        ("unsplit", Filters { splits: split(&[UNSPLIT]), ..Default::default() }, &["b1", "b2"]),
        ("classes", Filters { classes: classes(&["yoga"]), ..Default::default() }, &["a1", "a3"]),
        ("classes are exact", Filters { classes: classes(&["Yoga", "yoga "]), ..Default::default() }, &[]),
        ("limit", Filters { limit: Some(2), ..Default::default() }, &["a1", "a2"]),
        ("limit across files", Filters { limit: Some(4), ..Default::default() }, &["a1", "a2", "a3", "b1"]),
        ("limit zero", Filters { limit: Some(0), ..Default::default() }, &[]),
        (
            "limit after the other filters",
            Filters { classes: classes(&["yoga"]), limit: Some(1), ..Default::default() },
            &["a1"],
        ),
        (
            "all together",
            Filters { splits: split(&["test", "train"]), classes: classes(&["yoga"]), limit: Some(5) },
            &["a1", "a3"],
        ),
    ];
    for (name, filters, want) in cases {
        assert_eq!(ids(filters), *want, "{name}");
    }
}

#[test]
fn rows_filtered_out_are_still_validated() {
    let bytes = format!("{H}yoga,a1,1,2,train\nzumba,a2,1,2,val\nzumba,a 3,1,2,val\n");
    let cases = [
        Filters { limit: Some(1), ..Default::default() },
        Filters { splits: vec!["train".into()], ..Default::default() },
        Filters { classes: classes(&["yoga"]), ..Default::default() },
    ];
    for filters in cases {
        let err = read_one(bytes.as_bytes(), &filters).unwrap_err();
        assert_eq!((err.kind, err.line), (ErrorKind::BadId, Some(4)), "{filters:?}");
    }
}
