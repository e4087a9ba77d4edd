//! Streams a downloaded tarball (gzip or plain tar, sniffed) and writes each wanted `.mp4` to temp space.
//!
//! Runs on a blocking thread. Only an entry's file name matters, whatever folders the tarball used (flat,
//! class folders, deep `home/...` prefixes); macOS `._*` files are skipped, and entries with `..` or an
//! absolute path are refused outright, even though nothing is ever written at the entry's own path.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use tokio::sync::mpsc;

use super::claims::Claim;
use super::report::{Counters, MirrorEvent, Wanted};
use super::shared::Shared;
use super::types::TarballFailure;

/// Prefix of every temp file this module writes, so a later run can sweep exactly these.
pub(crate) const TMP_PREFIX: &str = "mirror-";

const COPY_CHUNK: usize = 1 << 20;

/// A wanted clip written to temp space, waiting for its verdict.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub name: String,
    pub wanted: Wanted,
    pub tmp: PathBuf,
    pub size: u64,
}

pub(crate) enum Extraction {
    /// Every entry was read; the clip file names the tarball holds, for the next run's skip check.
    Done(Vec<String>),
    Stopped,
}

/// What an entry's path makes of it.
#[derive(Debug, PartialEq)]
pub(crate) enum EntryKind<'a> {
    /// A clip named by its last path component.
    Clip(&'a str),
    Skip,
    Refused(&'static str),
}

pub(crate) fn classify(path: &Path) -> EntryKind<'_> {
    for component in path.components() {
        match component {
            Component::ParentDir => return EntryKind::Refused("`..` in the path"),
            Component::RootDir | Component::Prefix(_) => return EntryKind::Refused("absolute path"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) if name.starts_with("._") => EntryKind::Skip,
        Some(name) if name.len() > 4 && name.ends_with(".mp4") => EntryKind::Clip(name),
        _ => EntryKind::Skip,
    }
}

/// Gzip or not is decided by the first two bytes, never by the file name: one K400 part named `.tar.gz`
/// was a plain tar.
fn open(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut reader = BufReader::with_capacity(COPY_CHUNK, File::open(path)?);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip { Box::new(MultiGzDecoder::new(reader)) } else { Box::new(reader) })
}

pub(crate) struct ExtractJob {
    pub shared: Arc<Shared>,
    pub archive: PathBuf,
    pub tarball: String,
    pub out: mpsc::Sender<Extracted>,
}

impl ExtractJob {
    pub fn run(self) -> Result<Extraction, TarballFailure> {
        let sh = &self.shared;
        let reader = open(&self.archive).map_err(|e| TarballFailure::local(e, &self.archive))?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.broken(e))?;
        let mut names = Vec::new();
        for entry in entries {
            if *sh.stop.borrow() {
                return Ok(Extraction::Stopped);
            }
            let mut entry = entry.map_err(|e| self.broken(e))?;
            if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
                continue;
            }
            let path = entry.path().map_err(|e| self.broken(e))?.into_owned();
            let name = match classify(&path) {
                EntryKind::Clip(name) => name.to_string(),
                EntryKind::Skip => continue,
                EntryKind::Refused(why) => {
                    tracing::warn!(tarball = %self.tarball, entry = %path.display(), "refusing tar entry: {why}");
                    Counters::bump(&sh.counters.entries_refused, 1);
                    continue;
                }
            };
            names.push(name.clone());
            let wanted = match sh.claims.claim(&name) {
                Claim::Take(wanted) => wanted,
                Claim::Duplicate => {
                    tracing::debug!(tarball = %self.tarball, %name, "clip already taken from another copy");
                    continue;
                }
                Claim::Unmatched => {
                    Counters::bump(&sh.counters.unmatched_clips, 1);
                    let _ = sh.events.send(MirrorEvent::Unmatched { file_name: name, tarball: self.tarball.clone() });
                    continue;
                }
            };
            let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
            let tmp = sh.cfg.tmp_dir.join(format!("{TMP_PREFIX}{seq}-{name}"));
            let mut size = 0;
            match self.copy(&mut entry, &tmp, &mut size) {
                Ok(true) => {}
                other => {
                    self.discard(&tmp, &name);
                    sh.meter.sub(size);
                    return other.map(|_| Extraction::Stopped);
                }
            }
            let item = Extracted { name, wanted, tmp, size };
            if let Err(mpsc::error::SendError(item)) = self.out.blocking_send(item) {
                // The consumer is gone: the whole fetch was dropped.
                self.discard(&item.tmp, &item.name);
                sh.meter.sub(item.size);
                return Ok(Extraction::Stopped);
            }
        }
        Ok(Extraction::Done(names))
    }

    /// Copies one entry to `tmp` in chunks, checking the stop signal between them; false when stopped.
    /// `size` counts what reached the disk, so the caller can take it off the meter.
    fn copy(&self, entry: &mut impl Read, tmp: &Path, size: &mut u64) -> Result<bool, TarballFailure> {
        let sh = &self.shared;
        let mut file = File::create(tmp).map_err(|e| TarballFailure::local(e, tmp))?;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            if *sh.stop.borrow() {
                return Ok(false);
            }
            let n = entry.read(&mut buf).map_err(|e| self.broken(e))?;
            if n == 0 {
                return Ok(true);
            }
            file.write_all(&buf[..n]).map_err(|e| TarballFailure::local(e, tmp))?;
            *size += n as u64;
            sh.meter.add(n as u64);
        }
    }

    fn discard(&self, tmp: &Path, name: &str) {
        let _ = std::fs::remove_file(tmp);
        self.shared.claims.release(name);
    }

    fn broken(&self, e: std::io::Error) -> TarballFailure {
        TarballFailure::Tarball(format!("unreadable tarball {}: {e}", self.tarball))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        let table = [
            ("./abc_000001_000011.mp4", EntryKind::Clip("abc_000001_000011.mp4")),
            ("abc.mp4", EntryKind::Clip("abc.mp4")),
            ("passing American football (in game)/x.mp4", EntryKind::Clip("x.mp4")),
            ("home/user/kinetics/train/part_9/x.mp4", EntryKind::Clip("x.mp4")),
            ("abseiling/._x.mp4", EntryKind::Skip),
            ("__MACOSX/abseiling/._x.mp4", EntryKind::Skip),
            ("abseiling/", EntryKind::Skip),
            ("notes.txt", EntryKind::Skip),
            (".mp4", EntryKind::Skip),
            ("x.mp4.part", EntryKind::Skip),
            ("../x.mp4", EntryKind::Refused("`..` in the path")),
            ("a/../../x.mp4", EntryKind::Refused("`..` in the path")),
            ("/abs/x.mp4", EntryKind::Refused("absolute path")),
        ];
        for (path, want) in table {
            assert_eq!(classify(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn gzip_is_sniffed_not_guessed_from_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        builder.append_data(&mut header, "d/x.mp4", &b"abc"[..]).unwrap();
        let plain = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gzipped = gz.finish().unwrap();
        for (file, bytes) in [("plain.tar.gz", &plain), ("zipped.tar", &gzipped)] {
            let path = dir.path().join(file);
            std::fs::write(&path, bytes).unwrap();
            let mut archive = tar::Archive::new(open(&path).unwrap());
            let mut entries = archive.entries().unwrap();
            let mut entry = entries.next().unwrap().unwrap();
            assert_eq!(entry.path().unwrap(), Path::new("d/x.mp4"), "{file}");
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            assert_eq!(body, "abc", "{file}");
        }
    }
}
