//! Rows into jobs: one job per distinct clip, duplicates merged, disagreements between them recorded.

use super::classes::class_list;
use super::paths::{class_dir_name, rel_path, split_dir_name};
use super::{ClassDirs, ClipKey, Conflict, Job, Plan};
use crate::annotations::{seconds_to_ms, Row};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Builds the plan. The first row of a clip decides its labels, split and path; later rows with the same
/// key only raise its `rows` count and, when they disagree, show up in the conflict lists. Clip files end
/// in `.{ext}` (`mp4`, or the audio format's for `--audio-only`).
pub fn build(rows: &[Row], class_dirs: ClassDirs, ext: &str) -> Plan {
    let mut b = Builder::new(class_dirs, ext);
    for row in rows {
        b.add(row.clone());
    }
    b.finish()
}

/// [`build`] one row at a time, as the annotations are read: the rows need not all be held at once.
pub struct Builder<S = RandomState> {
    plan: Plan,
    ext: String,
    index: KeyIndex<S>,
    names: NameCache,
    label_conflicts: ConflictLog,
    split_conflicts: ConflictLog,
}

impl Builder {
    pub fn new(class_dirs: ClassDirs, ext: &str) -> Builder {
        Builder::with_hasher(class_dirs, ext, RandomState::new())
    }
}

impl<S: BuildHasher> Builder<S> {
    /// [`Builder::new`] with another hash for the clip keys (tests force collisions with a constant one).
    pub fn with_hasher(class_dirs: ClassDirs, ext: &str, hasher: S) -> Builder<S> {
        Builder {
            plan: Plan { class_dirs, ..Plan::default() },
            ext: ext.to_owned(),
            index: KeyIndex { hasher, by_hash: HashMap::new(), collided: HashMap::new() },
            names: NameCache::new(class_dirs),
            label_conflicts: ConflictLog::default(),
            split_conflicts: ConflictLog::default(),
        }
    }

    /// The next row, in file order.
    pub fn add(&mut self, row: Row) {
        let (start_ms, end_ms) = (seconds_to_ms(row.time_start), seconds_to_ms(row.time_end));
        let plan = &mut self.plan;
        let next = plan.jobs.len() as u32;
        match self.index.find_or_insert(&plan.jobs, (&row.youtube_id, start_ms, end_ms), next) {
            Some(at) => {
                let at = at as usize;
                let job = &mut plan.jobs[at];
                job.rows = job.rows.saturating_add(1);
                plan.duplicates_merged += 1;
                if row.label != job.label {
                    self.label_conflicts.note(at, job, &job.label, &row.label);
                }
                if row.split != job.split {
                    self.split_conflicts.note(at, job, &job.split, &row.split);
                }
            }
            None => {
                let key = ClipKey { youtube_id: row.youtube_id, start_ms, end_ms };
                let split_dir = self.names.split(row.split.as_deref());
                // A clip with several labels has no one class folder: its split's, or its first label's.
                let multi = !row.extra_labels.is_empty();
                let first = plan.class_dirs == ClassDirs::First;
                let class_dir = row.label.as_deref().filter(|_| !multi || first).map(|l| self.names.class(l));
                let rel_path = rel_path(&split_dir, class_dir.as_deref(), &key, &self.ext);
                plan.jobs.push(Job {
                    key,
                    label: row.label,
                    extra_labels: row.extra_labels,
                    boxes: row.boxes,
                    split: row.split,
                    rel_path,
                    rows: 1,
                });
            }
        }
    }

    pub fn finish(mut self) -> Plan {
        drop(self.index);
        self.plan.jobs.shrink_to_fit();
        self.plan.label_conflicts = self.label_conflicts.conflicts;
        self.plan.split_conflicts = self.split_conflicts.conflicts;
        self.plan.classes = class_list(&self.plan.jobs, self.plan.class_dirs);
        self.plan
    }
}

/// Positions in a list of jobs by clip key, without a copy of the keys: a 64-bit hash of the key maps to
/// the position of the first job with that hash, and the key is compared with that job's. Another key with
/// the same hash (about one in 10^7 for 650,000 clips) goes to a small exact map.
pub struct KeyIndex<S = RandomState> {
    hasher: S,
    by_hash: HashMap<u64, u32>,
    collided: HashMap<(String, i64, i64), u32>,
}

impl KeyIndex {
    /// The index of `jobs`, which must have distinct keys (a plan's).
    pub fn of(jobs: &[Job]) -> KeyIndex {
        KeyIndex::with_hasher(jobs, RandomState::new())
    }
}

impl<S: BuildHasher> KeyIndex<S> {
    /// [`KeyIndex::of`] with another hash (tests force collisions with a constant one).
    pub fn with_hasher(jobs: &[Job], hasher: S) -> KeyIndex<S> {
        let mut index = KeyIndex { hasher, by_hash: HashMap::with_capacity(jobs.len()), collided: HashMap::new() };
        for (i, job) in jobs.iter().enumerate() {
            let k = &job.key;
            index.find_or_insert(jobs, (&k.youtube_id, k.start_ms, k.end_ms), i as u32);
        }
        index
    }

    /// The position of the job with `key`, if any.
    pub fn get(&self, jobs: &[Job], key: (&str, i64, i64)) -> Option<u32> {
        let &at = self.by_hash.get(&self.hasher.hash_one(key))?;
        if same(&jobs[at as usize].key, key) {
            return Some(at);
        }
        self.collided.get(&(key.0.to_owned(), key.1, key.2)).copied()
    }

    /// The position of the job with `key`, or `None` after recording `next` as its position (the caller
    /// then pushes it there).
    fn find_or_insert(&mut self, jobs: &[Job], key: (&str, i64, i64), next: u32) -> Option<u32> {
        use std::collections::hash_map::Entry;
        match self.by_hash.entry(self.hasher.hash_one(key)) {
            Entry::Vacant(slot) => {
                slot.insert(next);
                None
            }
            Entry::Occupied(at) if same(&jobs[*at.get() as usize].key, key) => Some(*at.get()),
            Entry::Occupied(_) => match self.collided.entry((key.0.to_owned(), key.1, key.2)) {
                Entry::Occupied(at) => Some(*at.get()),
                Entry::Vacant(slot) => {
                    slot.insert(next);
                    None
                }
            },
        }
    }
}

fn same(k: &ClipKey, key: (&str, i64, i64)) -> bool {
    k.youtube_id == key.0 && k.start_ms == key.1 && k.end_ms == key.2
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
