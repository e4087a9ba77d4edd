//! The one loop that owns a run: it picks clips from its [`Store`] (the journal on one machine, the fleet's
//! database for a fleet worker), starts at most `-j` of them, judges every outcome, and handles Ctrl-C.
//! Workers never touch the journal or the screen.

use super::clip::{Engine, Outcome};
use super::outages::{OutageBook, EGRESS_DOWN};
use super::store::{Charged, Drained, Heard, Settled, Store, Take, Work};
use crate::classify::{Category, Disposition};
use crate::config::Config;
use crate::governor::{Finish, Governor, Opened, Pick};
use crate::journal::{self, Attempt, Failed, State};
use crate::progress::{Event, Reporter};
use crate::retry::{self, RetryPolicy, Verdict};
use crate::summary::Summary;
use crate::tools::process::StopSignal;
use crate::tools::Failure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub struct Scheduler<S: Store> {
    store: S,
    engine: Arc<Engine>,
    run_id: i64,
    jobs: usize,
    policy: RetryPolicy,
    have_cookies: bool,
    /// Ctrl-C from the user.
    stop: StopSignal,
    /// What the workers listen to: turned on by Ctrl-C or by a broken environment.
    halt: tokio::sync::watch::Sender<bool>,
    /// Outage signals and the outages they make, journaled.
    outages: OutageBook,
    summary: Summary,
    governor: Governor,
    max_wait: Duration,
}

/// What [`Scheduler::apply`] needs of a failed attempt besides its verdict.
struct FailedAttempt<'f> {
    failure: &'f Failure,
    bytes_fetched: u64,
    throttled_requests: u64,
    lane: usize,
    /// The breaker this failure opened, if any.
    opened: Option<Opened>,
    /// The egress reached nothing (an outage signal, `egress_down`).
    unreachable: bool,
}

/// A clip as it runs: the work, and through which egress.
type Joined<C> = (Work<C>, Outcome, i64, usize, bool);

impl<S: Store> Scheduler<S> {
    pub fn new(cfg: &Config, mut store: S, engine: Arc<Engine>, run_id: i64, stop: StopSignal) -> anyhow::Result<Self> {
        let mut governor = Governor::new(cfg.egresses.clone(), store.policy(cfg.throttle.clone()));
        governor.use_gates(engine.exits.iter().map(|e| e.gate.clone()));
        store.load_breakers(&mut governor)?;
        Ok(Scheduler {
            store,
            engine,
            run_id,
            jobs: cfg.jobs,
            policy: cfg.retry,
            have_cookies: cfg.have_cookies,
            stop,
            halt: tokio::sync::watch::channel(false).0,
            outages: OutageBook::default(),
            summary: Summary::default(),
            governor,
            max_wait: cfg.max_wait,
        })
    }

