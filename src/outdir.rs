//! The output folder: kinetics-dl's state directory, the lock, temp space, atomic placement of clips.

use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::journal::STATE_DIR;

/// An output folder held by this process: the lock lives as long as this value.
#[derive(Debug)]
pub struct OutDir {
    root: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates OUT if needed, takes its lock (refusing a second process) and sweeps temp space left by a
    /// crash.
    pub fn open(root: &Path) -> anyhow::Result<OutDir> {
        // Absolute, so that paths handed to tools resolve the same whatever their working directory.
        let root = &std::path::absolute(root).with_context(|| format!("bad output folder {}", root.display()))?;
        let state = root.join(STATE_DIR);
        std::fs::create_dir_all(&state).with_context(|| format!("failed to create {}", state.display()))?;
        let lock_path = state.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("failed to open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                anyhow::bail!(
                    "another kinetics-dl (pid {}) is already working in {}; wait for it to finish or stop it first",
                    holder.trim().if_empty("unknown"),
                    root.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("failed to lock {}", lock_path.display()));
            }
        }
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        let out = OutDir { root: root.to_path_buf(), _lock: lock };
        out.sweep_tmp()?;
        Ok(out)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Temp space inside OUT, so that a finished clip is renamed into place on the same filesystem.
    pub fn tmp(&self) -> PathBuf {
        self.root.join(STATE_DIR).join("tmp")
    }

    fn sweep_tmp(&self) -> anyhow::Result<()> {
        let tmp = self.tmp();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("failed to clear temp space {}", tmp.display()))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| format!("failed to create {}", tmp.display()))?;
        Ok(())
    }

    /// The final path of a clip; refuses anything that would leave OUT.
    pub fn clip_path(&self, rel: &Path) -> anyhow::Result<PathBuf> {
        check_inside(rel)?;
        Ok(self.root.join(rel))
    }
}

/// [`is_inside`] as an error naming the path.
pub fn check_inside(rel: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(is_inside(rel), "refusing a clip path outside the output folder: {}", rel.display());
    Ok(())
}

/// True for a relative path made only of normal components (no `..`, no root, no prefix).
pub fn is_inside(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Opens a finished clip to read it without changing its access time. A clip's first read after it was
/// written would otherwise update it (`relatime`): an inode written back to the disk for each clip an export
/// or a hash reads, and about 2 µs of kernel time each (566,000 clips of `bench/scale.py`, read by Python:
/// 1.84 CPU s with the update, 1.25 without). `O_NOATIME` is refused (EPERM) on files of another user to a
/// process without CAP_FOWNER: those are opened the usual way.
pub fn open_clip(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path),
        opened => opened,
    }
}

/// Moves a verified temp file to its final name: fsync the data, rename, fsync the folder.
pub fn place(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    File::open(tmp)?.sync_all()?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(tmp, dest)?;
    if let Some(parent) = dest.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Writes a whole file atomically (temp in the same folder, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dest)
}

trait IfEmpty {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str;
}

impl IfEmpty for str {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str {
        if self.is_empty() {
            other
        } else {
            self
        }
    }
}

/// Whether clip files exist, from one listing of each folder rather than a lookup of each file (a rerun
/// over 566,000 done clips lists 2,100 folders instead, and so does an export); a first run's folders do not
/// exist yet.
#[derive(Default)]
pub struct DirCache {
    dirs: HashMap<String, Listing>,
}

enum Listing {
    /// No such folder.
    Missing,
    /// The regular files of the folder, and the entries whose type the listing does not settle (symlinks,
    /// file systems that do not say): those are looked up as before.
    Listed { files: HashSet<OsString>, other: HashSet<OsString> },
    /// The folder could not be listed: each file is looked up.
    Unlisted,
}

impl Listing {
    fn of(dir: &Path) -> Listing {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(_) if !dir.is_dir() => return Listing::Missing,
            Err(_) => return Listing::Unlisted,
        };
        let (mut files, mut other) = (HashSet::new(), HashSet::new());
        for entry in entries {
            let Ok(entry) = entry else { return Listing::Unlisted };
            match entry.file_type() {
                Ok(t) if t.is_file() => files.insert(entry.file_name()),
                Ok(t) if t.is_dir() => false,
                _ => other.insert(entry.file_name()),
            };
        }
        Listing::Listed { files, other }
    }
}

