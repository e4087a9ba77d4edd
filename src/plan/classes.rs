//! The class list behind `classes.txt` and label indices.
//!
//! Classes are sorted by folder name (byte order), the order torchvision's folder datasets and
//! PyTorchVideo assign indices in, so index = position = line number in `classes.txt` (from 0).
//! Distinct labels that map to one folder (e.g. `a b` and `a_b` under `underscore`) share an entry;
//! [`Plan::class_collisions`] lists them so the caller can warn.

use super::paths::class_dir_name;
use super::{ClassDirs, Job, Plan};
use std::collections::{BTreeMap, HashSet};

/// One class folder and the labels that land in it (sorted; more than one is a collision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassEntry {
    pub dir: String,
    pub labels: Vec<String>,
}

impl ClassEntry {
    /// The label to print for this class: the first in sort order.
    pub fn label(&self) -> &str {
        &self.labels[0]
    }
}

/// The sorted class list of the labelled jobs (every label of a multi-label one).
pub fn class_list(jobs: &[Job], mode: ClassDirs) -> Vec<ClassEntry> {
    class_list_from_labels(jobs.iter().flat_map(Job::labels), mode)
}

/// The sorted class list of any set of labels (duplicates allowed).
pub fn class_list_from_labels<'a>(labels: impl IntoIterator<Item = &'a str>, mode: ClassDirs) -> Vec<ClassEntry> {
    // Distinct first, then sorted: a set of the few hundred labels, not a sort of 650,000 rows' worth.
    let unique: HashSet<&str> = labels.into_iter().collect();
    let mut unique: Vec<&str> = unique.into_iter().collect();
    unique.sort_unstable();
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for label in unique {
        by_dir.entry(class_dir_name(label, mode)).or_default().push(label.to_owned());
    }
    by_dir.into_iter().map(|(dir, labels)| ClassEntry { dir, labels }).collect()
}

impl Plan {
    /// The index of a label's class in [`Plan::classes`], as written to manifests.
    pub fn class_index(&self, label: &str) -> Option<usize> {
        let dir = class_dir_name(label, self.class_dirs);
        self.classes.binary_search_by(|c| c.dir.as_str().cmp(&dir)).ok()
    }

    /// Class folders that more than one distinct label maps to.
    pub fn class_collisions(&self) -> impl Iterator<Item = &ClassEntry> {
        self.classes.iter().filter(|c| c.labels.len() > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (folder, labels)
    type Group<'a> = (&'a str, Vec<&'a str>);

    fn dirs(entries: &[ClassEntry]) -> Vec<Group<'_>> {
        entries.iter().map(|e| (e.dir.as_str(), e.labels.iter().map(String::as_str).collect())).collect()
    }

    #[test]
    fn sorted_by_folder_with_collisions_grouped() {
        let labels = ["zumba", "air drumming", "a b", "a_b", "a/b", "zumba", "Yoga"];
        let cases: [(ClassDirs, Vec<Group>); 2] = [
            (
                ClassDirs::Raw,
                vec![
                    ("Yoga", vec!["Yoga"]),
                    ("a b", vec!["a b"]),
                    ("a_b", vec!["a/b", "a_b"]),
                    ("air drumming", vec!["air drumming"]),
                    ("zumba", vec!["zumba"]),
                ],
            ),
            (
                ClassDirs::Underscore,
                vec![
                    ("Yoga", vec!["Yoga"]),
                    ("a_b", vec!["a b", "a/b", "a_b"]),
                    ("air_drumming", vec!["air drumming"]),
                    ("zumba", vec!["zumba"]),
                ],
            ),
        ];
        for (mode, want) in cases {
            assert_eq!(dirs(&class_list_from_labels(labels, mode)), want, "{mode:?}");
        }
    }

    #[test]
    fn index_follows_folder_order() {
        let plan = Plan {
            class_dirs: ClassDirs::Torchvision,
            classes: class_list_from_labels(["b c", "a (x)", "massaging person's head"], ClassDirs::Torchvision),
            ..Plan::default()
        };
        assert_eq!(plan.class_index("a (x)"), Some(0));
        assert_eq!(plan.class_index("b c"), Some(1));
        assert_eq!(plan.class_index("massaging person's head"), Some(2));
        assert_eq!(plan.class_index("nope"), None);
        assert_eq!(plan.class_collisions().count(), 0);
        assert_eq!(plan.classes[2].label(), "massaging person's head");
    }
}