    /// The store this run takes its clips from.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    pub async fn run(mut self, reporter: &mut dyn Reporter) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let result = match self.store.begin(&mut self.summary, reporter).await {
            Ok(()) => self.turns(reporter).await,
            Err(e) => Err(e),
        };
        reporter.end();
        let ended = self.store.end(&mut self.summary, reporter).await;
        let result = result.and(ended);
        if result.is_ok() {
            self.store.save_breakers(&self.governor)?;
        }
        self.summary.wasted_requests = self.governor.wasted();
        self.summary.cooling = self.governor.cooled();
        self.summary.down_time = self.governor.down_time(Instant::now());
        let run_id = self.run_id;
        self.summary.outages =
            self.store.journal().outages().map_or(0, |o| o.iter().filter(|o| o.run_id == Some(run_id)).count() as u64);
        self.summary.interrupted = *self.stop.borrow() && self.summary.environment.is_none();
        self.summary.elapsed = started.elapsed();
        self.summary.exit_code = self.summary.decide_exit_code();
        self.store.leave(&result, self.summary.exit_code).await;
        result.map(|()| self.summary)
    }

    /// The loop: start what the store gives and the governor allows, record what ends, until nothing is left,
    /// the run is stopped or every egress cools for longer than `--max-wait`.
    async fn turns(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let mut running: JoinSet<Joined<S::Claim>> = JoinSet::new();
        let mut stop = self.stop.clone();
        let halt = self.halt.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            if *stop.borrow() && !*halt.borrow() {
                self.halt.send_replace(true);
            }
            let stopping = *halt.borrow();
            // The store's own upkeep wakes the loop whatever runs; the retries and the egresses only when a
            // clip could start.
            let upkeep = self.store.tend(&mut self.summary, reporter).await?;
            self.store.share_rates(&mut self.governor, reporter).await?;
            // A retry already due wakes nobody: it starts in the loop below when its egress lets it, and
            // an egress that cools says when in its `Pick::Wait` (a due instant in the past as the wake-up
            // would spin this loop through the whole cool-off).
            let mut wake = self.store.next_due().filter(|due| *due > Instant::now());
            let mut dry = false;
            while !stopping && self.room(running.len()) && self.store.ready() {
                let now = Instant::now();
                // With every job slot taken, only the probe of an egress whose clips' requests are held
                // may start: they wait for it, and it must not wait for them.
                let under = running.len() < self.jobs;
                let (store, governor) = (&self.store, &self.governor);
                let pick =
                    governor.pick_where(now, |lane| store.ready_for(lane) && (under || governor.holding(lane) > 0));
                let (lane, probe) = match pick {
                    Pick::Lane { index, probe } if under || probe => (index, probe),
                    Pick::Lane { .. } => break,
                    Pick::Wait { until } => {
                        wake = min_instant(wake, until);
                        break;
                    }
                };
                let (mut work, alone) =
                    match self.store.take(lane, probe, running.len(), &mut self.summary, reporter).await? {
                        Take::Work { work, alone } => (work, alone),
                        Take::Settled => continue,
                        Take::Wait(until) => {
                            wake = min_instant(wake, until);
                            break;
                        }
                        Take::Dry => {
                            dry = true;
                            break;
                        }
                    };
                work.task.probe = probe;
                // What it will ask of the egress is owed from now, so that the next pick counts it.
                work.task.demand = Some(self.governor.started(lane, probe, now));
                let engine = self.engine.clone();
                let halt = self.halt.subscribe();
                running.spawn(async move {
                    let started_ms = journal::now_ms();
                    let outcome = engine.run(&work.task, lane, halt).await;
                    if let Some(demand) = work.task.demand.take() {
                        demand.release();
                    }
                    (work, outcome, started_ms, lane, probe)
                });
                if alone {
                    break;
                }
            }
            if !stopping && !running.is_empty() {
                // Clips held on an egress whose probe is due, and no clip left to probe it with (the end of
                // a run, or every clip left blocked there): they would wait out their bound for nothing.
                let store = &self.store;
                self.governor.give_back_unprobed(Instant::now(), |lane| dry || !store.ready_for(lane));
            }
            if running.is_empty() {
                if stopping {
                    return Ok(());
                }
                match self.store.drained(dry, reporter).await? {
                    Drained::Yes => return Ok(()),
                    Drained::No(until) => wake = min_instant(wake, until),
                }
                if self.all_cooling_too_long() {
                    return Ok(());
                }
            }
            reporter.waiting(self.governor.status_line(Instant::now()));
            let wake = if self.room(running.len()) && !stopping { min_instant(wake, upkeep) } else { upkeep };
            let wake = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(joined) = running.join_next() => {
                    let (work, outcome, started_ms, lane, probe) = joined?;
                    self.record(work, outcome, started_ms, lane, probe, reporter).await?;
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed(), if !stopping => {}
                _ = tick.tick() => reporter.tick(),
            }
        }
    }

    /// Whether a clip may start with `running` running: a free job slot, or (for its probe) an egress whose
    /// clips' requests are held.
    fn room(&self, running: usize) -> bool {
        running < self.jobs || (0..self.governor.egress_count()).any(|lane| self.governor.holding(lane) > 0)
    }

    /// Every egress is cooling and the first reopens later than `--max-wait`: the run ends here, and says
    /// when a rerun will find an egress open again.
    fn all_cooling_too_long(&mut self) -> bool {
        let now = Instant::now();
        let Some(until) = self.governor.all_cooling_until(now) else { return false };
        let wait = until.saturating_duration_since(now);
        if wait <= self.max_wait {
            return false;
        }
        let at = std::time::SystemTime::now() + wait;
        self.summary.resume_after = Some(humantime::format_rfc3339_seconds(at).to_string());
        self.summary.network_down = self.governor.network_down();
        true
    }

    /// The governor hears how a job of clip `clip_id` through `lane` ended; an outage that this opens or ends
    /// is journaled.
    fn finished(&mut self, lane: usize, probe: bool, finish: Finish, clip_id: i64) -> anyhow::Result<Option<Opened>> {
        let opened = self.governor.finished(lane, probe, finish, Instant::now());
        let run_id = self.run_id;
        let journal = self.store.journal();
        self.outages.after_finish(journal, run_id, &self.governor, lane, probe, finish, opened.is_some(), clip_id)?;
        Ok(opened)
    }

    /// Records one finished attempt: the governor (and through the store, a shared breaker) hears how the
    /// egress fared, the local journal records the attempt, a failure gets its verdict from
    /// [`retry::verdict`], and [`Scheduler::apply`] carries that out.
    async fn record(
        &mut self,
        work: Work<S::Claim>,
        outcome: Outcome,
        started_ms: i64,
        lane: usize,
        probe: bool,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let egress = self.governor.egress_name(lane).to_string();
        if self.engine.exits[lane].dash_refused.take_new() {
            let run_id = self.run_id;
            self.store.journal().dash_refused_on(&egress, run_id)?;
        }
        let clip_id = work.task.clip_id;
        let mut attempt = Attempt {
            clip_id,
            run_id: self.run_id,
            started_ms,
            finished_ms: journal::now_ms(),
            outcome: "done",
            category: None,
            message: None,
            bytes_fetched: 0,
            download_s: 0.0,
            encode_s: 0.0,
            egress: &egress,
        };
        let (failure, bytes_fetched, download_s, throttled_requests, retry_after) = match outcome {
            Outcome::Cancelled => {
                self.finished(lane, probe, Finish::Unknown, clip_id)?;
                return self.store.settle(work, Settled::Cancelled, &mut self.summary, reporter).await;
            }
            Outcome::Done(done) => {
                self.finished(lane, probe, Finish::Served, clip_id)?;
                self.store.heard(&work, Heard::Served, reporter).await?;
                self.store.journal().record_done(clip_id, &done)?;
                attempt.bytes_fetched = done.bytes_fetched;
                attempt.download_s = done.download_s;
                attempt.encode_s = done.encode_s;
                self.store.journal().record_attempt(&attempt)?;
                return self.store.settle(work, Settled::Done(done), &mut self.summary, reporter).await;
            }
            Outcome::Held { bytes_fetched, download_s } => {
                // Nothing was sent and the host said nothing: no signal, no attempt charged.
                self.finished(lane, probe, Finish::Unknown, clip_id)?;
                self.summary.bytes_fetched += bytes_fetched;
                attempt.outcome = "held";
                attempt.category = Some(Category::RateLimited.as_str());
                attempt.message = Some("held while the egress was banned or paced: nothing sent, given back");
                attempt.bytes_fetched = bytes_fetched;
                attempt.download_s = download_s;
                self.store.journal().record_attempt(&attempt)?;
                return self.store.settle(work, Settled::GiveBack, &mut self.summary, reporter).await;
            }
            Outcome::Failed { failure, bytes_fetched, download_s, throttled_requests, retry_after } => {
                (failure, bytes_fetched, download_s, throttled_requests, retry_after)
            }
        };
        let category = failure.category;
        self.summary.bytes_fetched += bytes_fetched;
        let down_after = self.governor.policy.down_after;
        let unreachable = self.outages.is_unreachable(clip_id, category, &failure.stderr_tail, down_after);
        let disposition = category.disposition();
        let finish = match disposition {
            Disposition::Throttle => Finish::Throttled { requests: throttled_requests, retry_after },
            Disposition::Environment => Finish::Unknown,
            _ if unreachable => Finish::Unreachable,
            _ => Finish::Served,
        };
        let opened = self.finished(lane, probe, finish, clip_id)?;
        if disposition == Disposition::Throttle {
            self.store.heard(&work, Heard::Throttled, reporter).await?;
        } else if disposition != Disposition::Environment && !unreachable {
            self.store.heard(&work, Heard::Served, reporter).await?;
        }
        let context = retry::Context {
            tries: work.tries,
            have_cookies: self.have_cookies,
            breaker: self.governor.breaker_on(),
            egresses: self.governor.egress_count(),
            blocked_on: work.blocked_on.len(),
            unreachable,
        };
        let verdict = match retry::verdict(category, &context, &self.policy, fastrand::f64()) {
            // The store has other regions to send a geo-blocked clip to before it fails.
            _ if S::ROUTES_BY_REGION && category == Category::GeoBlocked => Verdict::Reroute,
            verdict => verdict,
        };
        attempt.category = Some(category.as_str());
        attempt.message = Some(&failure.message);
        attempt.bytes_fetched = bytes_fetched;
        attempt.download_s = download_s;
        let failed = FailedAttempt { failure: &failure, bytes_fetched, throttled_requests, lane, opened, unreachable };
        self.apply(verdict, work, failed, attempt, reporter).await
    }

    /// Carries out a failure's verdict: the local journal, the summary and the reporter here, the clip's
    /// state in the store.
    async fn apply(
        &mut self,
        verdict: Verdict,
        mut work: Work<S::Claim>,
        failed: FailedAttempt<'_>,
        mut attempt: Attempt<'_>,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let FailedAttempt { failure, bytes_fetched, throttled_requests, lane, opened, unreachable } = failed;
        let category = failure.category;
        let egress = attempt.egress;
        let throttle = category.disposition() == Disposition::Throttle;
        if verdict.counts_attempt() {
            work.tries += 1;
            work.attempts += 1;
        }
        let (state, next) = match verdict {
            Verdict::GiveBack => {
                // A signal about the egress, not the video: back to pending, attempts untouched.
                let signal = if unreachable { EGRESS_DOWN } else { category.as_str() };
                let journal = self.store.journal();
                journal.record_throttle(
                    self.run_id,
                    egress,
                    signal,
                    opened.as_ref().map(|o| o.cooloff),
                    throttled_requests,
                )?;
                if unreachable {
                    self.summary.outage_events += 1;
                    self.outages.gave_back(journal, lane)?;
                } else {
                    self.summary.throttle_events += 1;
                }
                if let Some(o) = &opened {
                    let rate = o.learned.map(|c| {
                        let per_min = c.per_s * 60.0;
                        format!(
                            "; its requests now {per_min:.1}/min (it sent {} in {:.0} s)",
                            c.sent,
                            c.over.as_secs_f64()
                        )
                    });
                    let rate = rate.unwrap_or_default();
                    reporter.note(&format!(
                        "{}: {} — cooling down for {}{rate}",
                        o.egress,
                        signal,
                        retry::format_duration(o.cooloff)
                    ));
                    self.store.save_breakers(&self.governor)?;
                }
                attempt.outcome = "throttled";
                attempt.message = None;
                self.store.journal().record_attempt(&attempt)?;
                return self.store.settle(work, Settled::GiveBack, &mut self.summary, reporter).await;
            }
            Verdict::Reroute => {
                attempt.outcome = "rerouted";
                self.store.journal().record_attempt(&attempt)?;
                let reroute = Settled::Reroute { lane, message: failure.message.clone() };
                return self.store.settle(work, reroute, &mut self.summary, reporter).await;
            }
            Verdict::Halt => (State::Pending, None),
            Verdict::Retry { after } => (State::Pending, Some(after)),
            Verdict::Fail { .. } => (State::Failed, None),
        };
        self.store.journal().record_failure(
            work.task.clip_id,
            &Failed {
                state,
                category: category.as_str(),
                message: &failure.message,
                stderr_tail: &failure.stderr_tail,
                attempts: work.attempts,
                next_attempt_ms: next.map(|d| journal::now_ms() + d.as_millis() as i64),
                bytes_fetched,
            },
        )?;
        attempt.outcome = if state == State::Failed { "failed" } else { "retry" };
        self.store.journal().record_attempt(&attempt)?;
        if verdict == Verdict::Halt {
            if self.summary.environment.is_none() {
                self.summary.environment = Some(failure.message.clone());
                reporter.note(&format!("error: {}; {}", failure.message, S::HALT_NOTE));
            }
            // Ends every running child; their clips stay pending.
            self.halt.send_replace(true);
            return self.store.settle(work, Settled::Halt, &mut self.summary, reporter).await;
        }
        if throttle {
            // With `--no-breaker` a throttle signal is an ordinary retryable failure, still on record.
            self.store.journal().record_throttle(self.run_id, egress, category.as_str(), None, throttled_requests)?;
            self.summary.throttle_events += 1;
        }
        let charged = Charged { category, message: failure.message.clone(), bytes_fetched };
        let settled = match verdict {
            Verdict::Retry { after } => {
                reporter.event(Event::Retrying { id: &work.id, category: category.as_str(), after });
                Settled::Retry { after, failure: charged }
            }
            Verdict::Fail { permanent } => {
                if !permanent {
                    self.summary.retryable_failed += 1;
                }
                *self.summary.failed.entry(category.as_str().to_string()).or_default() += 1;
                reporter.event(Event::Failed { id: &work.id, category: category.as_str(), message: &failure.message });
                Settled::Fail { failure: charged }
            }
            Verdict::GiveBack | Verdict::Reroute | Verdict::Halt => unreachable!("settled above"),
        };
        self.store.settle(work, settled, &mut self.summary, reporter).await
    }
}
