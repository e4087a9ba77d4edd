//! WebDataset shards: `OUT/webdataset/{split}-NNNNN.tar`, each sample a `KEY.mp4` (`KEY.flac`, ... for
//! audio-only clips) and a `KEY.json`.
//!
//! Samples are shuffled across shards with a fixed seed, so a shard mixes classes (loaders only shuffle
//! within a buffer) and the same journal always gives byte-identical shards (entries carry mtime 0, uid 0).
//! The key is the clip's file name without `.mp4` (clip names hold no other dot, and WebDataset cuts the
//! key at the first dot); class folders, and so spaces in them, never appear in the shards.

use super::Dataset;
use crate::journal::read::DoneClip;
use anyhow::Context;
use serde::Serialize;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

/// Where the shards go, inside OUT.
pub const DIR: &str = "webdataset";
const SHUFFLE_SEED: u64 = 0x6b69_6e65_7469_6373;
/// The shard writer's buffer: a shard is written in writes of this size rather than 8 KB ones.
const WRITE_BUFFER: usize = 1 << 20;

/// The metadata stored as `KEY.json`.
#[derive(Debug, Serialize)]
pub struct SampleMeta<'a> {
    pub label: Option<&'a str>,
    pub label_index: i64,
    /// Every label of a clip with several (the first is `label`); absent for a clip with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_indices: Option<Vec<i64>>,
    /// AVA-Kinetics' person boxes.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub boxes: &'a [crate::annotations::PersonBox],
    pub split: &'a str,
    pub youtube_id: &'a str,
    pub time_start: f64,
    pub time_end: f64,
    pub source: Option<&'a str>,
}

/// Writes every split's shards; returns one note per split.
pub fn write_shards(ds: &Dataset, shard_size: usize) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(shard_size > 0, "the shard size must be at least 1");
    let dir = ds.out.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut notes = Vec::new();
    for (split, clips) in &ds.splits {
        let mut order: Vec<&DoneClip> = clips.iter().collect();
        fastrand::Rng::with_seed(SHUFFLE_SEED).shuffle(&mut order);
        let keys = keys(&order);
        let shards = order.len().div_ceil(shard_size);
        in_parallel(shards, |i| {
            let (start, end) = (i * shard_size, ((i + 1) * shard_size).min(order.len()));
            write_shard(ds, split, &order[start..end], &keys[start..end], &shard_path(&dir, split, i))
        })?;
        remove_stale(&dir, split, shards)?;
        let pattern = format!("{split}-{{{:05}..{:05}}}.tar", 0, shards.max(1) - 1);
        notes.push(format!("{}: {} samples in {shards} shards", dir.join(pattern).display(), clips.len()));
    }
    Ok(notes)
}

/// How many shards are written at once, whatever the number of cores: writing one is mostly waiting for the
/// disk to give each clip (an open and a read of every file, rarely in the page cache after a long download),
/// and more reads in flight fill the disk's queue. 565,939 clips on 2 cores, caches dropped: 17.3 s with 2
/// writers, 10.4 s with 8 (16: 9.8 s); with every file cached 8 are no slower than 2.
const SHARD_WRITERS: usize = 8;

/// Runs `write(0..n)` on [`SHARD_WRITERS`] threads: shards are independent files. Returns the first error;
/// the other threads then take no new shard.
fn in_parallel(n: usize, write: impl Fn(usize) -> anyhow::Result<()> + Sync) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = SHARD_WRITERS.min(n.max(1));
    let next = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Err(e) = write(i) {
                    next.store(n, Ordering::Relaxed);
                    failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(e);
                    break;
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn shard_path(dir: &Path, split: &str, i: usize) -> PathBuf {
    dir.join(format!("{split}-{i:05}.tar"))
}

/// Sample keys: file stems, made unique within the split should two clips share one.
fn keys(clips: &[&DoneClip]) -> Vec<String> {
    let mut seen = HashSet::new();
    clips
        .iter()
        .map(|c| {
            let stem = c.stem().replace(char::is_whitespace, "_");
            let mut key = stem.clone();
            let mut n = 1;
            while !seen.insert(key.clone()) {
                n += 1;
                key = format!("{stem}-{n}");
            }
            key
        })
        .collect()
}

fn write_shard(ds: &Dataset, split: &str, clips: &[&DoneClip], keys: &[String], dest: &Path) -> anyhow::Result<()> {
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> anyhow::Result<()> {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(WRITE_BUFFER, File::create(&tmp)?));
        for (c, key) in clips.iter().zip(keys) {
            let clip_path = ds.out.join(&c.rel_path);
            let file = crate::outdir::open_clip(&clip_path)
                .with_context(|| format!("failed to open {}", clip_path.display()))?;
            let size = file.metadata()?.len();
            // The clip's own extension: `mp4`, or `flac`/`wav`/`m4a` for audio-only clips.
            let ext = Path::new(&c.rel_path).extension().and_then(|e| e.to_str()).unwrap_or("mp4");
            let data = Exactly { file: file.take(size), path: &clip_path };
            tar.append_data(&mut header(size), format!("{key}.{ext}"), data)?;
            let meta = SampleMeta {
                label: c.label.as_deref(),
                label_index: ds.label_index(c),
                labels: c.is_multi_label().then(|| c.labels().collect()),
                label_indices: c.is_multi_label().then(|| ds.label_indices(c)),
                boxes: c.boxes(),
                split,
                youtube_id: &c.youtube_id,
                time_start: c.start_ms as f64 / 1000.0,
                time_end: c.end_ms as f64 / 1000.0,
                source: c.source.as_deref(),
            };
            let json = serde_json::to_vec(&meta)?;
            tar.append_data(&mut header(json.len() as u64), format!("{key}.json"), json.as_slice())?;
        }
        let file = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("failed to write the shard {}", dest.display()))
}

