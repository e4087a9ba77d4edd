//! AVA-Kinetics' box files (`ava_train_v2.2.csv`, `kinetics_train_v1.0.csv`, ...): no header,
//! `youtube_id,timestamp,x1,y1,x2,y2,action_id[,person_id]`, one row per person box and action. A clip is
//! the window around a keyframe (`--window-before`, `--window-after`, 5 s each by default, never before 0);
//! every row of one keyframe (same id and timestamp, anywhere in the file) goes into that one clip: its
//! actions as its labels (each once, in the file's order), its rows as its boxes.
//!
//! The files have no split column: a `train`, `val` or `test` word in the file's name (between `_`, `-` or
//! `.`) gives its rows that split.

use super::line::{numbered, split, Row};
use crate::annotations::collect::{Checked, Collector};
use crate::annotations::error::{ErrorKind, InputError, Problem};
use crate::annotations::fields::{check_id, check_label, check_time, check_window, parse_time, seconds_to_ms};
use crate::annotations::PersonBox;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

const FIELDS: [&str; 8] = ["youtube_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "person_id"];
const EXPECTED: &str = "7 or 8 fields (youtube_id,timestamp,x1,y1,x2,y2,action_id[,person_id])";

/// True when a first line has AVA's shape: 7 or 8 fields, numbers after the id, the box's corners between 0
/// and 1, a whole-number action.
pub(crate) fn looks_like(line: &str) -> bool {
    let Ok(fields) = split(line, ',') else { return false };
    let number = |f: &str| f.parse::<f64>().ok().filter(|v| v.is_finite());
    matches!(fields.len(), 7 | 8)
        && number(&fields[1]).is_some()
        && fields[2..6].iter().all(|f| number(f).is_some_and(|v| (0.0..=1.0).contains(&v)))
        && fields[6].parse::<u32>().is_ok()
}

/// The split a file's name gives its rows (`ava_val_v2.2.csv` → `val`).
fn split_of(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    name.split(['_', '-', '.']).find_map(|word| match word.to_ascii_lowercase().as_str() {
        "train" => Some("train"),
        "val" => Some("val"),
        "test" => Some("test"),
        _ => None,
    })
}

/// One keyframe's clip while the file is read.
struct Keyframe {
    line: u64,
    id: String,
    time: f64,
    labels: Vec<String>,
    boxes: Vec<PersonBox>,
}

/// Reads a whole AVA-Kinetics file (without its BOM), offering one row per keyframe to `out`, in the order of
/// their first rows; stops at the first error.
pub(crate) fn read(path: &Path, data: &[u8], out: &mut Collector<'_>) -> Result<(), InputError> {
    let text = super::line::text(path, data)?;
    let (before, after) = (out.options.window_before, out.options.window_after);
    let names = out.names;
    let mut keyframes: Vec<Keyframe> = Vec::new();
    let mut index: HashMap<(String, i64), usize> = HashMap::new();
    for (line, raw) in numbered(text) {
        if raw.trim().is_empty() {
            continue;
        }
        let row = Row::read(path, line, raw, &FIELDS, 7..=8, EXPECTED)?;
        let (fields, at) = (&row.fields, |i: usize| row.at(i));
        check_id(&fields[0]).map_err(at(0))?;
        let time = parse_time(&fields[1]).map_err(at(1))?;
        let mut bbox = [0.0; 4];
        for (i, corner) in bbox.iter_mut().enumerate() {
            let text = &fields[2 + i];
            *corner = match text.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => v + 0.0,
                _ => {
                    let p =
                        Problem::new(ErrorKind::BadNumber, format!("{text:?} is not a fraction of the frame (0 to 1)"));
                    return Err(at(2 + i)(p));
                }
            };
        }
        for (low, high) in [(0, 2), (1, 3)] {
            if bbox[high] < bbox[low] {
                let p = Problem::new(
                    ErrorKind::BadNumber,
                    format!("{} {} is before {} {}", FIELDS[2 + high], bbox[high], FIELDS[2 + low], bbox[low]),
                );
                return Err(at(2 + high)(p));
            }
        }
        let action = &fields[6];
        if action.parse::<u32>().is_err() {
            let p = Problem::new(ErrorKind::BadNumber, format!("action id {action:?} is not a whole number"));
            return Err(at(6)(p));
        }
        let label = match names {
            Some(names) => names.name(action).map_err(at(6))?,
            None => action.as_ref(),
        };
        check_label(label).map_err(at(6))?;
        let person_id = match fields.get(7).filter(|f| !f.is_empty()) {
            Some(p) => Some(p.parse::<i64>().map_err(|_| {
                at(7)(Problem::new(ErrorKind::BadNumber, format!("person id {p:?} is not a whole number")))
            })?),
            None => None,
        };
        let start = check_time((time - before).max(0.0)).map_err(at(1))?;
        let end = check_time(time + after).map_err(at(1))?;
        check_window(start, end).map_err(at(1))?;
        let slot = *index.entry((fields[0].to_string(), seconds_to_ms(time))).or_insert_with(|| {
            keyframes.push(Keyframe { line, id: fields[0].to_string(), time, labels: Vec::new(), boxes: Vec::new() });
            keyframes.len() - 1
        });
        let keyframe = &mut keyframes[slot];
        if !keyframe.labels.iter().any(|l| l == label) {
            keyframe.labels.push(label.to_owned());
        }
        keyframe.boxes.push(PersonBox { bbox, label: label.to_owned(), person_id });
    }
    if keyframes.is_empty() {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "empty file: no rows"));
    }
    let file_split = split_of(path);
    for k in keyframes {
        let mut labels = k.labels.into_iter();
        out.offer(Checked {
            label: labels.next().map(Cow::Owned),
            extra_labels: labels.collect(),
            boxes: k.boxes,
            youtube_id: Cow::Owned(k.id),
            time_start: (k.time - before).max(0.0) + 0.0,
            time_end: k.time + after,
            split: file_split.map(Cow::Borrowed),
            line: k.line,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_splits() {
        let cases = [
            ("-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1", true),
            ("-5KQ66BBWC4,902,0.077,0.151,0.283,0.811,80", true),
            ("abc,10.5,0,0,1,1,3,", true),
            ("-5KQ66BBWC4,0902,0.077,0.151,1.283,0.811,80,1", false),
            ("-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,run,1", false),
            ("label,youtube_id,time_start,time_end,split,a,b", false),
            ("---g-f_I2yQ,1,people marching,test", false),
        ];
        for (line, want) in cases {
            assert_eq!(looks_like(line), want, "{line:?}");
        }
        let names = [
            ("ava_train_v2.2.csv", Some("train")),
            ("kinetics_val_v1.0.csv", Some("val")),
            ("ava-test.csv", Some("test")),
            ("trainval.csv", None),
            ("boxes.csv", None),
        ];
        for (name, want) in names {
            assert_eq!(split_of(Path::new(name)), want, "{name}");
        }
    }
}
