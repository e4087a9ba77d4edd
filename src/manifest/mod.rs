//! `kinetics-dl manifest` and `kinetics-dl diff`: a reproducible record of what a dataset holds, and the
//! comparison of two of them.
//!
//! The manifest is one JSON document (default `OUT/manifest.json`) with one clip a line:
//! `kinetics_dl_manifest` (format version), `generator`, `fingerprint`, `counts`, `runs` (each run's
//! settings and tool versions) and `clips`, sorted by (youtube_id, time_start, time_end). Every clip has
//! its outcome (`done`, `failed` with its `category`, `pending`, or `broken` when the journal says done but
//! the file is gone or resized); a clip with several labels lists them all in `labels` (AVA-Kinetics' adds
//! its person `boxes`); done clips add `sha256`, `size_bytes`, `duration_s`, `source`,
//! `format_id` (the yt-dlp format, or the mirror tarball) and `run`.

pub mod build;
pub mod diff;

pub use build::{ClipOutcome, Entry, Manifest};

use std::path::PathBuf;

/// The manifest's file name inside OUT.
pub const DEFAULT_FILE: &str = "manifest.json";

/// `diff`'s exit code when the datasets differ (like diff(1)); 0 when they are identical.
pub const DIFFERENT: i32 = 1;

/// What `manifest` is asked for.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// The output folder of a download.
    pub out: PathBuf,
    /// Where to write the manifest [default: OUT/manifest.json].
    pub output: Option<PathBuf>,
}

/// What `diff` is asked for.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// A manifest file or an output folder.
    pub a: PathBuf,
    /// A manifest file or an output folder.
    pub b: PathBuf,
    /// Print a JSON object instead of a table.
    pub json: bool,
}

#[cfg(test)]
mod tests;
