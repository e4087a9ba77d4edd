//! The output folder: kinetics-dl's state directory, the lock, temp space, atomic placement of clips.

use anyhow::Context;
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
        anyhow::ensure!(is_inside(rel), "refusing a clip path outside the output folder: {}", rel.display());
        Ok(self.root.join(rel))
    }
}

/// True for a relative path made only of normal components (no `..`, no root, no prefix).
pub fn is_inside(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)))
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
}
