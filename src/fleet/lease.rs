//! The fleet's statements as typed calls: workers, claims and leases, outcomes, throttle domains.

use super::db::{Db, Interval};
use crate::plan::{ClipKey, Job};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

/// A clip this worker now holds, with what it needs to work on it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub clip_key: String,
    pub token: i64,
    pub job: Job,
    /// Attempts charged so far, fleet-wide.
    pub attempts: u32,
}

/// What is left in the fleet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Left {
    pub pending: u64,
    pub leased: u64,
    /// Seconds until the earliest pending clip may be claimed (0: now).
    pub next_in_s: Option<f64>,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
}

/// A throttle domain's breaker as the database has it.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainState {
    pub breaker: String,
    /// Seconds until an open breaker may be probed.
    pub opens_in_s: Option<f64>,
    pub prober: Option<String>,
}

/// A throttle domain's learned request rate as the database has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainRate {
    /// Requests a minute for the whole domain, as its last ban left it (`None` before any ban).
    pub per_min: Option<f64>,
    /// Seconds since then.
    pub age_s: Option<f64>,
    /// The domain's live workers, who share it.
    pub live_workers: u64,
}

/// A finished clip's record in the fleet.
pub struct Completion<'a> {
    pub location: &'a str,
    pub bytes_fetched: u64,
    pub size_bytes: u64,
    pub sha256: &'a str,
}

impl Db {
    pub async fn register_worker(&self, worker: &str, host: &str, region: &str, domain: &str) -> anyhow::Result<()> {
        let pid = std::process::id() as i32;
        self.execute("worker_start", &[&worker, &self.fleet, &host, &pid, &region, &domain]).await?;
        Ok(())
    }

    pub async fn stop_worker(&self, worker: &str, reason: &str) -> anyhow::Result<()> {
        self.execute("worker_stop", &[&worker, &reason]).await?;
        Ok(())
    }

    /// Claims up to `n` clips (`FOR UPDATE SKIP LOCKED`: never one another worker holds).
    pub async fn claim(&self, worker: &str, n: u32, lease: Duration, region: &str) -> anyhow::Result<Vec<Claimed>> {
        let rows = self.query("claim", &[&self.fleet, &worker, &i64::from(n), &Interval(lease), &region]).await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let tokens: std::collections::HashMap<String, i64> =
            rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect();
        let keys: Vec<&String> = tokens.keys().collect();
        let details = self.query("claimed", &[&self.fleet, &keys]).await?;
        details
            .iter()
            .map(|r| {
                let clip_key: String = r.get(0);
                let (start, end): (f64, f64) = (r.get(2), r.get(3));
                let mut claimed = Claimed {
                    token: tokens[&clip_key],
                    clip_key,
                    job: Job {
                        key: ClipKey {
                            youtube_id: r.get(1),
                            start_ms: (start * 1000.0).round() as i64,
                            end_ms: (end * 1000.0).round() as i64,
                        },
                        label: r.get(5),
                        split: r.get(6),
                        rel_path: PathBuf::from(r.get::<_, String>(4)),
                        rows: 1,
                        ..Job::default()
                    },
                    attempts: r.get::<_, i16>(7).max(0) as u32,
                };
                let (labels, boxes): (Option<&str>, Option<&str>) = (r.get(9), r.get(10));
                claimed.job.set_multi_label_columns(labels, boxes).with_context(|| {
                    format!("the fleet's labels or boxes of clip {} are not the JSON lists expected", claimed.clip_key)
                })?;
                Ok(claimed)
            })
            .collect()
    }

