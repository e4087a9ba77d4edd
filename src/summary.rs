//! The end-of-run summary: what was done, what failed and why, bytes and time.

use crate::cpu::{PerClip, StageCpu, Usage};
use crate::exit_codes;
use crate::journal::Done;
use crate::units::human_bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Annotation rows read (after filters) and clips planned from them.
    pub rows: u64,
    pub planned: u64,
    pub duplicates_merged: u64,
    /// Done before this run started.
    pub already_done: u64,
    /// Failed permanently before this run and not retried.
    pub already_failed: u64,
    /// Found on disk after a crash and adopted once verified.
    pub adopted: u64,
    /// Done in this run.
    pub done: u64,
    /// Failed clips of the plan by category (earlier runs' permanent failures included).
    pub failed: BTreeMap<String, u64>,
    /// Failed clips whose category is worth a rerun.
    pub retryable_failed: u64,
    /// Clips of the plan still pending at the end.
    pub pending: u64,
    pub bytes_fetched: u64,
    pub bytes_kept: u64,
    pub download_s: f64,
    pub encode_s: f64,
    pub whole_video_fallbacks: u64,
    /// Requests the relay sent to the media server for this run's done clips.
    pub media_requests: u64,
    /// Each of this run's done clips' CPU by stage; serialized as its summary, `cpu_per_clip`.
    #[serde(rename = "cpu_per_clip", serialize_with = "per_clip")]
    pub clip_cpu: Vec<StageCpu>,
    /// CPU of the whole run: kinetics-dl's own threads (the relay, the scheduler, the journal) and its
    /// reaped children, whatever clip they worked for (failed attempts and tool checks included).
    pub process_cpu: Usage,
    /// Clips taken from the CVDF mirror in this run, and what the mirror phase saw.
    pub from_mirror: u64,
    pub mirror_bad: u64,
    pub mirror_missing: u64,
    pub mirror_tarballs: u64,
    pub mirror_bytes: u64,
    /// Clips in the mirror's tarballs that no annotation row asked for.
    pub mirror_unmatched: u64,
    pub throttle_events: u64,
    /// Clips given back because their egress reached nothing (`egress_down`): outages, never failures.
    pub outage_events: u64,
    /// Outages begun in this run: an egress's breaker opened because it reached nothing.
    pub outages: u64,
    /// Time egresses spent down in outages that ended in this run, added up (not in `cooling`).
    #[serde(serialize_with = "secs")]
    pub down_time: Duration,
    /// Requests sent through an egress after its ban had begun.
    pub wasted_requests: u64,
    /// Time egresses spent cooling off bans, added up.
    #[serde(serialize_with = "secs")]
    pub cooling: Duration,
    /// When every egress was cooling for longer than `--max-wait`: when a rerun will find one open.
    pub resume_after: Option<String>,
    /// The run ended on `--max-wait` with every egress down (an outage), not throttled.
    pub network_down: bool,
    /// The broken-environment message that stopped the run.
    pub environment: Option<String>,
    pub interrupted: bool,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    pub exit_code: i32,
}

