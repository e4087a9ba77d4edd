//! Rows into jobs: one job per distinct clip, duplicates merged, disagreements between them recorded.

use super::classes::class_list;
use super::paths::{class_dir_name, rel_path, split_dir_name};
use super::{ClassDirs, ClipKey, Conflict, Job, Plan};
use crate::annotations::{seconds_to_ms, Row};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Builds the plan. The first row of a clip decides its labels, split and path; later rows with the same
/// key only raise its `rows` count and, when they disagree, show up in the conflict lists. Clip files end
/// in `.{ext}` (`mp4`, or the audio format's for `--audio-only`).
pub fn build(rows: &[Row], class_dirs: ClassDirs, ext: &str) -> Plan {
    let mut plan = Plan { class_dirs, ..Plan::default() };
    let mut index: HashMap<(&str, i64, i64), usize> = HashMap::with_capacity(rows.len());
    let mut names = NameCache::new(class_dirs);
    let mut label_conflicts = ConflictLog::default();
    let mut split_conflicts = ConflictLog::default();
    for row in rows {
        let (start_ms, end_ms) = (seconds_to_ms(row.time_start), seconds_to_ms(row.time_end));
        match index.entry((row.youtube_id.as_str(), start_ms, end_ms)) {
            Entry::Occupied(at) => {
                let job = &mut plan.jobs[*at.get()];
                job.rows = job.rows.saturating_add(1);
                plan.duplicates_merged += 1;
                if row.label != job.label {
                    label_conflicts.note(*at.get(), job, &job.label, &row.label);
                }
                if row.split != job.split {
                    split_conflicts.note(*at.get(), job, &job.split, &row.split);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(plan.jobs.len());
                let key = ClipKey { youtube_id: row.youtube_id.clone(), start_ms, end_ms };
                let split_dir = names.split(row.split.as_deref());
                // A clip with several labels has no one class folder: its split's, or its first label's.
                let multi = !row.extra_labels.is_empty();
                let class_dir =
                    row.label.as_deref().filter(|_| !multi || class_dirs == ClassDirs::First).map(|l| names.class(l));
                let rel_path = rel_path(&split_dir, class_dir.as_deref(), &key, ext);
                plan.jobs.push(Job {
                    key,
                    label: row.label.clone(),
                    extra_labels: row.extra_labels.clone(),
                    boxes: row.boxes.clone(),
                    split: row.split.clone(),
                    rel_path,
                    rows: 1,
                });
            }
        }
    }
    plan.label_conflicts = label_conflicts.conflicts;
    plan.split_conflicts = split_conflicts.conflicts;
    plan.classes = class_list(&plan.jobs, class_dirs);
    plan
}

/// Folder names by label and split, computed once each rather than once a row.
struct NameCache {
    mode: ClassDirs,
    classes: HashMap<String, String>,
    splits: HashMap<String, String>,
}

impl NameCache {
    fn new(mode: ClassDirs) -> Self {
        NameCache { mode, classes: HashMap::new(), splits: HashMap::new() }
    }

    fn class(&mut self, label: &str) -> String {
        if let Some(dir) = self.classes.get(label) {
            return dir.clone();
        }
        let dir = class_dir_name(label, self.mode);
        self.classes.insert(label.to_owned(), dir.clone());
        dir
    }

    fn split(&mut self, split: Option<&str>) -> String {
        let Some(split) = split else {
            return split_dir_name(None);
        };
        if let Some(dir) = self.splits.get(split) {
            return dir.clone();
        }
        let dir = split_dir_name(Some(split));
        self.splits.insert(split.to_owned(), dir.clone());
        dir
    }
}

/// Conflicts in first-seen order, one entry per clip, each other value listed once.
#[derive(Default)]
struct ConflictLog {
    conflicts: Vec<Conflict>,
    by_job: HashMap<usize, usize>,
}

impl ConflictLog {
    fn note(&mut self, job_index: usize, job: &Job, kept: &Option<String>, other: &Option<String>) {
        let at = *self.by_job.entry(job_index).or_insert_with(|| {
            self.conflicts.push(Conflict { key: job.key.clone(), kept: kept.clone(), others: Vec::new() });
            self.conflicts.len() - 1
        });
        let others = &mut self.conflicts[at].others;
        if !others.contains(other) {
            others.push(other.clone());
        }
    }
}
