//! The store seam: what the run loop (`scheduler.rs`) asks of the place that knows every clip's state. One
//! machine keeps it in the SQLite journal (`local.rs`), a fleet worker in the fleet's PostgreSQL database
//! (`fleet/`); the loop does not know which. Both keep the run's own record on this machine (attempts,
//! throttle signals, outages) in the local journal, which the loop writes through [`Store::journal`].
//!
//! The breakers and the pacer reach beyond the process through the same seam: the loop's governor paces and
//! guards this process's egresses, and the store adds what it shares with others (a fleet's throttle domain:
//! one breaker and one pace for every worker behind the same address) or keeps for the next run (the journal's
//! breakers).

use super::clip::Task;
use crate::governor::{Governor, Policy};
use crate::journal::{Done, Journal};
use crate::progress::Reporter;
use crate::summary::Summary;
use std::time::{Duration, Instant};

/// A clip taken from the store, as it runs and comes back.
#[derive(Debug, Clone)]
pub struct Work<C> {
    pub task: Task,
    /// The video id, for the reporter.
    pub id: String,
    /// Attempts on record, this one not counted.
    pub attempts: u32,
    /// Attempts the retry rules count for this clip (this run's on one machine, the fleet's in a fleet).
    pub tries: u32,
    /// Egresses (lane indices) through which the video was geo-blocked: it goes through the others.
    pub blocked_on: Vec<usize>,
    /// What the store keeps of the clip while it runs (a fleet lease).
    pub claim: C,
}

impl<C> Work<C> {
    pub fn allows(&self, lane: usize) -> bool {
        !self.blocked_on.contains(&lane)
    }
}

/// What the store answers when the loop asks for a clip to run through an egress.
pub enum Take<C> {
    /// Run this one; `alone`: nothing more starts until it ends (the probe of a shared breaker).
    Work { work: Work<C>, alone: bool },
    /// Finished from a copy already in place, nothing to run: ask again.
    Settled,
    /// Nothing to start now; ask again at that time (or when something changes).
    Wait(Option<Instant>),
    /// Nothing to take at the moment.
    Dry,
}

/// How an attempt left its egress, for a breaker the store shares with other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The egress served (a clip made, or a failure of the clip itself).
    Served,
    /// A throttle signal.
    Throttled,
}

/// Where a finished attempt leaves its clip: the loop has judged it and written the local record; the store
/// carries out its part.
#[derive(Debug)]
pub enum Settled {
    /// Made, verified and in place (in the local journal already).
    Done(Done),
    /// Stopped before it ended (Ctrl-C, a halt): pending, nothing charged.
    Cancelled,
    /// A signal about the egress, not the clip: pending, nothing charged, first in line.
    GiveBack,
    /// Blocked where `lane` is: the clip goes through other egresses (or regions) first.
    Reroute { lane: usize, message: String },
    /// The machine is broken: pending, nothing charged; the run stops.
    Halt,
    /// A passing failure, charged: the clip comes back no sooner than `after`.
    Retry { after: Duration, failure: Charged },
    /// Failed for good in this run, charged.
    Fail { failure: Charged },
}

/// A charged failure as the store records it.
#[derive(Debug)]
pub struct Charged {
    pub category: crate::classify::Category,
    pub message: String,
    pub bytes_fetched: u64,
}

/// Whether anything is left once nothing runs and nothing could be taken.
pub enum Drained {
    /// Nothing pending or running anywhere: the run is over.
    Yes,
    /// Work remains (retries due later, others' leases); look again at that time.
    No(Option<Instant>),
}

/// The place that knows every clip's state, as the run loop sees it.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// What the store keeps of a clip while it runs.
    type Claim: Send + 'static;

    /// What a broken machine's note says after the error.
    const HALT_NOTE: &'static str;

    /// The clip's verdict does not stop at its egress: a geo-blocked clip goes to other regions before it
    /// fails, whatever this process's egresses.
    const ROUTES_BY_REGION: bool;

    /// The run's own record on this machine: attempts, throttle signals, outages.
    fn journal(&mut self) -> &mut Journal;

    /// This process's pacing and breaker settings: a store shares some of them (a fleet domain's pace).
    fn policy(&self, policy: Policy) -> Policy {
        policy
    }

    /// The breakers an earlier run left open, into the governor.
    fn load_breakers(&mut self, _governor: &mut Governor) -> anyhow::Result<()> {
        Ok(())
    }

    /// The governor's breakers kept for the next run.
    fn save_breakers(&mut self, _governor: &Governor) -> anyhow::Result<()> {
        Ok(())
    }

    /// The pacer's state beyond this process, on every turn of the loop: a store whose egresses share a
    /// throttle domain with other processes (a fleet) reads the domain's learned request rate into the
    /// governor and tells the domain what a ban taught this process.
    async fn share_rates(&mut self, _governor: &mut Governor, _reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        Ok(())
    }

    /// Before the first clip: the totals the run starts from (`summary`), told to the reporter.
    async fn begin(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()>;

    /// Upkeep on every turn of the loop (leases kept alive, a lost connection retried): when it wants the
    /// next turn, whatever runs.
    async fn tend(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<Option<Instant>>;

    /// Whether anything may be taken now.
    fn ready(&self) -> bool;

    /// Whether anything may be taken now through `lane`.
    fn ready_for(&self, lane: usize) -> bool;

    /// When a clip waiting out its retry delay becomes ready.
    fn next_due(&self) -> Option<Instant>;

    /// The next clip to run through `lane` (`probe`: the egress's own probe), with `running` clips running.
    async fn take(
        &mut self,
        lane: usize,
        probe: bool,
        running: usize,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<Take<Self::Claim>>;

    /// How the egress fared with `work`, for a breaker shared beyond this process.
    async fn heard(
        &mut self,
        _work: &Work<Self::Claim>,
        _heard: Heard,
        _reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Carries out where a finished attempt leaves its clip.
    async fn settle(
        &mut self,
        work: Work<Self::Claim>,
        settled: Settled,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()>;

    /// Nothing runs and (`dry`) nothing could be taken: whether the run is over.
    async fn drained(&mut self, dry: bool, reporter: &mut dyn Reporter) -> anyhow::Result<Drained>;

    /// After the loop: what is left pending goes into `summary`, what the store holds goes back.
    async fn end(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()>;

    /// The very last step, with how the run ended.
    async fn leave(&mut self, _result: &anyhow::Result<()>, _exit_code: i32) {}
}

/// Puts back each egress's request rate that an earlier run learned (kept in the local journal, for one
/// machine and a fleet worker alike).
pub fn load_rates(journal: &Journal, governor: &mut Governor) -> anyhow::Result<()> {
    let now = Instant::now();
    for (egress, per_min) in journal.egress_rates()? {
        governor.restore_rate(&egress, per_min, now);
    }
    Ok(())
}

/// Keeps each egress's learned request rate in the local journal for the next run.
pub fn save_rates(journal: &mut Journal, governor: &Governor) -> anyhow::Result<()> {
    for (egress, per_min) in governor.rates(Instant::now()) {
        if let Some(per_min) = per_min {
            journal.save_egress_rate(egress, per_min)?;
        }
    }
    Ok(())
}
