//! `kinetics-dl export`: the done clips in the layouts training code reads.
//!
//! Every format writes `OUT/classes.txt` (every label of the journal, sorted bytewise, index = 0-based line
//! number: the Kinetics convention mmaction2's label maps and torchvision's pretrained weights follow) and
//! numbers labels with it; unlabelled clips (the test split) get `-1`. Only done clips whose file exists
//! are exported. Formats whose lines are split on whitespace (mmaction2, slowfast) cannot hold paths with
//! spaces (`--class-dirs raw`): for a split that has any, they list relative symlinks under `OUT/links/`
//! whose paths have `_` for each space, and say which prefix to configure.
//!
//! A clip with several labels (AudioSet, AVA-Kinetics) keeps them all: mmaction2's lines list every index
//! (`path i j k`, its `multi_class` form), PyTorchVideo gets `{split}.json` (the `(path, {"label": [i, j]})`
//! pairs its `LabeledVideoDataset` takes), WebDataset's JSON has `labels` and `label_indices`, `clips.csv`
//! the journal's `labels` column; PySlowFast's Kinetics lists hold one label a clip and refuse such a split.

pub mod lists;
pub mod webdataset;

use crate::journal::read::{DoneClip, Reader};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A training framework's file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The folder tree as it is, plus `classes.txt` (torchvision.datasets.Kinetics, DatasetFolder).
    Torchvision,
    /// `kinetics_{split}_list_videos.txt`: `class_dir/clip.mp4 label_index`, relative to the split folder.
    Mmaction2,
    /// `pytorchvideo/{split}.csv`: `path label_index`, relative to OUT (split from the right).
    Pytorchvideo,
    /// `slowfast/{train,val,test}.csv`: `path label_index`, no header, relative to OUT.
    Slowfast,
    /// `clips.csv`: every column of the journal's clips table.
    Csv,
    /// `webdataset/{split}-NNNNN.tar` shards of `KEY.mp4` + `KEY.json` samples.
    Webdataset,
}

impl Format {
    /// The format's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Torchvision => "torchvision",
            Format::Mmaction2 => "mmaction2",
            Format::Pytorchvideo => "pytorchvideo",
            Format::Slowfast => "slowfast",
            Format::Csv => "csv",
            Format::Webdataset => "webdataset",
        }
    }
}

/// What `export` is asked for.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The output folder of a download.
    pub out: PathBuf,
    /// What to write.
    pub format: Format,
    /// Samples per WebDataset shard (at least 1).
    pub shard_size: u64,
}

/// The done clips of OUT and the class index, as every format needs them.
pub struct Dataset {
    pub out: PathBuf,
    /// Done clips whose file exists, by split, each split sorted by path.
    pub splits: BTreeMap<String, Vec<DoneClip>>,
    /// Sorted labels; a label's index is its position.
    pub classes: Vec<String>,
    /// Done clips skipped because their file is missing.
    pub missing_files: usize,
}

impl Dataset {
    /// Reads OUT's journal.
    pub fn load(out: &Path) -> anyhow::Result<Dataset> {
        let reader = Reader::open(out)?;
        let classes = reader.labels().context("failed to read the labels of the journal")?;
        let mut splits: BTreeMap<String, Vec<DoneClip>> = BTreeMap::new();
        let mut missing_files = 0;
        let mut dirs = crate::outdir::DirCache::default();
        reader
            .each_done_clip(|c| {
                if dirs.is_file(out, Path::new(&c.rel_path)) {
                    splits.entry(c.split_name()).or_default().push(c);
                } else {
                    missing_files += 1;
                }
                Ok(())
            })
            .context("failed to read the clips of the journal")?;
        for clips in splits.values_mut() {
            clips.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path).then(a.id.cmp(&b.id)));
        }
        // Absolute, so that the prefixes the notes tell users to configure work from anywhere.
        let out = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
        Ok(Dataset { out, splits, classes, missing_files })
    }

    /// The clip's label index in `classes.txt`, or -1 for an unlabelled clip.
    pub fn label_index(&self, c: &DoneClip) -> i64 {
        let index = |l: &str| self.classes.binary_search_by(|x| x.as_str().cmp(l)).ok();
        c.label.as_deref().and_then(index).map_or(-1, |i| i as i64)
    }

    /// Every label index of the clip (one for a single-label clip; `[-1]` for an unlabelled one).
    pub fn label_indices(&self, c: &DoneClip) -> Vec<i64> {
        if !c.is_multi_label() {
            return vec![self.label_index(c)];
        }
        c.labels().map(|l| self.classes.binary_search_by(|x| x.as_str().cmp(l)).map_or(-1, |i| i as i64)).collect()
    }

    pub fn done(&self) -> usize {
        self.splits.values().map(Vec::len).sum()
    }
}

/// Writes one format; returns what was written and what to configure, one line each.
pub fn export(ds: &Dataset, format: Format, shard_size: usize) -> anyhow::Result<Vec<String>> {
    let mut notes = vec![lists::classes_txt(ds)?];
    notes.extend(match format {
        Format::Torchvision => lists::torchvision(ds)?,
        Format::Mmaction2 => lists::mmaction2(ds)?,
        Format::Pytorchvideo => lists::pytorchvideo(ds)?,
        Format::Slowfast => lists::slowfast(ds)?,
        Format::Csv => lists::csv(ds)?,
        Format::Webdataset => webdataset::write_shards(ds, shard_size)?,
    });
    Ok(notes)
}

/// Writes a file atomically through a buffered writer handed to `fill` (temp in the same folder, then
/// rename), creating its folder; the temp file is removed when `fill` fails.
pub fn write_atomic_with(
    dest: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        fill(&mut out)?;
        out.flush()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("failed to write {}", dest.display()))
}

/// Writes a file atomically (temp in the same folder, then rename), creating its folder.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dest)
    };
    write().with_context(|| format!("failed to write {}", dest.display()))
}
