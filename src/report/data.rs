//! The numbers behind the report page (and `report --json`), computed from the journal's rows.

use super::stats::{self, Histogram, Spread};
use crate::journal::read::{AttemptRow, ClipRow, DashRefused, LearnedRate, OutageRow, Reader, RunRow, ThrottleEvent};
use crate::journal::{ClassCount, ClassCounts, State};
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

impl From<ClassCount> for Tally {
    fn from(c: ClassCount) -> Tally {
        Tally {
            total: c.total,
            done: c.done,
            failed: c.failed,
            pending: c.total - c.done - c.failed,
            missing: c.total - c.done,
        }
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

/// Per-class coverage. A clip with several labels (AudioSet, AVA-Kinetics) counts once in each of its classes,
/// so the rows' totals add up to more than the clips; the report's totals and splits count every clip once.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Classes {
    pub count: usize,
    /// Clips with more than one label, each counted in every one of its classes.
    pub multi_label_clips: u64,
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
    /// The request rate each egress learned from its bans (the next run starts from it).
    pub learned_rates: Vec<LearnedRate>,
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

/// Reads OUT's journal and computes the report, a clip and an attempt at a time (a Kinetics-700 journal's
/// rows, every column, would take more memory than the numbers drawn from them).
pub fn gather(out: &Path) -> anyhow::Result<ReportData> {
    let journal = Reader::open(out)?;
    let mut sums = Sums::default();
    let clips = journal.each_clip(|c| {
        sums.clip(&c);
        Ok(())
    });
    clips.context("failed to read the clips of the journal")?;
    let attempts = journal.each_attempt(|a| {
        sums.attempt(&a);
        Ok(())
    });
    attempts.context("failed to read the attempts of the journal")?;
    let read = || -> rusqlite::Result<_> {
        let (runs, events) = (journal.runs()?, journal.throttle_events()?);
        Ok((runs, events, journal.outages()?, journal.dash_refused()?, journal.learned_rates()?))
    };
    let (runs, events, outages, dash_refused, learned_rates) = read().context("failed to read the journal")?;
    let mut data = sums.finish(runs, events);
    data.throughput.outages = outages.unwrap_or_default();
    data.throughput.dash_refused = dash_refused;
    data.throughput.learned_rates = learned_rates;
    data.out = out.display().to_string();
    Ok(data)
}

/// Computes the report from rows (pure, for tests): what [`gather`] computes from the journal.
pub fn compute(
    clips: &[ClipRow],
    attempts: &[AttemptRow],
    runs: Vec<RunRow>,
    events: Option<Vec<ThrottleEvent>>,
) -> ReportData {
    let mut sums = Sums::default();
    for c in clips {
        sums.clip(c);
    }
    for a in attempts {
        sums.attempt(a);
    }
    sums.finish(runs, events)
}

/// What the report keeps of each clip and attempt, summed as they are read.
#[derive(Default)]
struct Sums {
    totals: Tally,
    splits: BTreeMap<String, Tally>,
    failures: BTreeMap<String, u64>,
    by_label: ClassCounts,
    /// Of the done clips, in plan order: download and encode seconds, CPU by stage.
    download_s: Vec<f64>,
    encode_s: Vec<f64>,
    cpu: Vec<crate::cpu::StageCpu>,
    phases: Phases,
    /// Download and encode seconds of the done clips that have both, for the phases' shares.
    phase_download_s: f64,
    phase_encode_s: f64,
    bytes: Bytes,
    done: u64,
    /// Done clips fetched through the relay (media requests recorded).
    through_relay: u64,
    /// (finished, outcome) of every attempt, for the throughput buckets.
    attempts: Vec<(i64, Outcome)>,
    /// The last attempt of each run, for the active time.
    last_attempt: std::collections::HashMap<i64, i64>,
    done_attempts: u64,
}

#[derive(Clone, Copy)]
enum Outcome {
    Done,
    Failed,
    Retried,
}

impl Sums {
    fn clip(&mut self, c: &ClipRow) {
        self.totals.add(c);
        let split = c.split_name();
        match self.splits.get_mut(&split) {
            Some(t) => t.add(c),
            None => self.splits.entry(split).or_default().add(c),
        }
        if c.state == "failed" {
            *self.failures.entry(c.category.clone().unwrap_or_else(|| "other".into())).or_default() += 1;
        }
        self.by_label.add(c.label.as_deref(), &c.extra_labels, State::parse(&c.state));
        let positive = |b: Option<i64>| b.unwrap_or(0).max(0) as u64;
        self.bytes.fetched += positive(c.bytes_fetched);
        if !c.is_done() {
            return;
        }
        self.done += 1;
        self.download_s.extend(c.download_s);
        self.encode_s.extend(c.encode_s);
        self.cpu.extend(c.stage_cpu());
        if let (Some(d), Some(e)) = (c.download_s, c.encode_s) {
            if d >= e {
                self.phases.download_dominated += 1;
            } else {
                self.phases.encode_dominated += 1;
            }
            self.phase_download_s += d;
            self.phase_encode_s += e;
        }
        self.bytes.fetched_for_done += positive(c.bytes_fetched);
        self.bytes.kept += positive(c.size_bytes);
        self.bytes.whole_video_fallbacks += u64::from(c.whole_video);
        self.bytes.media_requests_for_done += positive(c.media_requests);
        if c.media_requests.unwrap_or(0) > 0 {
            self.through_relay += 1;
        }
    }

    fn attempt(&mut self, a: &AttemptRow) {
        let outcome = match a.outcome.as_str() {
            "done" => Outcome::Done,
            "failed" => Outcome::Failed,
            _ => Outcome::Retried,
        };
        self.attempts.push((a.finished_ms, outcome));
        let last = self.last_attempt.entry(a.run_id).or_insert(a.finished_ms);
        *last = (*last).max(a.finished_ms);
        if matches!(outcome, Outcome::Done) {
            self.done_attempts += 1;
        }
    }

    fn finish(self, runs: Vec<RunRow>, events: Option<Vec<ThrottleEvent>>) -> ReportData {
        let timing =
            |v: &[f64]| Some(Timing { summary: stats::summarize(v)?, histogram: stats::histogram(v, HISTOGRAM_BINS)? });
        let mut phases = self.phases;
        let (d, e) = (self.phase_download_s, self.phase_encode_s);
        phases.download_share_of_time = if d + e > 0.0 { d / (d + e) } else { 0.0 };
        let mut bytes = self.bytes;
        bytes.average_clip = bytes.kept.checked_div(self.done).unwrap_or(0);
        bytes.media_requests_per_clip =
            if self.through_relay > 0 { bytes.media_requests_for_done as f64 / self.through_relay as f64 } else { 0.0 };
        ReportData {
            out: String::new(),
            splits: split_rows(self.splits),
            failures: failure_rows(self.failures, self.totals.total),
            classes: classes(self.by_label),
            download: timing(&self.download_s),
            encode: timing(&self.encode_s),
            cpu_per_clip: crate::cpu::PerClip::of(&self.cpu),
            phases,
            bytes,
            throughput: throughput(&self.attempts, events),
            projection: projection(&self.last_attempt, self.done_attempts, &runs, self.totals.pending),
            totals: self.totals,
            runs,
        }
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

/// The classes' rows, worst coverage first, and their summary (what `status` shows too).
pub fn classes(counts: ClassCounts) -> Classes {
    let mut rows: Vec<ClassRow> = (counts.by_label.into_iter())
        .map(|(label, count)| {
            let tally = Tally::from(count);
            ClassRow { label, coverage: tally.done_share(), tally }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.coverage.total_cmp(&b.coverage).then(a.tally.done.cmp(&b.tally.done)).then(a.label.cmp(&b.label))
    });
    let min_done = rows.iter().map(|r| r.tally.done).min().unwrap_or(0);
    let mut done_counts: Vec<f64> = rows.iter().map(|r| r.tally.done as f64).collect();
    done_counts.sort_by(f64::total_cmp);
    Classes {
        count: rows.len(),
        multi_label_clips: counts.multi_label_clips,
        min_done,
        min_done_classes: rows.iter().filter(|r| r.tally.done == min_done).map(|r| r.label.clone()).collect(),
        median_done: if rows.is_empty() { 0.0 } else { stats::quantile(&done_counts, 0.5) },
        rows,
    }
}

/// Attempts by the time they finished, in buckets spanning the attempts and the throttle events.
fn throughput(attempts: &[(i64, Outcome)], events: Option<Vec<ThrottleEvent>>) -> Throughput {
    let times = attempts.iter().map(|a| a.0).chain(events.iter().flatten().map(|e| e.at_ms));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return Throughput { bucket_ms: 0, buckets: Vec::new(), throttle_events: events, ..Default::default() };
    };
    let bucket_ms = stats::time_bucket_ms(last - first, THROUGHPUT_BUCKETS);
    let origin = first.div_euclid(bucket_ms) * bucket_ms;
    let n = ((last - origin) / bucket_ms + 1) as usize;
    let mut buckets: Vec<Bucket> =
        (0..n).map(|i| Bucket { start_ms: origin + i as i64 * bucket_ms, ..Bucket::default() }).collect();
    for &(finished_ms, outcome) in attempts {
        let b = &mut buckets[((finished_ms - origin) / bucket_ms) as usize];
        match outcome {
            Outcome::Done => b.done += 1,
            Outcome::Failed => b.failed += 1,
            Outcome::Retried => b.retried += 1,
        }
    }
    Throughput { bucket_ms, buckets, throttle_events: events, ..Default::default() }
}

/// The observed rate over the time runs were active, and what it means for the clips left.
fn projection(
    last_attempt: &std::collections::HashMap<i64, i64>,
    done_attempts: u64,
    runs: &[RunRow],
    remaining: u64,
) -> Projection {
    let mut active_ms = 0i64;
    for r in runs {
        // An unfinished run (crashed or still going) counts until its last recorded attempt.
        if let Some(end) = r.finished_ms.or(last_attempt.get(&r.id).copied()) {
            active_ms += (end - r.started_ms).max(0);
        }
    }
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
