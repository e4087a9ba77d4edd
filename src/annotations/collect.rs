//! Applies the filters to validated rows as the readers produce them, so rows that are filtered out are
//! still validated but never stored.

use super::fields::normalize_split_into;
use super::{Filters, LabelNames, PersonBox, ReadOptions, Row};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// A row whose values have all passed validation, borrowed from the reader's buffers where it can be.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub label: Option<Cow<'a, str>>,
    /// A multi-label row's other labels (each once, none equal to `label`).
    pub extra_labels: Vec<String>,
    /// AVA's person boxes.
    pub boxes: Vec<PersonBox>,
    pub youtube_id: Cow<'a, str>,
    pub time_start: f64,
    pub time_end: f64,
    /// As written; normalised here.
    pub split: Option<Cow<'a, str>>,
    pub line: u64,
}

/// The split name that filters match rows without a split column against (also their output folder).
pub const UNSPLIT: &str = "unsplit";

pub(crate) struct Collector<'f> {
    /// How the formats that need more than the file are read, and `--labels-file`'s names.
    pub options: std::borrow::Cow<'f, ReadOptions>,
    pub names: Option<&'f LabelNames>,
    classes: Option<&'f BTreeSet<String>>,
    splits: Vec<String>,
    limit: usize,
    /// Rows kept so far.
    kept: usize,
    /// Where kept rows go, one at a time (the plan takes them as they come: no list of every row).
    sink: &'f mut dyn FnMut(Row),
    file: Arc<Path>,
    split_buf: String,
    /// The last normalised split stored, cloned for the next row instead of normalising again.
    last_split: Option<String>,
}

impl<'f> Collector<'f> {
    pub fn new(filters: &'f Filters, sink: &'f mut dyn FnMut(Row)) -> Self {
        let mut splits: Vec<String> = filters.splits.iter().map(|s| super::normalize_split(s)).collect();
        splits.sort();
        splits.dedup();
        Collector {
            options: Cow::Owned(ReadOptions::default()),
            names: None,
            classes: filters.classes.as_ref(),
            splits,
            limit: filters.limit.unwrap_or(usize::MAX),
            kept: 0,
            sink,
            file: Arc::from(Path::new("")),
            split_buf: String::new(),
            last_split: None,
        }
    }

    /// Reads with these options and label names.
    pub fn with_options(mut self, options: &'f ReadOptions, names: Option<&'f LabelNames>) -> Self {
        self.options = Cow::Borrowed(options);
        self.names = names;
        self
    }

    /// Rows offered from now on come from `file`.
    pub fn start_file(&mut self, file: &Path) {
        self.file = Arc::from(file);
    }

    pub fn offer(&mut self, row: Checked<'_>) {
        if self.kept >= self.limit {
            return;
        }
        if let Some(classes) = self.classes {
            let first = row.label.as_deref().filter(|l| classes.contains(*l));
            if first.is_none() && !row.extra_labels.iter().any(|l| classes.contains(l)) {
                return;
            }
        }
        let has_split = match &row.split {
            Some(raw) => {
                normalize_split_into(raw, &mut self.split_buf);
                true
            }
            None => false,
        };
        if !self.splits.is_empty() {
            let name = if has_split { self.split_buf.as_str() } else { UNSPLIT };
            if self.splits.binary_search_by(|s| s.as_str().cmp(name)).is_err() {
                return;
            }
        }
        let split = has_split.then(|| match &self.last_split {
            Some(last) if *last == self.split_buf => last.clone(),
            _ => {
                self.last_split = Some(self.split_buf.clone());
                self.split_buf.clone()
            }
        });
        self.kept += 1;
        (self.sink)(Row {
            label: row.label.map(Cow::into_owned),
            extra_labels: row.extra_labels,
            boxes: row.boxes,
            youtube_id: row.youtube_id.into_owned(),
            time_start: row.time_start,
            time_end: row.time_end,
            split,
            file: Arc::clone(&self.file),
            line: row.line,
        });
    }

    /// How many rows were kept.
    pub fn kept(&self) -> usize {
        self.kept
    }
}
