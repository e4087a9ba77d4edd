//! Rows into jobs: one job per distinct (youtube_id, time_start, time_end), with its output path.
//!
//! Layout under OUT: `{split}/{class}/{clip}.mp4`, or `{split}/{clip}.mp4` for unlabelled rows and for
//! clips with several labels (under their first label's folder with `--class-dirs first`), with `unsplit`
//! for rows without a split. Naming rules are in `paths.rs`, the class order in `classes.rs`.

mod build;
mod classes;
mod paths;
#[cfg(test)]
mod tests;

pub use build::{build, Builder, KeyIndex};
pub use classes::{class_list, class_list_from_labels, ClassEntry};
pub use paths::{
    class_dir_name, clip_file_name, clip_file_name_ext, rel_path, safe_component, split_dir_name, MAX_NAME_BYTES,
};

use std::path::PathBuf;

/// How class folders are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassDirs {
    /// The label as is (spaces kept), made safe.
    Raw,
    /// Spaces become `_` (mmaction2).
    #[default]
    Underscore,
    /// torchvision's form: spaces become `_`, `'`, `(` and `)` removed.
    Torchvision,
    /// As `Underscore`, and a clip with several labels goes under its first label's folder instead of
    /// the split's.
    First,
}

/// The identity of a clip. Times are kept in milliseconds so that keys compare exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClipKey {
    pub youtube_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Job {
    pub key: ClipKey,
    /// Label of the first row for this key (its first label when it has several).
    pub label: Option<String>,
    /// The first row's other labels (AudioSet, AVA-Kinetics); empty for a single-label clip.
    pub extra_labels: Vec<String>,
    /// The first row's person boxes (AVA-Kinetics).
    pub boxes: Vec<crate::annotations::PersonBox>,
    pub split: Option<String>,
    /// Path relative to OUT, always inside it.
    pub rel_path: PathBuf,
    /// How many annotation rows this job stands for (1 unless duplicates were merged).
    pub rows: u32,
}

impl Job {
    /// Every label of the clip, the first one first.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.label.as_deref().into_iter().chain(self.extra_labels.iter().map(String::as_str))
    }

    /// The clip's `labels` and `boxes` as the journal and the fleet's table keep them: JSON arrays (every
    /// label, the first one first; the person boxes), `None` for a clip with one label and no boxes.
    pub fn multi_label_columns(&self) -> serde_json::Result<(Option<String>, Option<String>)> {
        let labels = if self.extra_labels.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&self.labels().collect::<Vec<_>>())?)
        };
        let boxes = if self.boxes.is_empty() { None } else { Some(serde_json::to_string(&self.boxes)?) };
        Ok((labels, boxes))
    }

    /// The other way: sets the labels after the first and the boxes from those columns (`label` keeps the
    /// first label, as the columns have it too).
    pub fn set_multi_label_columns(&mut self, labels: Option<&str>, boxes: Option<&str>) -> serde_json::Result<()> {
        let labels: Vec<String> = labels.map(serde_json::from_str).transpose()?.unwrap_or_default();
        self.extra_labels = labels.into_iter().skip(1).collect();
        self.boxes = boxes.map(serde_json::from_str).transpose()?.unwrap_or_default();
        Ok(())
    }
}

/// Rows of one clip that disagree on a value: the first row's value was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub key: ClipKey,
    pub kept: Option<String>,
    /// The other values seen, each once, in order of appearance.
    pub others: Vec<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Rows merged into an earlier job with the same key.
    pub duplicates_merged: usize,
    /// Clips whose rows disagree on the label, in order of first disagreement.
    pub label_conflicts: Vec<Conflict>,
    /// Clips whose rows disagree on the split (the clip is stored once, under the first split).
    pub split_conflicts: Vec<Conflict>,
    /// Class folders sorted by name; a label's index is its position (see `classes.rs`).
    pub classes: Vec<ClassEntry>,
    /// The naming the paths were built with.
    pub class_dirs: ClassDirs,
}
