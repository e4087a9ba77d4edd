//! `kinetics-dl report`: the dataset's state as one self-contained page (`OUT/report.html`) or as JSON.
//!
//! The page answers the questions the seed's author answered by hand: how much is done per split, why
//! the rest failed, which classes are thin, where the time went (download vs encode), how many bytes were
//! fetched for what was kept, how fast clips arrived over time (with throttle events on the same axis),
//! and how long the remaining clips will take at that pace.

pub mod data;
mod effort;
pub mod fleet;
pub mod format;
pub mod html;
mod outcome;
pub mod stats;
pub mod svg;

pub use data::ReportData;

use std::path::{Path, PathBuf};

/// The page's file name inside OUT.
pub const FILE_NAME: &str = "report.html";

/// What `report` is asked for.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The output folder of a download (for a fleet: where its page goes).
    pub out: PathBuf,
    /// Print the report's numbers as JSON to stdout (the page is written too).
    pub json: bool,
    /// A fleet's database to draw instead of a folder's journal.
    pub fleet: Option<crate::fleet::FleetRef>,
}

/// The fleet page's file name inside `--out`.
pub const FLEET_FILE_NAME: &str = "fleet-report.html";

/// Renders the fleet's page into `dir` atomically and returns its path.
pub fn write_fleet_page(report: &fleet::FleetReport, dir: &Path) -> anyhow::Result<PathBuf> {
    write_atomically(&dir.join(FLEET_FILE_NAME), &fleet::render(report, now_ms()))
}

/// Renders the page into OUT atomically and returns its path.
pub fn write_page(data: &ReportData, out: &Path) -> anyhow::Result<PathBuf> {
    write_atomically(&out.join(FILE_NAME), &html::render(data, now_ms()))
}

/// Writes `page` to a temp file beside `path` and renames it into place.
fn write_atomically(path: &Path, page: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, page)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