    /// The heartbeat: this worker is alive, its leases last another `lease`, and expired leases of any worker
    /// go back to the pool. Returns the (clip, token) pairs still held: a held clip missing is a lost lease.
    pub async fn heartbeat(&self, worker: &str, lease: Duration) -> anyhow::Result<Vec<(String, i64)>> {
        self.execute("worker_beat", &[&worker]).await?;
        let held = self.query("heartbeat", &[&self.fleet, &worker, &Interval(lease)]).await?;
        let rescued = self.query("rescue", &[&self.fleet]).await?;
        for r in &rescued {
            tracing::info!(clip = r.get::<_, String>(0), state = r.get::<_, String>(1), "an expired lease came back");
        }
        Ok(held.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records a done clip, fenced by the lease's token: `false` means the lease was lost and another worker
    /// may have made the clip too (the fleet's record keeps the first).
    pub async fn complete(&self, key: &str, token: i64, worker: &str, c: &Completion<'_>) -> anyhow::Result<bool> {
        let size = c.size_bytes as i64;
        let n = self.execute("complete", &[&self.fleet, &key, &token, &worker, &c.location, &size, &c.sha256]).await?;
        if n == 1 {
            let bytes = c.bytes_fetched as i64;
            self.execute("done_bytes", &[&self.fleet, &key, &worker, &bytes]).await?;
        }
        Ok(n == 1)
    }

    /// Returns a clip uncharged (a throttle signal, or this worker stopping).
    pub async fn give_back(&self, key: &str, token: i64) -> anyhow::Result<bool> {
        Ok(self.execute("give_back", &[&self.fleet, &key, &token]).await? == 1)
    }

    /// A clip-attributable failure: one attempt charged; pending again after `retry_after`, or failed.
    pub async fn fail(
        &self,
        key: &str,
        token: i64,
        retry_after: Option<Duration>,
        category: &str,
        message: &str,
        bytes_fetched: u64,
    ) -> anyhow::Result<bool> {
        let state = if retry_after.is_some() { "pending" } else { "failed" };
        let after = retry_after.unwrap_or_default().as_secs_f64();
        let bytes = bytes_fetched as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
            [&self.fleet, &key, &token, &state, &category, &message, &after, &bytes];
        Ok(self.execute("failure", &params).await? == 1)
    }

    /// Geo-blocked from `region`: the clip goes to other regions' workers; returns its new state.
    pub async fn geo_block(
        &self,
        key: &str,
        token: i64,
        region: &str,
        message: &str,
    ) -> anyhow::Result<Option<String>> {
        let rows = self.query("geo_block", &[&self.fleet, &key, &token, &region, &message]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// Gives back one lease, uncharged: `false` when it was no longer held with that token.
    pub async fn release(&self, key: &str, token: i64) -> anyhow::Result<bool> {
        Ok(!self.query("release", &[&self.fleet, &key, &token]).await?.is_empty())
    }

    /// Gives back every lease `worker` holds, uncharged.
    pub async fn release_all(&self, worker: &str) -> anyhow::Result<u64> {
        Ok(self.query("release_all", &[&self.fleet, &worker]).await?.len() as u64)
    }

    pub async fn left(&self) -> anyhow::Result<Left> {
        let row = self.query("left", &[&self.fleet]).await?.into_iter().next();
        let row = row.ok_or_else(|| anyhow::anyhow!("the fleet's count returned nothing"))?;
        let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        Ok(Left {
            pending: count(0),
            leased: count(1),
            next_in_s: row.get(2),
            total: count(3),
            done: count(4),
            failed: count(5),
        })
    }

    /// Creates the domain's row unless a worker of the domain already has.
    pub async fn add_domain(&self, domain: &str, cooloff: Duration, max: Duration) -> anyhow::Result<()> {
        self.execute("domain_add", &[&self.fleet, &domain, &Interval(cooloff), &Interval(max)]).await?;
        Ok(())
    }

    pub async fn domain_state(&self, domain: &str) -> anyhow::Result<Option<DomainState>> {
        let rows = self.query("domain_state", &[&self.fleet, &domain]).await?;
        Ok(rows.first().map(|r| DomainState { breaker: r.get(0), opens_in_s: r.get(1), prober: r.get(2) }))
    }

    /// Opens the domain's breaker (idempotent: `false` when it was open already).
    pub async fn open_domain(&self, domain: &str) -> anyhow::Result<bool> {
        Ok(!self.query("breaker_open", &[&self.fleet, &domain]).await?.is_empty())
    }

    /// Tries to become the domain's one prober; a prober silent for `stale` is taken to be dead.
    pub async fn elect_prober(&self, domain: &str, worker: &str, stale: Duration) -> anyhow::Result<bool> {
        Ok(!self.query("probe", &[&self.fleet, &domain, &worker, &Interval(stale)]).await?.is_empty())
    }

    /// Reserves the domain's next start slot, `every` after the last one; returns the seconds to wait for it.
    pub async fn reserve_slot(&self, domain: &str, every: Duration) -> anyhow::Result<f64> {
        let rows = self.query("pace", &[&self.fleet, &domain, &every.as_secs_f64()]).await?;
        Ok(rows.first().map_or(0.0, |r| r.get::<_, f64>(0)))
    }

    /// The domain's learned rate and its live workers; `None` when the domain has no row.
    pub async fn domain_rate(&self, domain: &str) -> anyhow::Result<Option<DomainRate>> {
        let rows = self.query("domain_rate", &[&self.fleet, &domain]).await?;
        Ok(rows.first().map(|r| DomainRate {
            per_min: r.get(0),
            age_s: r.get(1),
            live_workers: r.get::<_, i64>(2).max(0) as u64,
        }))
    }

    /// A ban taught a worker `per_min` for the whole domain: the domain's rate drops to it unless it is
    /// lower already (as grown at `growth_per_min` since it was set). `true` when it dropped.
    pub async fn cut_domain_rate(&self, domain: &str, per_min: f64, growth_per_min: f64) -> anyhow::Result<bool> {
        Ok(!self.query("domain_rate_cut", &[&self.fleet, &domain, &per_min, &growth_per_min]).await?.is_empty())
    }

    /// The probe succeeded: the prober closes the breaker.
    pub async fn close_domain(&self, domain: &str, worker: &str) -> anyhow::Result<bool> {
        Ok(!self.query("breaker_close", &[&self.fleet, &domain, &worker]).await?.is_empty())
    }
}