fn per_clip<S: serde::Serializer>(clips: &[StageCpu], s: S) -> Result<S::Ok, S::Error> {
    PerClip::of(clips).serialize(s)
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Summary {
    pub fn add_done(&mut self, d: &Done) {
        self.done += 1;
        self.bytes_fetched += d.bytes_fetched;
        self.media_requests += d.media_requests;
        self.bytes_kept += d.size_bytes;
        self.download_s += d.download_s;
        self.encode_s += d.encode_s;
        self.whole_video_fallbacks += u64::from(d.whole_video);
        self.clip_cpu.extend(d.cpu);
    }

    /// CPU per clip by stage over this run's done clips that measured it.
    pub fn cpu_per_clip(&self) -> PerClip {
        PerClip::of(&self.clip_cpu)
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn decide_exit_code(&self) -> i32 {
        if self.environment.is_some() {
            exit_codes::USAGE
        } else if self.interrupted {
            exit_codes::INTERRUPTED
        } else if self.pending > 0 || self.retryable_failed > 0 || self.resume_after.is_some() {
            exit_codes::INCOMPLETE
        } else {
            exit_codes::SUCCESS
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all_done = self.already_done + self.adopted + self.done;
        writeln!(
            f,
            "{} clips planned from {} rows ({} duplicate rows merged)",
            self.planned, self.rows, self.duplicates_merged
        )?;
        writeln!(
            f,
            "  done      {:>8}  ({} this run, {} already done, {} adopted from disk)",
            all_done, self.done, self.already_done, self.adopted
        )?;
        writeln!(f, "  failed    {:>8}", self.failed_total())?;
        let mut by_count: Vec<_> = self.failed.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (category, n) in by_count {
            writeln!(f, "    {category:<20} {n:>6}")?;
        }
        writeln!(f, "  pending   {:>8}", self.pending)?;
        writeln!(
            f,
            "  fetched {} for {} of clips kept ({}), {} whole-video fallbacks",
            human_bytes(self.bytes_fetched),
            human_bytes(self.bytes_kept),
            self.bytes_kept.checked_div(self.done).map_or("-".into(), |b| format!("{} a clip", human_bytes(b))),
            self.whole_video_fallbacks
        )?;
        if self.media_requests > 0 {
            writeln!(
                f,
                "  media requests {} ({:.1} a clip fetched through the relay)",
                self.media_requests,
                self.media_requests as f64 / (self.done - self.whole_video_fallbacks).max(1) as f64
            )?;
        }
        let minutes = self.elapsed.as_secs_f64() / 60.0;
        writeln!(
            f,
            "  took {} ({:.1} clips/min); download {:.0} s, encode {:.0} s in total",
            crate::retry::format_duration(self.elapsed),
            if minutes > 0.0 { self.done as f64 / minutes } else { 0.0 },
            self.download_s,
            self.encode_s
        )?;
        for line in self.cpu_per_clip().lines("  ") {
            writeln!(f, "{line}")?;
        }
        if self.process_cpu.self_s + self.process_cpu.children_s > 0.0 {
            writeln!(
                f,
                "  CPU of the whole run {:.1} s: kinetics-dl {:.1} s, yt-dlp/ffmpeg {:.1} s",
                self.process_cpu.self_s + self.process_cpu.children_s,
                self.process_cpu.self_s,
                self.process_cpu.children_s
            )?;
        }
        if self.mirror_tarballs > 0 || self.from_mirror > 0 {
            writeln!(
                f,
                "  mirror: {} clips from {} tarballs ({}), {} broken, {} rows without a clip, {} clips without a row",
                self.from_mirror,
                self.mirror_tarballs,
                human_bytes(self.mirror_bytes),
                self.mirror_bad,
                self.mirror_missing,
                self.mirror_unmatched
            )?;
        }
        if self.throttle_events > 0 {
            writeln!(
                f,
                "  throttled {} times; {} requests sent into bans; egresses cooled for {}",
                self.throttle_events,
                self.wasted_requests,
                crate::retry::format_duration(self.cooling)
            )?;
        }
        if self.outages > 0 {
            writeln!(
                f,
                "  egress down {} {}, {} in all (reached nothing); {} clips given back, uncharged",
                self.outages,
                if self.outages == 1 { "time" } else { "times" },
                crate::retry::format_duration(self.down_time),
                self.outage_events
            )?;
        } else if self.outage_events > 0 {
            writeln!(f, "  {} clips given back, uncharged, when their egress reached nothing", self.outage_events)?;
        }
        if let Some(at) = &self.resume_after {
            if self.network_down {
                writeln!(f, "the network is down (no egress reaches the source) past --max-wait: rerun after {at}")?;
            } else {
                writeln!(f, "every egress is cooling down past --max-wait: rerun after {at}")?;
            }
        }
        match self.exit_code {
            exit_codes::INCOMPLETE => writeln!(f, "some clips remain: rerun the same command to resume")?,
            exit_codes::INTERRUPTED => writeln!(f, "interrupted: rerun the same command to resume")?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_follows_what_remains() {
        let mut s = Summary::default();
        assert_eq!(s.decide_exit_code(), exit_codes::SUCCESS);
        s.failed.insert("unavailable".into(), 3);
        assert_eq!(s.decide_exit_code(), exit_codes::SUCCESS);
        s.retryable_failed = 1;
        assert_eq!(s.decide_exit_code(), exit_codes::INCOMPLETE);
        s.interrupted = true;
        assert_eq!(s.decide_exit_code(), exit_codes::INTERRUPTED);
        s.environment = Some("yt-dlp missing".into());
        assert_eq!(s.decide_exit_code(), exit_codes::USAGE);
    }
}
