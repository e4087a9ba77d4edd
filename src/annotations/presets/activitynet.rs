//! ActivityNet 1.3 and HACS Segments JSON: `{"version", "taxonomy", "database": {"<youtube_id>":
//! {"subset": "training", "duration": 82.7, "url": "...", "annotations": [{"segment": [s, e], "label":
//! "..."}, ...]}}}`. Every segment is a clip of its own; a video without annotations (the test subset)
//! gives none. Keys other than these are skipped.
//!
//! The file is parsed whole (the largest, HACS Segments, is about 40 MB); an entry's line is found by
//! looking for its key after the previous entry's, so messages name the line of the video's key.

use super::line::text;
use crate::annotations::collect::{Checked, Collector};
use crate::annotations::error::{ErrorKind, InputError, Problem};
use crate::annotations::fields::{check_id, check_label, check_split, check_time, check_window};
use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::path::Path;

#[derive(Deserialize)]
struct Top {
    database: Option<Database>,
}

/// The videos in file order.
struct Database(Vec<(String, Video)>);

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Database, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Database;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object keyed by youtube id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Database, A::Error> {
                let mut videos = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    videos.push(entry);
                }
                Ok(Database(videos))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Video {
    subset: Option<String>,
    #[serde(default)]
    annotations: Option<Vec<Annotation>>,
}

#[derive(Deserialize)]
struct Annotation {
    segment: Option<Vec<f64>>,
    label: Option<String>,
}

/// Reads a whole ActivityNet-shaped file (without its BOM), offering each segment to `out`.
pub(crate) fn read(path: &Path, data: &[u8], out: &mut Collector<'_>) -> Result<(), InputError> {
    let text = text(path, data)?;
    let top: Top = serde_json::from_str(text).map_err(|err| {
        let kind = match err.classify() {
            serde_json::error::Category::Eof => ErrorKind::Truncated,
            _ => ErrorKind::Json,
        };
        InputError::new(path, Some(err.line() as u64).filter(|&l| l > 0), None, kind, err.to_string())
    })?;
    let Some(Database(videos)) = top.database else {
        return Err(InputError::new(
            path,
            Some(1),
            Some("database"),
            ErrorKind::Json,
            "no \"database\" object (expected the ActivityNet / HACS Segments shape)",
        ));
    };
    let mut lines = KeyLines { text, pos: text.find("\"database\"").unwrap_or(0), line: 1, counted: 0 };
    for (id, video) in videos {
        let line = lines.of_key(&id);
        let at = |field: &'static str| move |p: Problem| p.at(path, line, field);
        check_id(&id).map_err(at("youtube_id"))?;
        let subset = video.subset.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(subset) = subset {
            check_split(subset).map_err(at("subset"))?;
        }
        for annotation in video.annotations.unwrap_or_default() {
            let (start, end) = match annotation.segment.as_deref() {
                Some(&[start, end]) => (start, end),
                Some(_) => {
                    return Err(Problem::new(ErrorKind::Json, "expected a [start, end] pair of numbers").at(
                        path,
                        line,
                        "annotations.segment",
                    ))
                }
                None => {
                    return Err(Problem::new(ErrorKind::MissingField, "missing value").at(
                        path,
                        line,
                        "annotations.segment",
                    ))
                }
            };
            let start = check_time(start).map_err(at("annotations.segment"))?;
            let end = check_time(end).map_err(at("annotations.segment"))?;
            check_window(start, end).map_err(at("annotations.segment"))?;
            let label = annotation.label.as_deref().map(str::trim).filter(|l| !l.is_empty());
            if let Some(label) = label {
                check_label(label).map_err(at("annotations.label"))?;
            }
            out.offer(Checked {
                label: label.map(Cow::Borrowed),
                extra_labels: Vec::new(),
                boxes: Vec::new(),
                youtube_id: Cow::Borrowed(&id),
                time_start: start,
                time_end: end,
                split: subset.map(Cow::Borrowed),
                line,
            });
        }
    }
    Ok(())
}

/// Finds the line of each video's key, in file order.
struct KeyLines<'t> {
    text: &'t str,
    /// Where to look for the next key.
    pos: usize,
    line: u64,
    /// Bytes whose newlines are in `line`.
    counted: usize,
}

impl KeyLines<'_> {
    fn of_key(&mut self, id: &str) -> u64 {
        let needle = serde_json::to_string(id).unwrap_or_default();
        let Some(found) = self.text[self.pos..].find(&needle).map(|p| self.pos + p) else {
            return self.line;
        };
        self.line += self.text.as_bytes()[self.counted..found].iter().filter(|&&b| b == b'\n').count() as u64;
        self.counted = found;
        self.pos = found + needle.len();
        self.line
    }
}
