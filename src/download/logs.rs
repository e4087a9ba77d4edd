//! `stats.csv` and `failed.csv` in OUT, the seed's two logs, rewritten from the journal after each run.

use crate::journal::Journal;
use crate::outdir::write_atomic;
use std::path::Path;

pub const STATS: &str = "stats.csv";
pub const FAILED: &str = "failed.csv";

/// Rewrites both files atomically from the journal.
pub fn write(journal: &Journal, out: &Path) -> anyhow::Result<()> {
    let conn = journal.connection();
    let mut stats = csv::Writer::from_writer(Vec::new());
    stats.write_record([
        "youtube_id",
        "label",
        "split",
        "time_start",
        "time_end",
        "download_s",
        "ffmpeg_s",
        "bytes_fetched",
        "bytes",
        "duration_s",
        "whole_video",
        "format_id",
        "source",
        "path",
    ])?;
    let mut stmt = conn.prepare(
        "SELECT youtube_id, COALESCE(label, ''), COALESCE(split, ''), start_ms, end_ms, download_s, encode_s,
                bytes_fetched, size_bytes, duration_s, whole_video, COALESCE(format_id, ''), COALESCE(source, ''), rel_path
         FROM clips WHERE state = 'done' ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        stats.write_record([
            r.get::<_, String>(0)?,
            r.get(1)?,
            r.get(2)?,
            secs(r.get(3)?),
            secs(r.get(4)?),
            format!("{:.3}", r.get::<_, Option<f64>>(5)?.unwrap_or(0.0)),
            format!("{:.3}", r.get::<_, Option<f64>>(6)?.unwrap_or(0.0)),
            r.get::<_, Option<i64>>(7)?.unwrap_or(0).to_string(),
            r.get::<_, Option<i64>>(8)?.unwrap_or(0).to_string(),
            format!("{:.3}", r.get::<_, Option<f64>>(9)?.unwrap_or(0.0)),
            r.get::<_, i64>(10)?.to_string(),
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
        ])?;
    }
    write_atomic(&out.join(STATS), &stats.into_inner()?)?;

    let mut failed = csv::Writer::from_writer(Vec::new());
    failed.write_record([
        "youtube_id",
        "label",
        "split",
        "time_start",
        "time_end",
        "category",
        "attempts",
        "message",
    ])?;
    let mut stmt = conn.prepare(
        "SELECT youtube_id, COALESCE(label, ''), COALESCE(split, ''), start_ms, end_ms, COALESCE(category, 'other'),
                attempts, COALESCE(message, '')
         FROM clips WHERE state = 'failed' ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        failed.write_record([
            r.get::<_, String>(0)?,
            r.get(1)?,
            r.get(2)?,
            secs(r.get(3)?),
            secs(r.get(4)?),
            r.get(5)?,
            r.get::<_, i64>(6)?.to_string(),
            r.get(7)?,
        ])?;
    }
    write_atomic(&out.join(FAILED), &failed.into_inner()?)?;
    Ok(())
}

/// Milliseconds as the annotation files write seconds: `84` or `84.5`.
fn secs(ms: i64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{}", ms as f64 / 1000.0)
    }
}
