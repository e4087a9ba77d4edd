//! What multi-label formats carry besides one label a row: the map from label ids to names
//! (`--labels-file`), AVA's person boxes, and the options those formats read with.

use super::error::{ErrorKind, InputError, Problem};
use super::fields::check_label;
use super::presets::line::{numbered, split, text};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One person box of an AVA-Kinetics keyframe and the action it is labelled with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PersonBox {
    /// `x1, y1, x2, y2`, as fractions of the frame's width and height (0 to 1).
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// The action, as a label (its name when `--labels-file` maps it).
    pub label: String,
    /// The person's id within the video, when the file gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<i64>,
}

/// Seconds before and after an AVA keyframe that make its clip, by default.
pub const AVA_WINDOW_SECONDS: (f64, f64) = (5.0, 5.0);

/// How the formats that need more than the file are read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// `--labels-file`: label ids to names (AudioSet's `class_labels_indices.csv`).
    pub labels_file: Option<PathBuf>,
    /// `--window-before`, `--window-after`: an AVA keyframe's clip, in seconds around it.
    pub window_before: f64,
    pub window_after: f64,
    /// `--keep-negatives`: HACS Clips' sampled negatives (label `-1`) are kept, as clips of their own.
    pub keep_negatives: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            labels_file: None,
            window_before: AVA_WINDOW_SECONDS.0,
            window_after: AVA_WINDOW_SECONDS.1,
            keep_negatives: false,
        }
    }
}

/// Label ids (AudioSet's `mid`s) to display names, and the file they came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelNames {
    pub file: PathBuf,
    pub names: HashMap<String, String>,
}

impl LabelNames {
    /// The name of `id`, or a problem naming the labels file.
    pub(crate) fn name(&self, id: &str) -> Result<&str, Problem> {
        self.names.get(id).map(String::as_str).ok_or_else(|| {
            Problem::new(ErrorKind::BadLabel, format!("label id {id:?} is not in {}", self.file.display()))
        })
    }
}

const HEADER: [&str; 3] = ["index", "mid", "display_name"];

/// Reads AudioSet's `class_labels_indices.csv`: the header `index,mid,display_name`, then one label a
/// line (names with a comma quoted). Every id and name must be there, every index a whole number, no id
/// twice; the first problem is reported with its line and field.
pub fn read_label_names(path: &Path) -> Result<LabelNames, InputError> {
    let data = std::fs::read(path).map_err(|e| InputError::io(path, &e))?;
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    let body = text(path, data)?;
    let mut names = HashMap::new();
    let mut header_seen = false;
    for (line, raw) in numbered(body) {
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split(raw, ',').map_err(|p| p.at(path, line, "line"))?;
        if !header_seen {
            let got: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if got != HEADER {
                return Err(InputError::new(
                    path,
                    Some(line),
                    Some("header"),
                    ErrorKind::UnknownHeader,
                    format!("expected the header index,mid,display_name, found {raw:?}"),
                ));
            }
            header_seen = true;
            continue;
        }
        if fields.len() != HEADER.len() {
            return Err(InputError::new(
                path,
                Some(line),
                None,
                ErrorKind::FieldCount,
                format!("expected 3 fields (index,mid,display_name), found {}", fields.len()),
            ));
        }
        let at = |i: usize| move |p: Problem| p.at(path, line, HEADER[i]);
        if fields[0].parse::<u32>().is_err() {
            let p = Problem::new(ErrorKind::BadNumber, format!("index {:?} is not a whole number", fields[0]));
            return Err(at(0)(p));
        }
        for (i, what) in [(1, "label id"), (2, "display name")] {
            if fields[i].is_empty() {
                return Err(at(i)(Problem::new(ErrorKind::MissingField, format!("empty {what}"))));
            }
            check_label(&fields[i]).map_err(at(i))?;
        }
        if names.insert(fields[1].to_string(), fields[2].to_string()).is_some() {
            let p = Problem::new(ErrorKind::BadLabel, format!("label id {:?} is listed twice", fields[1]));
            return Err(at(1)(p));
        }
    }
    if names.is_empty() {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "no labels in the labels file"));
    }
    Ok(LabelNames { file: path.to_path_buf(), names })
}
