//! Table-driven tests of `read_all`: every file variant, every malformed case, the filters and the real
//! Kinetics-400 validate CSV.

mod filters;
mod malformed;
mod real;
mod variants;

use super::*;
use std::path::PathBuf;

/// (label, youtube_id, start, end, split, line)
pub(super) type Want<'a> = (Option<&'a str>, &'a str, f64, f64, Option<&'a str>, u64);

pub(super) fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub(super) fn read_one(bytes: &[u8], filters: &Filters) -> Result<Vec<Row>, InputError> {
    let dir = tempfile::tempdir().unwrap();
    read_all(&[write(&dir, "ann.txt", bytes)], filters)
}

pub(super) fn simplify(rows: &[Row]) -> Vec<Want<'_>> {
    rows.iter()
        .map(|r| (r.label.as_deref(), r.youtube_id.as_str(), r.time_start, r.time_end, r.split.as_deref(), r.line))
        .collect()
}

/// The current DeepMind header.
pub(super) const H: &str = "label,youtube_id,time_start,time_end,split\n";
