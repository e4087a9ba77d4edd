//! The numbers behind the report page (and `report --json`), computed from the journal's rows.

use super::stats::{self, Histogram, Spread};
use crate::journal::read::{AttemptRow, ClipRow, DashRefused, OutageRow, Reader, RunRow, ThrottleEvent};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Throughput is drawn in about this many time buckets.
const THROUGHPUT_BUCKETS: usize = 48;
const HISTOGRAM_BINS: usize = 24;

#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub out: String,
    pub totals: Tally,
    pub splits: Vec<SplitTally>,
    pub failures: Vec<FailureRow>,
    pub classes: Classes,
    pub download: Option<Timing>,
    pub encode: Option<Timing>,
    /// CPU seconds per done clip by stage, over the clips that measured it (journal version 5 on).
    pub cpu_per_clip: crate::cpu::PerClip,
    pub phases: Phases,
    pub bytes: Bytes,
    pub throughput: Throughput,
    pub projection: Projection,
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    /// Not done: failed or pending.
    pub missing: u64,
}

impl Tally {
    fn add(&mut self, c: &ClipRow) {
        self.total += 1;
        match c.state.as_str() {
            "done" => self.done += 1,
            "failed" => self.failed += 1,
            _ => self.pending += 1,
        }
        self.missing = self.total - self.done;
    }

