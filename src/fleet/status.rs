//! What the fleet's database knows, for `status --db`: the same counts as a journal's status, plus the
//! fleet's own (leases, workers alive and dead, throttle domains, throughput and the time left).

use super::db::Db;
use serde::Serialize;
use std::collections::BTreeMap;

/// The fleet's status; the keys before `fleet` are those of `status --json` on an output folder.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FleetStatus {
    pub total: u64,
    pub done: u64,
    /// Clips no worker holds, waiting (some for a retry time).
    pub pending: u64,
    pub failed: BTreeMap<String, u64>,
    pub bytes_fetched: u64,
    pub bytes_on_disk: u64,
    /// Not recorded in the fleet: each worker's journal has it.
    pub whole_video_fallbacks: Option<u64>,
    pub by_source: BTreeMap<String, u64>,
    pub fleet: String,
    /// Clips a worker holds right now.
    pub leased: u64,
    pub workers: Vec<WorkerStatus>,
    pub domains: Vec<DomainStatus>,
    /// Clips done in the last 10 minutes, fleet-wide, per minute.
    pub clips_per_min: f64,
    /// Seconds until nothing is left at the last 10 minutes' pace; `None` when nothing was done lately.
    pub eta_s: Option<f64>,
    /// Clips per class, a clip with several labels (AudioSet, AVA-Kinetics) counted in each of them.
    pub classes: BTreeMap<String, ClassStatus>,
}

#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct ClassStatus {
    pub clips: u64,
    pub done: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub worker: String,
    pub host: String,
    pub pid: i32,
    pub region: String,
    pub domain: String,
    pub alive: bool,
    pub stop_reason: Option<String>,
    pub age_s: f64,
    pub heartbeat_age_s: f64,
    pub done: u64,
    pub leased: u64,
    /// Clips it made in the last 10 minutes, per minute.
    pub clips_per_min: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainStatus {
    pub domain: String,
    /// `closed`, `open` or `half_open` (one worker probing).
    pub breaker: String,
    /// Seconds until an open breaker may be probed.
    pub reopens_in_s: Option<f64>,
    pub cooloff_s: f64,
    pub prober: Option<String>,
    /// The domain's learned request rate now, for all its workers together (requests a minute; `None`
    /// before any ban): what its last ban left, grown since.
    pub learned_rate_per_min: Option<f64>,
}

const RECENT_MIN: f64 = 10.0;

/// A domain's learned rate `age_s` after a ban left it at `per_min`, as each of its workers grows it.
pub fn grown(per_min: Option<f64>, age_s: Option<f64>) -> Option<f64> {
    let minutes = age_s.unwrap_or(0.0).max(0.0) / 60.0;
    per_min.map(|r| r + r * crate::governor::rate::GROWTH_PER_MIN * minutes)
}

impl Db {
    pub async fn status(&self) -> anyhow::Result<FleetStatus> {
        let mut s = FleetStatus { fleet: self.fleet.clone(), ..FleetStatus::default() };
        for r in self.query("status_clips", &[&self.fleet]).await? {
            let (state, category, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
            let n = n.max(0) as u64;
            s.total += n;
            s.bytes_fetched += r.get::<_, i64>(3).max(0) as u64;
            match state.as_str() {
                "done" => {
                    s.done += n;
                    s.bytes_on_disk += r.get::<_, i64>(4).max(0) as u64;
                }
                "leased" => s.leased += n,
                "failed" => *s.failed.entry(category).or_default() += n,
                _ => s.pending += n,
            }
        }
        if s.done > 0 {
            s.by_source.insert("youtube".into(), s.done);
        }
        let count = |r: &tokio_postgres::Row, i: usize| r.get::<_, i64>(i).max(0) as u64;
        for r in self.query("status_workers", &[&self.fleet]).await? {
            let reason: String = r.get(8);
            s.workers.push(WorkerStatus {
                worker: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                region: r.get(3),
                domain: r.get(4),
                age_s: r.get(5),
                heartbeat_age_s: r.get(6),
                alive: r.get(7),
                stop_reason: (!reason.is_empty()).then_some(reason),
                done: count(&r, 9),
                leased: count(&r, 10),
                clips_per_min: count(&r, 11) as f64 / RECENT_MIN,
            });
        }
        for r in self.query("status_domains", &[&self.fleet]).await? {
            s.domains.push(DomainStatus {
                domain: r.get(0),
                breaker: r.get(1),
                reopens_in_s: r.get::<_, Option<f64>>(2).filter(|s| *s > 0.0),
                cooloff_s: r.get(3),
                prober: r.get(4),
                learned_rate_per_min: grown(r.get(5), r.get(6)),
            });
        }
        for r in self.query("status_classes", &[&self.fleet]).await? {
            let class = ClassStatus { clips: count(&r, 1), done: count(&r, 2), failed: count(&r, 3) };
            s.classes.insert(r.get(0), class);
        }
        s.clips_per_min = s.workers.iter().map(|w| w.clips_per_min).sum();
        let left = (s.pending + s.leased) as f64;
        s.eta_s = (s.clips_per_min > 0.0).then(|| left / s.clips_per_min * 60.0);
        Ok(s)
    }
}
