//! `stats.csv` and `failed.csv` in OUT, the seed's two logs, rewritten from the journal after each run.

use crate::journal::Journal;
use crate::outdir::write_atomic;
use std::path::Path;

pub const STATS: &str = "stats.csv";
pub const FAILED: &str = "failed.csv";

/// Rewrites both files atomically from the journal.
pub fn write(journal: &Journal, out: &Path) -> anyhow::Result<()> {
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
        "media_requests",
        "extract_cpu_s",
        "fetch_cpu_s",
        "encode_cpu_s",
        "verify_cpu_s",
    ])?;
    for r in journal.stats_rows()? {
        // Empty where the clip's CPU was not measured (adopted, mirror, an older kinetics-dl).
        let cpu = r.cpu.map_or([(); 4].map(|()| String::new()), |c| c.as_array().map(|s| format!("{s:.3}")));
        let [extract, fetch, encode, verify] = cpu;
        stats.write_record([
            r.youtube_id,
            r.label,
            r.split,
            secs(r.start_ms),
            secs(r.end_ms),
            format!("{:.3}", r.download_s),
            format!("{:.3}", r.encode_s),
            r.bytes_fetched.to_string(),
            r.size_bytes.to_string(),
            format!("{:.3}", r.duration_s),
            r.whole_video.to_string(),
            r.format_id,
            r.source,
            r.rel_path,
            r.media_requests.to_string(),
            extract,
            fetch,
            encode,
            verify,
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
    for r in journal.failed_rows()? {
        failed.write_record([
            r.youtube_id,
            r.label,
            r.split,
            secs(r.start_ms),
            secs(r.end_ms),
            r.category,
            r.attempts.to_string(),
            r.message,
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
