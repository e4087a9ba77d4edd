//! What the caller hands `fetch` and what it gets back: wanted clips, events as they happen, final counts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A clip the caller wants, keyed by its file name (`{youtube_id}_{start:06}_{end:06}.mp4`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The caller's id for the clip, echoed in events.
    pub clip_id: i64,
    /// Final path; the verified clip is renamed there.
    pub dest: PathBuf,
    /// Seconds the annotation asks for; a clip more than [`SHORT_TOLERANCE`] shorter is bad.
    pub expected_duration: f64,
}

/// How much shorter than expected a clip may be before it counts as truncated.
pub use crate::tools::ffmpeg::DURATION_TOLERANCE_S as SHORT_TOLERANCE;

/// Progress, one event at a time. Every wanted clip gets at most one `ClipDone` or `ClipBad`.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorEvent {
    /// A download began (or a finished download from an earlier run was picked up).
    TarballStarted {
        name: String,
        total_bytes: Option<u64>,
    },
    /// Bytes received over the network, coalesced.
    Bytes {
        n: u64,
    },
    /// A tarball was downloaded and fully extracted.
    TarballDone {
        name: String,
        bytes: u64,
    },
    /// A tarball could not be downloaded or read; its clips are not reported.
    TarballFailed {
        name: String,
        message: String,
    },
    ClipDone {
        clip_id: i64,
        size: u64,
        duration: f64,
        tarball: String,
    },
    ClipBad {
        clip_id: i64,
        category: &'static str,
        message: String,
    },
    /// A clip in a tarball that `wanted` does not name.
    Unmatched {
        file_name: String,
        tarball: String,
    },
}

/// The category of every bad mirror clip, the same name the YouTube path uses.
pub const CORRUPT: &str = "corrupt";

/// Counts for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorStats {
    /// Tarballs downloaded (or reused) and fully extracted.
    pub tarballs: u64,
    /// Tarballs skipped because an earlier run extracted them and none of their clips is still wanted.
    pub tarballs_skipped: u64,
    pub tarballs_failed: u64,
    pub bytes_downloaded: u64,
    pub clips_placed: u64,
    pub clips_bad: u64,
    /// Clips in tarballs that `wanted` does not name.
    pub unmatched_clips: u64,
    /// Wanted clips seen in no tarball (neither placed nor bad): what the mirror lacks.
    pub wanted_without_clip: u64,
    /// Tar entries with `..` or an absolute path, never written.
    pub entries_refused: u64,
    /// Peak bytes of downloads and extracted-but-unplaced clips on disk at once.
    pub peak_disk_bytes: u64,
    /// The stop signal ended the run early.
    pub stopped: bool,
}

impl MirrorStats {
    /// True when every tarball was read: only then does `wanted_without_clip` say what the mirror lacks.
    pub fn is_complete(&self) -> bool {
        !self.stopped && self.tarballs_failed == 0
    }
}

/// Counters shared by the workers of one `fetch`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub tarballs: AtomicU64,
    pub tarballs_skipped: AtomicU64,
    pub tarballs_failed: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub clips_placed: AtomicU64,
    pub clips_bad: AtomicU64,
    pub unmatched_clips: AtomicU64,
    pub entries_refused: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MirrorStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MirrorStats {
            tarballs: get(&self.tarballs),
            tarballs_skipped: get(&self.tarballs_skipped),
            tarballs_failed: get(&self.tarballs_failed),
            bytes_downloaded: get(&self.bytes_downloaded),
            clips_placed: get(&self.clips_placed),
            clips_bad: get(&self.clips_bad),
            unmatched_clips: get(&self.unmatched_clips),
            entries_refused: get(&self.entries_refused),
            ..MirrorStats::default()
        }
    }
}

/// Bytes this fetch holds on disk (downloads and temp clips) and the most it ever held.
#[derive(Debug, Default)]
pub(crate) struct DiskMeter {
    current: AtomicU64,
    peak: AtomicU64,
}

impl DiskMeter {
    pub fn add(&self, n: u64) {
        let now = self.current.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub fn sub(&self, n: u64) {
        // Saturating: a file removed twice by two cleanup paths must not wrap the gauge.
        let _ = self.current.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(n)));
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_meter_keeps_the_peak() {
        let m = DiskMeter::default();
        m.add(10);
        m.add(5);
        m.sub(12);
        m.add(4);
        m.sub(100);
        assert_eq!((m.current(), m.peak()), (0, 15));
    }

    #[test]
    fn complete_only_without_stop_or_failures() {
        let table = [(false, 0, true), (true, 0, false), (false, 1, false)];
        for (stopped, tarballs_failed, want) in table {
            let s = MirrorStats { stopped, tarballs_failed, ..MirrorStats::default() };
            assert_eq!(s.is_complete(), want);
        }
    }
}