    pub fn done_share(&self) -> f64 {
        share(self.done, self.total)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitTally {
    pub split: String,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRow {
    pub category: String,
    pub count: u64,
    /// Of the failed clips.
    pub share_of_failed: f64,
    /// Of all clips.
    pub share_of_total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassRow {
    pub label: String,
    #[serde(flatten)]
    pub tally: Tally,
    pub coverage: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Classes {
    pub count: usize,
    /// The fewest done clips any class has, and the classes that have that few.
    pub min_done: u64,
    pub min_done_classes: Vec<String>,
    pub median_done: f64,
    /// Worst coverage first.
    pub rows: Vec<ClassRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub summary: Spread,
    pub histogram: Histogram,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Done clips whose download took at least as long as their encode.
    pub download_dominated: u64,
    pub encode_dominated: u64,
    pub download_share_of_time: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bytes {
    /// Fetched for every clip, failed attempts included.
    pub fetched: u64,
    /// Fetched for the clips that are done.
    pub fetched_for_done: u64,
    /// The done clips' sizes: the disk the dataset uses.
    pub kept: u64,
    pub average_clip: u64,
    pub whole_video_fallbacks: u64,
    /// Requests the relay sent to the media server for the done clips (yt-dlp's own not counted).
    pub media_requests_for_done: u64,
    /// Those requests per done clip fetched through the relay (whole videos and mirror clips make none).
    pub media_requests_per_clip: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub start_ms: i64,
    pub done: u64,
    pub failed: u64,
    pub retried: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Throughput {
    pub bucket_ms: i64,
    pub buckets: Vec<Bucket>,
    /// `None` when the journal predates throttle events.
    pub throttle_events: Option<Vec<ThrottleEvent>>,
    /// Egresses that reached nothing, from their breaker opening to the probe that got through.
    pub outages: Vec<OutageRow>,
    /// Egresses refused DASH formats past their first bytes: their clips start from itag 18.
    pub dash_refused: Vec<DashRefused>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Projection {
    /// Clips still pending.
    pub remaining: u64,
    /// Seconds runs were active (gaps between runs do not count).
    pub active_s: f64,
    pub done_attempts: u64,
    pub clips_per_hour: Option<f64>,
    /// Seconds to finish the remaining clips at the observed rate.
    pub eta_s: Option<f64>,
}

/// Reads OUT's journal and computes the report.
pub fn gather(out: &Path) -> anyhow::Result<ReportData> {
    let journal = Reader::open(out)?;
    let read = || -> rusqlite::Result<_> {
        let events = journal.throttle_events()?;
        Ok((
            journal.clips()?,
            journal.attempts()?,
            journal.runs()?,
            events,
            journal.outages()?,
            journal.dash_refused()?,
        ))
    };
    let (clips, attempts, runs, events, outages, dash_refused) = read().context("failed to read the journal")?;
    let mut data = compute(&clips, &attempts, runs, events);
    data.throughput.outages = outages.unwrap_or_default();
    data.throughput.dash_refused = dash_refused;
    data.out = out.display().to_string();
    Ok(data)
}

/// Computes the report from rows (pure, for tests).
pub fn compute(
    clips: &[ClipRow],
    attempts: &[AttemptRow],
    runs: Vec<RunRow>,
    events: Option<Vec<ThrottleEvent>>,
) -> ReportData {
    let mut totals = Tally::default();
    let mut splits: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for c in clips {
        totals.add(c);
        splits.entry(c.split_name()).or_default().add(c);
        if c.state == "failed" {
            *failures.entry(c.category.clone().unwrap_or_else(|| "other".into())).or_default() += 1;
        }
    }
    let done: Vec<&ClipRow> = clips.iter().filter(|c| c.is_done()).collect();
    let timing = |f: fn(&ClipRow) -> Option<f64>| {
        let v: Vec<f64> = done.iter().filter_map(|c| f(c)).collect();
        Some(Timing { summary: stats::summarize(&v)?, histogram: stats::histogram(&v, HISTOGRAM_BINS)? })
    };
    ReportData {
        out: String::new(),
        splits: split_rows(splits),
        failures: failure_rows(failures, totals.total),
        classes: classes(clips),
        download: timing(|c| c.download_s),
        encode: timing(|c| c.encode_s),
        cpu_per_clip: crate::cpu::PerClip::of(&done.iter().filter_map(|c| c.stage_cpu()).collect::<Vec<_>>()),
        phases: phases(&done),
        bytes: bytes(clips, &done),
        throughput: throughput(attempts, events),
        projection: projection(attempts, &runs, totals.pending),
        totals,
        runs,
    }
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// Kinetics' splits in their usual order, then any others by name.
fn split_rows(splits: BTreeMap<String, Tally>) -> Vec<SplitTally> {
    let rank = |s: &str| ["train", "validate", "val", "test"].iter().position(|k| *k == s).unwrap_or(4);
    let mut rows: Vec<SplitTally> = splits.into_iter().map(|(split, tally)| SplitTally { split, tally }).collect();
    rows.sort_by(|a, b| rank(&a.split).cmp(&rank(&b.split)).then(a.split.cmp(&b.split)));
    rows
}

fn failure_rows(failures: BTreeMap<String, u64>, total: u64) -> Vec<FailureRow> {
    let failed: u64 = failures.values().sum();
    let mut rows: Vec<FailureRow> = failures
        .into_iter()
        .map(|(category, count)| FailureRow {
            category,
            count,
            share_of_failed: share(count, failed),
            share_of_total: share(count, total),
        })
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.category.cmp(&b.category)));
    rows
}

fn classes(clips: &[ClipRow]) -> Classes {
    let mut by_label: BTreeMap<&str, Tally> = BTreeMap::new();
    for c in clips {
        if let Some(label) = c.label.as_deref().filter(|l| !l.is_empty()) {
            by_label.entry(label).or_default().add(c);
        }
    }
    let mut rows: Vec<ClassRow> = by_label
        .into_iter()
        .map(|(label, tally)| ClassRow { label: label.into(), coverage: tally.done_share(), tally })
        .collect();
    rows.sort_by(|a, b| {
        a.coverage.total_cmp(&b.coverage).then(a.tally.done.cmp(&b.tally.done)).then(a.label.cmp(&b.label))
    });
    let min_done = rows.iter().map(|r| r.tally.done).min().unwrap_or(0);
    let mut done_counts: Vec<f64> = rows.iter().map(|r| r.tally.done as f64).collect();
    done_counts.sort_by(f64::total_cmp);
    Classes {
        count: rows.len(),
        min_done,
        min_done_classes: rows.iter().filter(|r| r.tally.done == min_done).map(|r| r.label.clone()).collect(),
        median_done: if rows.is_empty() { 0.0 } else { stats::quantile(&done_counts, 0.5) },
        rows,
    }
}

fn phases(done: &[&ClipRow]) -> Phases {
    let mut p = Phases::default();
    let (mut download, mut encode) = (0.0, 0.0);
    for c in done {
        let (Some(d), Some(e)) = (c.download_s, c.encode_s) else {
            continue;
        };
        if d >= e {
            p.download_dominated += 1;
        } else {
            p.encode_dominated += 1;
        }
        download += d;
        encode += e;
    }
    p.download_share_of_time = if download + encode > 0.0 { download / (download + encode) } else { 0.0 };
    p
}

fn bytes(clips: &[ClipRow], done: &[&ClipRow]) -> Bytes {
    let sum = |it: &mut dyn Iterator<Item = Option<i64>>| it.map(|b| b.unwrap_or(0).max(0) as u64).sum::<u64>();
    let kept = sum(&mut done.iter().map(|c| c.size_bytes));
    Bytes {
        fetched: sum(&mut clips.iter().map(|c| c.bytes_fetched)),
        fetched_for_done: sum(&mut done.iter().map(|c| c.bytes_fetched)),
        kept,
        average_clip: if done.is_empty() { 0 } else { kept / done.len() as u64 },
        whole_video_fallbacks: done.iter().filter(|c| c.whole_video).count() as u64,
        media_requests_for_done: sum(&mut done.iter().map(|c| c.media_requests)),
        media_requests_per_clip: {
            let through_relay = done.iter().filter(|c| c.media_requests.unwrap_or(0) > 0).count();
            let requests = sum(&mut done.iter().map(|c| c.media_requests));
            if through_relay > 0 {
                requests as f64 / through_relay as f64
            } else {
                0.0
            }
        },
    }
}

/// Attempts by the time they finished, in buckets spanning the attempts and the throttle events.
fn throughput(attempts: &[AttemptRow], events: Option<Vec<ThrottleEvent>>) -> Throughput {
    let times = attempts.iter().map(|a| a.finished_ms).chain(events.iter().flatten().map(|e| e.at_ms));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return Throughput { bucket_ms: 0, buckets: Vec::new(), throttle_events: events, ..Default::default() };
    };
    let bucket_ms = stats::time_bucket_ms(last - first, THROUGHPUT_BUCKETS);
    let origin = first.div_euclid(bucket_ms) * bucket_ms;
    let n = ((last - origin) / bucket_ms + 1) as usize;
    let mut buckets: Vec<Bucket> =
        (0..n).map(|i| Bucket { start_ms: origin + i as i64 * bucket_ms, ..Bucket::default() }).collect();
    for a in attempts {
        let b = &mut buckets[((a.finished_ms - origin) / bucket_ms) as usize];
        match a.outcome.as_str() {
            "done" => b.done += 1,
            "failed" => b.failed += 1,
            _ => b.retried += 1,
        }
    }
    Throughput { bucket_ms, buckets, throttle_events: events, ..Default::default() }
}

/// The observed rate over the time runs were active, and what it means for the clips left.
fn projection(attempts: &[AttemptRow], runs: &[RunRow], remaining: u64) -> Projection {
    let mut active_ms = 0i64;
    for r in runs {
        let last_attempt = attempts.iter().filter(|a| a.run_id == r.id).map(|a| a.finished_ms).max();
        // An unfinished run (crashed or still going) counts until its last recorded attempt.
        if let Some(end) = r.finished_ms.or(last_attempt) {
            active_ms += (end - r.started_ms).max(0);
        }
    }
    let done_attempts = attempts.iter().filter(|a| a.outcome == "done").count() as u64;
    let active_s = active_ms as f64 / 1000.0;
    let per_s = (active_s > 0.0 && done_attempts > 0).then(|| done_attempts as f64 / active_s);
    Projection {
        remaining,
        active_s,
        done_attempts,
        clips_per_hour: per_s.map(|r| r * 3600.0),
        eta_s: per_s.map(|r| remaining as f64 / r),
    }
}
