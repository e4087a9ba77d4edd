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

/// Reads a labels file: AudioSet's `class_labels_indices.csv` (the header `index,mid,display_name`, then
/// one label a line, names with a comma quoted), or AVA's action list in protobuf text
/// (`label { name: "stand" label_id: 12 }` blocks, or `item { name: "..." id: 12 }`). Every id and name
/// must be there, every index a whole number, no id twice; the first problem is reported with its line and
/// field.
pub fn read_label_names(path: &Path) -> Result<LabelNames, InputError> {
    let data = std::fs::read(path).map_err(|e| InputError::io(path, &e))?;
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    let body = text(path, data)?;
    let first = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let names = if first.starts_with("label") || first.starts_with("item") {
        read_pbtxt(path, body)?
    } else {
        read_csv(path, body)?
    };
    if names.is_empty() {
        return Err(InputError::new(path, Some(1), None, ErrorKind::Empty, "no labels in the labels file"));
    }
    Ok(LabelNames { file: path.to_path_buf(), names })
}

/// AVA's `ava_action_list_v2.2.pbtxt`: one `label { ... }` (or `item { ... }`) block per action, each with a
/// quoted `name` and a whole-number `label_id` (or `id`); other keys (`label_type`) are ignored.
fn read_pbtxt(path: &Path, body: &str) -> Result<HashMap<String, String>, InputError> {
    let mut names = HashMap::new();
    // The open block: its first line, and the name and id seen so far.
    let mut open: Option<(u64, Option<String>, Option<String>)> = None;
    for (line, raw) in numbered(body) {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let problem =
            |field: &str, kind, message: String| InputError::new(path, Some(line), Some(field), kind, message);
        if let Some(rest) = raw.strip_prefix("label").or_else(|| raw.strip_prefix("item")) {
            if rest.trim() == "{" && open.is_none() {
                open = Some((line, None, None));
                continue;
            }
        }
        let Some((start, name, id)) = open.as_mut() else {
            return Err(problem("line", ErrorKind::Json, format!("expected `label {{` or `item {{`, found {raw:?}")));
        };
        if raw == "}" {
            let (start, name, id) = (*start, name.take(), id.take());
            let missing = |field: &str| {
                InputError::new(
                    path,
                    Some(start),
                    Some(field),
                    ErrorKind::MissingField,
                    format!("the block has no {field}"),
                )
            };
            let name = name.ok_or_else(|| missing("name"))?;
            let id = id.ok_or_else(|| missing("label_id"))?;
            if names.insert(id.clone(), name).is_some() {
                return Err(InputError::new(
                    path,
                    Some(start),
                    Some("label_id"),
                    ErrorKind::BadLabel,
                    format!("label id {id} is listed twice"),
                ));
            }
            open = None;
            continue;
        }
        let Some((key, value)) = raw.split_once(':') else {
            return Err(problem("line", ErrorKind::Json, format!("expected `key: value` or `}}`, found {raw:?}")));
        };
        let value = value.trim();
        match key.trim() {
            "name" => {
                let quoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                let Some(text) = quoted.filter(|t| !t.is_empty()) else {
                    return Err(problem(
                        "name",
                        ErrorKind::MissingField,
                        format!("expected a quoted name, found {value}"),
                    ));
                };
                check_label(text).map_err(|p| p.at(path, line, "name"))?;
                *name = Some(text.to_owned());
            }
            "label_id" | "id" => {
                if value.parse::<u32>().is_err() {
                    return Err(problem("label_id", ErrorKind::BadNumber, format!("{value:?} is not a whole number")));
                }
                *id = Some(value.to_owned());
            }
            _ => {}
        }
    }
    if let Some((start, ..)) = open {
        return Err(InputError::new(path, Some(start), None, ErrorKind::Truncated, "the block is never closed"));
    }
    Ok(names)
}

/// AudioSet's `class_labels_indices.csv`.
fn read_csv(path: &Path, body: &str) -> Result<HashMap<String, String>, InputError> {
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
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<(String, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        std::fs::write(&path, text).unwrap();
        let names = read_label_names(&path).map_err(|e| e.to_string().replace(&path.display().to_string(), "F"))?;
        let mut pairs: Vec<_> = names.names.into_iter().collect();
        pairs.sort();
        Ok(pairs)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn both_published_shapes() {
        let audioset = "index,mid,display_name\n0,/m/09x0r,\"Speech\"\n1,/m/05zppz,\"Male speech, man speaking\"\n";
        assert_eq!(
            read(audioset).unwrap(),
            pairs(&[("/m/05zppz", "Male speech, man speaking"), ("/m/09x0r", "Speech")])
        );
        let ava = "label {\n  name: \"bend/bow (at the waist)\"\n  label_id: 1\n  label_type: PERSON_MOVEMENT\n}\nlabel {\n  name: \"stand\"\n  label_id: 12\n}\n";
        assert_eq!(read(ava).unwrap(), pairs(&[("1", "bend/bow (at the waist)"), ("12", "stand")]));
        let items = "item {\n  name: \"stand\"\n  id: 12\n}\n";
        assert_eq!(read(items).unwrap(), pairs(&[("12", "stand")]));
    }

    #[test]
    fn problems_name_line_and_field() {
        let cases = [
            ("id,name\n0,x\n", "F:1: field `header`"),
            ("index,mid,display_name\n0,/m/a,A\nx,/m/b,B\n", "F:3: field `index`"),
            ("index,mid,display_name\n0,/m/a,A\n1,/m/a,B\n", "F:3: field `mid`"),
            ("index,mid,display_name\n0,/m/a,\n", "F:2: field `display_name`"),
            ("index,mid,display_name\n0,/m/a\n", "F:2: expected 3 fields"),
            ("index,mid,display_name\n", "F:1: no labels"),
            ("label {\n  name: \"stand\"\n}\n", "F:1: field `label_id`"),
            ("label {\n  name: \"stand\"\n  label_id: twelve\n}\n", "F:3: field `label_id`"),
            ("label {\n  name: stand\n  label_id: 12\n}\n", "F:2: field `name`"),
            (
                "label {\n  name: \"a\"\n  label_id: 1\n}\nlabel {\n  name: \"b\"\n  label_id: 1\n}\n",
                "F:5: field `label_id`",
            ),
            ("label {\n  name: \"a\"\n  label_id: 1\n", "F:1: the block is never closed"),
        ];
        for (text, want) in cases {
            let err = read(text).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }
}