impl DirCache {
    /// Whether `root/rel` is a regular file (or a symlink to one), as `Path::is_file` says. `rel` is split at
    /// its last `/` as text, and joined to `root` only where the listing does not settle it: this runs once
    /// for every done clip of a rerun or an export.
    pub fn is_file(&mut self, root: &Path, rel: &Path) -> bool {
        let Some((parent, name)) = rel.to_str().map(|r| r.rsplit_once('/').unwrap_or(("", r))) else {
            return root.join(rel).is_file();
        };
        if !self.dirs.contains_key(parent) {
            self.dirs.insert(parent.to_owned(), Listing::of(&root.join(parent)));
        }
        let name = std::ffi::OsStr::new(name);
        match &self.dirs[parent] {
            Listing::Missing => false,
            Listing::Listed { files, other } => {
                files.contains(name) || (other.contains(name) && root.join(rel).is_file())
            }
            Listing::Unlisted => root.join(rel).is_file(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_inside() {
        let table = [
            ("validate/abseiling/x.mp4", true),
            ("x.mp4", true),
            ("../x.mp4", false),
            ("validate/../../x.mp4", false),
            ("/etc/passwd", false),
            ("", false),
            ("./x.mp4", false),
        ];
        for (p, want) in table {
            assert_eq!(is_inside(Path::new(p)), want, "{p}");
        }
    }

    #[test]
    fn second_open_is_refused_and_temp_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let a = OutDir::open(dir.path()).unwrap();
        std::fs::write(a.tmp().join("leftover.mkv"), b"x").unwrap();
        let err = OutDir::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already working in"), "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        drop(a);
        let b = OutDir::open(dir.path()).unwrap();
        assert!(!b.tmp().join("leftover.mkv").exists());
    }

    #[test]
    fn place_creates_folders_and_moves() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("t.mp4");
        std::fs::write(&tmp, b"clip").unwrap();
        let dest = dir.path().join("a/b/c.mp4");
        place(&tmp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"clip");
        assert!(!tmp.exists());
    }

    /// The folder listings answer as a lookup of each file does: regular files, symlinks to them, dangling
    /// symlinks, folders named like a clip, missing folders and missing files.
    #[test]
    fn listed_folders_answer_as_lookups_do() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::open(dir.path()).unwrap();
        let root = out.root().to_path_buf();
        let class = root.join("train/yoga");
        std::fs::create_dir_all(class.join("d_000000_000010.mp4")).unwrap();
        std::fs::write(class.join("a_000000_000010.mp4"), b"clip").unwrap();
        std::fs::write(root.join("train/elsewhere.mp4"), b"clip").unwrap();
        std::os::unix::fs::symlink("../elsewhere.mp4", class.join("b_000000_000010.mp4")).unwrap();
        std::os::unix::fs::symlink("../nowhere.mp4", class.join("c_000000_000010.mp4")).unwrap();
        let names = ["a", "b", "c", "d", "e"].map(|n| format!("train/yoga/{n}_000000_000010.mp4"));
        let rels: Vec<&str> = names.iter().map(String::as_str).chain(["test/x_000000_000010.mp4"]).collect();
        let mut cache = DirCache::default();
        let mut answers = Vec::new();
        for rel in &rels {
            let listed = cache.is_file(&root, Path::new(rel));
            assert_eq!(listed, root.join(rel).is_file(), "{rel}");
            answers.push(listed);
        }
        assert_eq!(answers, [true, true, false, false, false, false]);
        assert!(matches!(cache.dirs["test"], Listing::Missing));
    }

    /// Reading a clip through `open_clip` leaves its access time alone, even where the first read after a
    /// write would update it (an access time older than the file's last change, `relatime`'s rule).
    #[test]
    fn reading_a_clip_leaves_its_access_time() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a_000000_000010.mp4");
        std::fs::write(&path, b"clip bytes").unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let times = std::fs::FileTimes::new().set_accessed(long_ago).set_modified(std::time::SystemTime::now());
        File::options().write(true).open(&path).unwrap().set_times(times).unwrap();
        let mut bytes = Vec::new();
        open_clip(&path).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"clip bytes");
        assert_eq!(std::fs::metadata(&path).unwrap().accessed().unwrap(), long_ago);
        assert!(open_clip(&dir.path().join("missing.mp4")).is_err());
    }
}
