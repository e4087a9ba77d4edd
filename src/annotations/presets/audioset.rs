//! AudioSet's segments CSVs (`balanced_train_segments.csv`, `eval_segments.csv`, ...): `#` comment lines,
//! then `YTID, start_seconds, end_seconds, positive_labels` a line, blanks after the commas, float times,
//! the labels a quoted comma-separated list of ids (`"/m/09x0r,/m/04rlf"`). With `--labels-file` the ids
//! become names; each clip keeps every label, in the file's order, each once.
//!
//! The files have no split column: a file named `NAME_segments.csv` gives its rows the split `NAME`
//! (`balanced_train`, `unbalanced_train`, `eval`); any other name leaves them without one.

use super::line::{numbered, Row};
use crate::annotations::collect::{Checked, Collector};
use crate::annotations::error::{ErrorKind, InputError, Problem};
use crate::annotations::fields::{check_id, check_label, check_window, parse_time};
use std::borrow::Cow;
use std::path::Path;

const FIELDS: [&str; 4] = ["YTID", "start_seconds", "end_seconds", "positive_labels"];
const EXPECTED: &str = "4 fields (YTID, start_seconds, end_seconds, \"positive_labels\")";

/// True for AudioSet's column line, with or without its `#` and blanks, in any case.
pub(crate) fn is_header(line: &str) -> bool {
    let squeezed: String = line.trim_start_matches('#').chars().filter(|c| !c.is_whitespace()).collect();
    squeezed.eq_ignore_ascii_case("YTID,start_seconds,end_seconds,positive_labels")
}

/// The split a file's name gives its rows (`eval_segments.csv` → `eval`).
fn split_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix("_segments.csv")?;
    (!stem.is_empty()).then(|| stem.to_owned())
}

/// Reads a whole AudioSet file (without its BOM), offering each row to `out`; stops at the first error.
pub(crate) fn read(path: &Path, data: &[u8], out: &mut Collector<'_>) -> Result<(), InputError> {
    let text = super::line::text(path, data)?;
    let file_split = split_of(path);
    let names = out.names;
    let mut rows = 0usize;
    for (line, raw) in numbered(text) {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || (rows == 0 && is_header(trimmed)) {
            continue;
        }
        let row = Row::read(path, line, raw, &FIELDS, 4..=4, EXPECTED)?;
        let (fields, at) = (&row.fields, |i: usize| row.at(i));
        check_id(&fields[0]).map_err(at(0))?;
        let start = parse_time(&fields[1]).map_err(at(1))?;
        let end = parse_time(&fields[2]).map_err(at(2))?;
        check_window(start, end).map_err(at(2))?;
        let mut labels: Vec<String> = Vec::new();
        for id in fields[3].split(',').map(str::trim) {
            if id.is_empty() {
                let p = Problem::new(ErrorKind::MissingField, "an empty label id in the list");
                return Err(at(3)(p));
            }
            let label = match names {
                Some(names) => names.name(id).map_err(at(3))?,
                None => id,
            };
            check_label(label).map_err(at(3))?;
            if !labels.iter().any(|l| l == label) {
                labels.push(label.to_owned());
            }
        }
        let mut labels = labels.into_iter();
        out.offer(Checked {
            label: labels.next().map(Cow::Owned),
            extra_labels: labels.collect(),
            boxes: Vec::new(),
            youtube_id: Cow::Borrowed(&fields[0]),
            time_start: start,
            time_end: end,
            split: file_split.as_deref().map(Cow::Borrowed),
            line,
        });
        rows += 1;
    }
    if rows == 0 {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no rows"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_splits() {
        for line in [
            "# YTID, start_seconds, end_seconds, positive_labels",
            "YTID,start_seconds,end_seconds,positive_labels",
            "#ytid,  START_SECONDS,end_seconds ,positive_labels",
        ] {
            assert!(is_header(line), "{line:?}");
        }
        for line in ["# Segments csv created Sun Mar  5 10:54:25 2017", "YTID,start_seconds,end_seconds", ""] {
            assert!(!is_header(line), "{line:?}");
        }
        let cases = [
            ("data/balanced_train_segments.csv", Some("balanced_train")),
            ("eval_segments.csv", Some("eval")),
            ("unbalanced_train_segments.csv", Some("unbalanced_train")),
            ("_segments.csv", None),
            ("audioset.csv", None),
        ];
        for (path, want) in cases {
            assert_eq!(split_of(Path::new(path)).as_deref(), want, "{path}");
        }
    }
}
