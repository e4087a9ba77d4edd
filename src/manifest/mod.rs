//! `kinetics-dl manifest` and `kinetics-dl diff`: a reproducible record of what a dataset holds, and the
//! comparison of two of them.
//!
//! The manifest is one JSON document (default `OUT/manifest.json`) with one clip a line:
//! `kinetics_dl_manifest` (format version), `generator`, `fingerprint`, `counts`, `runs` (each run's
//! settings and tool versions) and `clips`, sorted by (youtube_id, time_start, time_end). Every clip has
//! its outcome (`done`, `failed` with its `category`, `pending`, or `broken` when the journal says done but
//! the file is gone or resized); done clips add `sha256`, `size_bytes`, `duration_s`, `source`,
//! `format_id` (the yt-dlp format, or the mirror tarball) and `run`.

pub mod build;
pub mod diff;

pub use build::{ClipOutcome, Entry, Manifest};

use crate::exit_codes;
use std::io::Write;
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

/// Writes OUT's manifest. Returns the exit code: 0, or 2 when OUT has no journal.
pub fn run(args: &ManifestOptions) -> anyhow::Result<i32> {
    let manifest = match build::build(&args.out) {
        Ok(m) => m,
        Err(e) if matches!(e.downcast_ref(), Some(crate::journal::read::OpenError::NoJournal(_))) => {
            eprintln!("error: {e:#}");
            return Ok(exit_codes::USAGE);
        }
        Err(e) => return Err(e),
    };
    let dest = args.output.clone().unwrap_or_else(|| args.out.join(DEFAULT_FILE));
    build::write(&manifest, &dest)?;
    let c = &manifest.counts;
    eprintln!(
        "wrote {}: {} clips ({} done, {} failed, {} pending), fingerprint {}",
        dest.display(),
        c.total,
        c.done,
        c.failed,
        c.pending,
        manifest.fingerprint
    );
    if c.broken > 0 {
        eprintln!(
            "warning: {} clips are marked done but their files are missing or resized; run `kinetics-dl verify --out {}`",
            c.broken,
            args.out.display()
        );
    }
    Ok(exit_codes::SUCCESS)
}

/// Compares two datasets. Returns 0 when they hold the same clips with the same bytes, [`DIFFERENT`]
/// otherwise, 2 when a side cannot be read.
pub fn run_diff(args: &DiffOptions) -> anyhow::Result<i32> {
    let load = |p: &PathBuf| diff::load_side(p).inspect_err(|e| eprintln!("error: {e:#}")).ok();
    let (Some(a), Some(b)) = (load(&args.a), load(&args.b)) else {
        return Ok(exit_codes::USAGE);
    };
    let d = diff::diff(&a, &args.a.display().to_string(), &b, &args.b.display().to_string());
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&d)?)?;
    } else {
        write!(out, "{}", diff::render(&d))?;
    }
    Ok(if d.identical { exit_codes::SUCCESS } else { DIFFERENT })
}

#[cfg(test)]
mod tests;
