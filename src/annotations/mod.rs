//! Annotation files (DeepMind CSV and JSON, every variant; the other datasets' formats and any file through
//! a column map, in `presets/`) into validated rows.
//!
//! Every row of every file is validated before any filter applies, so bad input is reported before a
//! single download starts; the first error stops reading. The accepted CSV headers and aliases are listed
//! at the top of `csv.rs`, the JSON shape at the top of `json.rs`.

mod classes;
mod collect;
mod csv;
mod error;
mod fields;
mod json;
mod labels;
mod presets;
mod source;
#[cfg(test)]
mod tests;

pub use classes::read_classes_file;
pub use collect::UNSPLIT;
pub use error::{ErrorKind, InputError};
pub use fields::{is_valid_id, normalize_split, seconds_to_ms, MAX_ID_LEN, MAX_SECONDS};
pub use labels::{read_label_names, LabelNames, PersonBox, ReadOptions};
pub use presets::{Column, ColumnMap, MapOptions, Preset, VGGSOUND_CLIP_SECONDS};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One annotation row, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Class label as written in the file (trimmed); `None` for unlabelled (test) rows. The first of a
    /// multi-label row's labels.
    pub label: Option<String>,
    /// A multi-label row's other labels (AudioSet, AVA-Kinetics), each once, in the file's order; empty for
    /// a single-label row.
    pub extra_labels: Vec<String>,
    /// AVA-Kinetics: the person boxes of the keyframe, each with its action; empty for other formats.
    pub boxes: Vec<PersonBox>,
    /// Checked against the safe id pattern.
    pub youtube_id: String,
    pub time_start: f64,
    pub time_end: f64,
    /// Normalised split name (`val` becomes `validate`); `None` when the file has no split column.
    pub split: Option<String>,
    /// Where the row came from, for messages.
    pub file: Arc<Path>,
    pub line: u64,
}

impl Row {
    /// Every label of the row, the first one first.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.label.as_deref().into_iter().chain(self.extra_labels.iter().map(String::as_str))
    }
}

/// Row filters from the command line.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Split names to keep (normalised again here); empty keeps all. [`UNSPLIT`] selects rows without a
    /// split.
    pub splits: Vec<String>,
    /// Labels to keep, matched exactly; unlabelled rows never match. `None` keeps all.
    pub classes: Option<std::collections::BTreeSet<String>>,
    /// Keep at most this many rows (after the other filters), in file order across files.
    pub limit: Option<usize>,
}

/// Reads every file (CSV or JSON, sniffed), validates every row, applies the filters.
pub fn read_all(paths: &[PathBuf], filters: &Filters) -> Result<Vec<Row>, InputError> {
    read_all_as(paths, filters, &Preset::Auto)
}

/// [`read_all`] with every file read as `preset` (`Auto`: recognised from each file's start).
pub fn read_all_as(paths: &[PathBuf], filters: &Filters, preset: &Preset) -> Result<Vec<Row>, InputError> {
    read_all_with(paths, filters, preset, &ReadOptions::default())
}

/// [`read_all_as`] with the options some formats take (`--labels-file`, AVA's window, HACS negatives). The
/// labels file is read and checked before any annotation file.
pub fn read_all_with(
    paths: &[PathBuf],
    filters: &Filters,
    preset: &Preset,
    options: &ReadOptions,
) -> Result<Vec<Row>, InputError> {
    let mut rows = Vec::new();
    read_each_with(paths, filters, preset, options, &mut |row| rows.push(row))?;
    Ok(rows)
}

/// [`read_all_with`] handing each kept row to `f` as it is read, without a list of them all; returns how
/// many were kept. An error in any row is still reported before `read_each_with` returns, but `f` has seen
/// the rows before it.
pub fn read_each_with(
    paths: &[PathBuf],
    filters: &Filters,
    preset: &Preset,
    options: &ReadOptions,
    f: &mut dyn FnMut(Row),
) -> Result<usize, InputError> {
    let names = options.labels_file.as_deref().map(read_label_names).transpose()?;
    let mut out = collect::Collector::new(filters, f).with_options(options, names.as_ref());
    for path in paths {
        source::read_into(path, &mut out, preset)?;
    }
    Ok(out.kept())
}

/// Reads one file without filtering.
pub fn read_file(path: &Path) -> Result<Vec<Row>, InputError> {
    read_all(&[path.to_path_buf()], &Filters::default())
}