/// A clip's bytes as its tar header states their length: no read past them to find the end of a file whose
/// length is known (one system call fewer a clip), and an error rather than a shard whose entries no longer
/// line up should the file be cut short while it is read (`tar` copies whatever the reader gives; a file
/// that grew is read to its stated length). Clips are replaced by rename, never rewritten in place, so
/// neither happens to a download's own files.
struct Exactly<'a> {
    /// The file, limited to its stated length: the limit left is what is still owed.
    file: std::io::Take<File>,
    path: &'a Path,
}

impl Read for Exactly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && self.file.limit() > 0 && !buf.is_empty() {
            let msg = format!("{} became shorter while the shard was written", self.path.display());
            return Err(std::io::Error::other(msg));
        }
        Ok(n)
    }
}

/// A regular-file header that does not depend on who ran the export or when.
fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Removes shards a previous export wrote beyond the ones just written.
fn remove_stale(dir: &Path, split: &str, keep: usize) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(num) = name.strip_prefix(&format!("{split}-")).and_then(|r| r.strip_suffix(".tar")) else {
            continue;
        };
        if num.len() == 5 && num.parse::<usize>().is_ok_and(|n| n >= keep) {
            std::fs::remove_file(dir.join(&name)).with_context(|| format!("failed to remove the old shard {name}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stems_made_unique() {
        let rows: Vec<DoneClip> =
            ["train/a b/x_000001_000011.mp4", "train/c/x_000001_000011.mp4", "test/y.mp4", "test/sp ace.mp4"]
                .iter()
                .map(|p| DoneClip { rel_path: p.to_string(), ..DoneClip::default() })
                .collect();
        let refs: Vec<&DoneClip> = rows.iter().collect();
        assert_eq!(keys(&refs), ["x_000001_000011", "x_000001_000011-2", "y", "sp_ace"]);
    }

    #[test]
    fn shards_are_written_once_each_and_the_first_failure_stops_the_rest() {
        use std::sync::Mutex;
        for n in [0, 1, 7, 100] {
            let written = Mutex::new(vec![]);
            in_parallel(n, |i| {
                written.lock().unwrap().push(i);
                Ok(())
            })
            .unwrap();
            let mut written = written.into_inner().unwrap();
            written.sort_unstable();
            assert_eq!(written, (0..n).collect::<Vec<_>>());
        }
        let tried = Mutex::new(0);
        let e = in_parallel(1000, |i| {
            *tried.lock().unwrap() += 1;
            anyhow::ensure!(i != 3, "shard {i} failed");
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "shard 3 failed");
        assert!(*tried.lock().unwrap() < 100, "{} shards tried after a failure", tried.lock().unwrap());
    }

    /// A clip is read to the length its header states: all of it, no more of a file that grew, and an error
    /// naming the file for one that became shorter (rather than a shard whose entries no longer line up).
    #[test]
    fn a_clip_is_read_to_its_stated_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x_000001_000011.mp4");
        std::fs::write(&path, (0..=255u8).cycle().take(100_000).collect::<Vec<u8>>()).unwrap();
        let read = |size: u64| {
            let file = File::open(&path).unwrap();
            let mut bytes = Vec::new();
            Exactly { file: file.take(size), path: &path }.read_to_end(&mut bytes).map(|_| bytes)
        };
        assert_eq!(read(100_000).unwrap(), std::fs::read(&path).unwrap());
        assert_eq!(read(70_000).unwrap(), std::fs::read(&path).unwrap()[..70_000]);
        assert_eq!(read(0).unwrap(), b"");
        let e = read(100_001).unwrap_err().to_string();
        assert!(e.contains("x_000001_000011.mp4 became shorter"), "{e}");
    }

    #[test]
    fn stale_shards_of_the_split_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train-00000.tar", "train-00001.tar", "train-00002.tar", "validate-00003.tar", "train-notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        remove_stale(dir.path(), "train", 1).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["train-00000.tar", "train-notes.txt", "validate-00003.tar"]);
    }
}
