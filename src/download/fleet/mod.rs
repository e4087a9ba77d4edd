//! A fleet worker's run (`download --db URL --fleet NAME`): the loop that claims clips from the fleet's
//! database a few at a time, keeps their leases alive, runs each through the same per-clip pipeline as a
//! single-machine run (`clip.rs`), records it in the local journal and completes it in the fleet with a
//! fenced update. The judging is the single machine's: the governor hears every outcome and
//! `retry::verdict` decides, only the retry times and the charge live in the database.

use super::clip::{Engine, Outcome, Task};
use super::outages::{OutageBook, EGRESS_DOWN};
use crate::classify::{Category, Disposition};
use crate::config::{Config, FleetOptions};
use crate::fleet::{Claimed, Db, Left};
use crate::governor::{Finish, Governor, Pick};
use crate::journal::{self, Attempt, Failed, Journal, State};
use crate::outdir::OutDir;
use crate::progress::{Event, Reporter};
use crate::retry::{self, RetryPolicy, Verdict};
use crate::summary::Summary;
use crate::tools::process::StopSignal;
use report::{Offline, Report};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

mod outbox;
mod report;

/// How often a worker with nothing to claim asks again (others' leases may expire, retries come due).
const IDLE_POLL: Duration = Duration::from_millis(1000);

/// What a running clip carries back to the loop.
struct Running {
    claimed: Claimed,
    task: Task,
    lane: usize,
    probe: bool,
    /// This clip is the throttle domain's one probe.
    domain_probe: bool,
    started_ms: i64,
}

pub(super) struct Worker<'a> {
    db: Db,
    opts: FleetOptions,
    id: String,
    /// The shared throttle domain (`--throttle-domain`), if any.
    domain: Option<String>,
    journal: &'a mut Journal,
    out: &'a OutDir,
    engine: Arc<Engine>,
    run_id: i64,
    jobs: usize,
    policy: RetryPolicy,
    have_cookies: bool,
    url_template: String,
    stop: StopSignal,
    halt: tokio::sync::watch::Sender<bool>,
    governor: Governor,
    summary: Summary,
    /// Leases held: clip key → token.
    held: HashMap<String, i64>,
    cooldown: Duration,
    max_wait: Duration,
    /// The shared domain's time between two clip starts (`--rate` with `--throttle-domain`).
    pace: Option<Duration>,
    /// The domain start slot this worker reserved and waits for.
    slot_at: Option<Instant>,
    /// Reports for the fleet made while its database was away, oldest first.
    outbox: std::collections::VecDeque<Report>,
    /// Set while the database is away: no claims, outcomes wait in the outbox.
    offline: Option<Offline>,
    /// This worker's egresses reaching nothing: outage signals and outages, in the local journal (an outage
    /// is the worker's own network, not the shared domain's).
    outages: OutageBook,
}

impl<'a> Worker<'a> {
    /// Joins the fleet: registers the worker and its throttle domain.
    pub(super) async fn new(
        cfg: &Config,
        db: Db,
        out: &'a OutDir,
        journal: &'a mut Journal,
        engine: Arc<Engine>,
        run_id: i64,
        stop: StopSignal,
    ) -> anyhow::Result<Worker<'a>> {
        let opts = cfg.fleet.clone().expect("a fleet run has fleet options");
        let host = host_name();
        let id = format!("{host}-{}-{:06x}", std::process::id(), fastrand::u32(..0x100_0000));
        let domain_name = opts.domain.clone().unwrap_or_else(|| format!("{host}:{}", egress_names(cfg)));
        db.register_worker(&id, &host, &opts.region, &domain_name).await?;
        let domain = opts.domain.clone();
        // A shared domain is paced as one (`--rate` for the whole domain, one row), not per worker.
        let mut policy = cfg.throttle.clone();
        let domain_pace = match &domain {
            Some(_) => policy.rate_per_hour.take().map(|r| Duration::from_secs_f64(3600.0 / r)),
            None => None,
        };
        if let Some(d) = &domain {
            db.add_domain(d, cfg.throttle.cooldown, cfg.throttle.cooldown_cap).await?;
        }
        tracing::info!(worker = %id, fleet = %db.fleet, domain = %domain_name, "joined the fleet");
        Ok(Worker {
            db,
            opts,
            id,
            domain,
            journal,
            out,
            engine,
            run_id,
            jobs: cfg.jobs,
            policy: cfg.retry,
            have_cookies: cfg.have_cookies,
            url_template: cfg.url_template.clone(),
            stop,
            halt: tokio::sync::watch::channel(false).0,
            governor: Governor::new(cfg.egresses.clone(), policy),
            pace: domain_pace,
            slot_at: None,
            summary: Summary::default(),
            held: HashMap::new(),
            cooldown: cfg.throttle.cooldown,
            max_wait: cfg.max_wait,
            outbox: Default::default(),
            offline: None,
            outages: OutageBook::default(),
        })
    }

    pub(super) async fn run(mut self, reporter: &mut dyn Reporter) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let result = match self.db.left().await {
            Ok(left) => {
                self.summary.planned = left.total;
                self.summary.already_done = left.done;
                self.summary.already_failed = left.failed;
                reporter.begin(left.total, left.done + left.failed);
                self.work(reporter).await
            }
            Err(e) => Err(e),
        };
        reporter.end();
        // Reports the database has not heard yet: one more try to deliver them before leaving.
        if let Some(off) = self.offline.as_mut() {
            off.next_try = Instant::now();
            let _ = self.try_reconnect(reporter).await;
        }
        if !self.outbox.is_empty() {
            reporter.note(&format!(
                "{} outcomes could not reach the fleet database (they are in this worker's journal); their \
                 leases will expire and other workers redo those clips",
                self.outbox.len()
            ));
        }
        // Whatever this worker still holds goes back uncharged: a stop, a broken machine, an error.
        let released = self.db.release_all(&self.id).await.unwrap_or(0);
        if released > 0 {
            tracing::info!(released, "gave back the clips this worker held");
        }
        let left = self.db.left().await.unwrap_or(Left { pending: 1, ..Left::default() });
        self.summary.pending = left.pending + left.leased + self.outbox.len() as u64;
        self.summary.interrupted = *self.stop.borrow() && self.summary.environment.is_none();
        self.summary.elapsed = started.elapsed();
        self.summary.wasted_requests = self.governor.wasted();
        self.summary.cooling = self.governor.cooled();
        self.summary.down_time = self.governor.down_time(Instant::now());
        let run_id = self.run_id;
        self.summary.outages =
            self.journal.outages().map_or(0, |o| o.iter().filter(|o| o.run_id == Some(run_id)).count() as u64);
        self.summary.exit_code = self.summary.decide_exit_code();
        let reason = match (&result, self.summary.exit_code) {
            (Err(e), _) => format!("error: {e:#}"),
            (Ok(()), code) => format!("exit {code}"),
        };
        let _ = self.db.stop_worker(&self.id, &reason).await;
        result.map(|()| self.summary)
    }

    async fn work(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let mut running: JoinSet<(Running, Outcome)> = JoinSet::new();
        let mut stop = self.stop.clone();
        let halt = self.halt.subscribe();
        let beat_every = (self.opts.lease / 10).clamp(Duration::from_millis(250), Duration::from_secs(30));
        let mut next_beat = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            if *stop.borrow() && !*halt.borrow() {
                self.halt.send_replace(true);
            }
            let stopping = *halt.borrow();
            if self.try_reconnect(reporter).await? {
                next_beat = Instant::now();
            }
            if self.offline.is_none() && Instant::now() >= next_beat {
                self.beat(reporter).await?;
                next_beat = Instant::now() + beat_every;
            }
            let mut wake = Some(next_beat);
            if let Some(off) = &self.offline {
                wake = Some(off.next_try);
            }
            let mut dry = false;
            while !stopping && self.offline.is_none() && running.len() < self.jobs {
                let now = Instant::now();
                let (lane, probe) = match self.governor.pick(now) {
                    Pick::Lane { index, probe } => (index, probe),
                    Pick::Wait { until } => {
                        wake = min_instant(wake, until);
                        break;
                    }
                };
                let domain_probe = match self.domain_admits(running.len(), reporter).await? {
                    Admit::Yes => false,
                    Admit::Probe => true,
                    Admit::Wait(until) => {
                        wake = min_instant(wake, Some(until));
                        break;
                    }
                };
                if let Some(until) = self.paced(reporter).await? {
                    wake = min_instant(wake, Some(until));
                    break;
                }
                let claimed = self.db.claim(&self.id, 1, self.opts.lease, &self.opts.region).await;
                let Some(mut claimed) = self.online(claimed, reporter)? else { break };
                let Some(claimed) = claimed.pop() else {
                    dry = true;
                    break;
                };
                let task = self.task_for(&claimed)?;
                if !probe && !domain_probe {
                    if let Some((sha256, done)) = self.made_here(&task)? {
                        // Made in this folder by an earlier run whose report never reached the fleet (the
                        // worker was killed while the database was away): completed from that copy, unfetched.
                        tracing::info!(clip = %claimed.clip_key, "completed from the copy this folder already holds");
                        let (key, token, youtube_id) =
                            (claimed.clip_key.clone(), claimed.token, claimed.job.key.youtube_id.clone());
                        self.report(Report::Done { key, token, youtube_id, sha256, done }, reporter).await?;
                        continue;
                    }
                }
                self.held.insert(claimed.clip_key.clone(), claimed.token);
                self.governor.started(lane, probe, now);
                let engine = self.engine.clone();
                let halt = self.halt.subscribe();
                let run = Running { claimed, task, lane, probe, domain_probe, started_ms: journal::now_ms() };
                running.spawn(async move {
                    let outcome = engine.run(&run.task, run.lane, halt).await;
                    (run, outcome)
                });
                if domain_probe {
                    break;
                }
            }
            if running.is_empty() {
                if stopping {
                    return Ok(());
                }
                if dry {
                    let left = self.db.left().await;
                    if let Some(left) = self.online(left, reporter)? {
                        if left.pending == 0 && left.leased == 0 {
                            return Ok(());
                        }
                        let poll = IDLE_POLL.mul_f64(0.75 + 0.5 * fastrand::f64());
                        wake = min_instant(wake, Some(Instant::now() + poll));
                    }
                }
                if self.all_cooling_too_long() {
                    return Ok(());
                }
            }
            reporter.waiting(self.governor.status_line(Instant::now()));
            let wake = wake.unwrap_or_else(|| Instant::now() + IDLE_POLL);
            tokio::select! {
                Some(joined) = running.join_next() => {
                    let (run, outcome) = joined?;
                    self.record(run, outcome, reporter).await?;
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed(), if !stopping => {}
                _ = tick.tick() => reporter.tick(),
            }
        }
    }

    /// Heartbeat: extends this worker's leases, rescues expired ones, and notices leases lost meanwhile.
    async fn beat(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let held = self.db.heartbeat(&self.id, self.opts.lease).await;
        let Some(held) = self.online(held, reporter)? else { return Ok(()) };
        let held: HashMap<String, i64> = held.into_iter().collect();
        let lost: Vec<String> =
            self.held.iter().filter(|(k, t)| held.get(*k) != Some(t)).map(|(k, _)| k.clone()).collect();
        for key in lost {
            // Expired and rescued while this worker was away: the clip is another's now; its result here
            // will not be recorded in the fleet.
            reporter.note(&format!("{key}: lease lost (expired); another worker may take it"));
            self.held.remove(&key);
        }
        Ok(())
    }

    /// The shared domain's pace: `Some(when)` to wait for this worker's reserved start slot, `None` to start.
    async fn paced(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<Option<Instant>> {
        let (Some(every), Some(domain)) = (self.pace, self.domain.clone()) else { return Ok(None) };
        if let Some(at) = self.slot_at {
            if Instant::now() < at {
                return Ok(Some(at));
            }
            self.slot_at = None;
            return Ok(None);
        }
        let wait = self.db.reserve_slot(&domain, every).await;
        let Some(wait) = self.online(wait, reporter)? else { return Ok(Some(Instant::now() + IDLE_POLL)) };
        if wait <= 0.01 {
            return Ok(None);
        }
        let at = Instant::now() + Duration::from_secs_f64(wait.min(3600.0));
        self.slot_at = Some(at);
        Ok(Some(at))
    }

    /// Whether the shared throttle domain lets this worker start a clip now.
    async fn domain_admits(&mut self, running: usize, reporter: &mut dyn Reporter) -> anyhow::Result<Admit> {
        let Some(domain) = self.domain.clone() else { return Ok(Admit::Yes) };
        let later = |s: f64| Instant::now() + Duration::from_secs_f64(s.clamp(0.05, 3600.0));
        let state = self.db.domain_state(&domain).await;
        let state = match self.online(state, reporter)? {
            None => return Ok(Admit::Wait(later(IDLE_POLL.as_secs_f64()))),
            Some(None) => return Ok(Admit::Yes),
            Some(Some(state)) => state,
        };
        match state.breaker.as_str() {
            "closed" => Ok(Admit::Yes),
            "open" if state.opens_in_s.is_some_and(|s| s > 0.0) => {
                Ok(Admit::Wait(later(state.opens_in_s.unwrap_or(1.0))))
            }
            // The prober is this worker: its probe is running, nothing more until it says.
            "half_open" if state.prober.as_deref() == Some(self.id.as_str()) && running > 0 => {
                Ok(Admit::Wait(later(IDLE_POLL.as_secs_f64())))
            }
            _ if running > 0 => Ok(Admit::Wait(later(IDLE_POLL.as_secs_f64()))),
            _ => {
                // Open and due, or a half-open whose prober went silent for longer than a lease.
                let won = self.db.elect_prober(&domain, &self.id, self.opts.lease + self.cooldown).await;
                if self.online(won, reporter)? == Some(true) {
                    tracing::info!(domain, "this worker probes the domain");
                    Ok(Admit::Probe)
                } else {
                    Ok(Admit::Wait(later(IDLE_POLL.as_secs_f64())))
                }
            }
        }
    }

    /// The claimed clip in the local journal (this worker's outbox and record), as a task for the engine.
    fn task_for(&mut self, claimed: &Claimed) -> anyhow::Result<Task> {
        let job = &claimed.job;
        let dest = self.out.clip_path(&job.rel_path)?;
        self.journal.sync_plan(std::slice::from_ref(job))?;
        let clip_id = self
            .journal
            .clip_id(&job.key)?
            .ok_or_else(|| anyhow::anyhow!("{}: not in the journal", claimed.clip_key))?;
        Ok(Task {
            clip_id,
            url: self.url_template.replace(crate::config::ID_PLACEHOLDER, &job.key.youtube_id),
            start: job.key.start_ms as f64 / 1000.0,
            end: job.key.end_ms as f64 / 1000.0,
            dest,
        })
    }

    /// A claimed clip that this folder's journal already has done, with its file in place, the size and the
    /// sha256 it recorded: its checksum and what the fleet records of it.
    fn made_here(&self, task: &Task) -> anyhow::Result<Option<(String, crate::journal::Done)>> {
        let Some((size, sha)) = self.journal.done_copy(task.clip_id)? else { return Ok(None) };
        match std::fs::metadata(&task.dest) {
            Ok(m) if m.is_file() && m.len() == size => {}
            _ => return Ok(None),
        }
        if sha256_file(&task.dest)? != sha {
            tracing::warn!(path = %task.dest.display(), "a done clip's file differs from its recorded sha256: fetching it again");
            return Ok(None);
        }
        let done = crate::journal::Done { size_bytes: size, source: "adopted".into(), ..Default::default() };
        Ok(Some((sha, done)))
    }

    /// One finished attempt: the governor and the domain hear how the egress fared, the local journal records
    /// it, and the fleet gets a [`Report`] (sent now, or kept in the outbox while the database is away).
    async fn record(&mut self, run: Running, outcome: Outcome, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let Running { claimed, task, lane, probe, domain_probe, started_ms } = run;
        let token = self.held.remove(&claimed.clip_key).unwrap_or(claimed.token);
        let egress = self.governor.egress_name(lane).to_string();
        let youtube_id = claimed.job.key.youtube_id.clone();
        let key = claimed.clip_key.clone();
        let mut attempt = Attempt {
            clip_id: task.clip_id,
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
                self.finished(lane, probe, Finish::Unknown, task.clip_id)?;
                return self.report(Report::GiveBack { key, token }, reporter).await;
            }
            Outcome::Done(done) => {
                self.finished(lane, probe, Finish::Served, task.clip_id)?;
                self.domain_served(domain_probe, reporter).await?;
                self.journal.record_done(task.clip_id, &done)?;
                let sha256 = sha256_file(&task.dest)?;
                self.journal.record_sha256(task.clip_id, Some(&sha256))?;
                attempt.bytes_fetched = done.bytes_fetched;
                attempt.download_s = done.download_s;
                attempt.encode_s = done.encode_s;
                self.journal.record_attempt(&attempt)?;
                return self.report(Report::Done { key, token, youtube_id, sha256, done }, reporter).await;
            }
            Outcome::Failed { failure, bytes_fetched, download_s, throttled_requests, retry_after } => {
                (failure, bytes_fetched, download_s, throttled_requests, retry_after)
            }
        };
        let category = failure.category;
        self.summary.bytes_fetched += bytes_fetched;
        let disposition = category.disposition();
        let down_after = self.governor.policy.down_after;
        let unreachable = self.outages.is_unreachable(task.clip_id, category, &failure.stderr_tail, down_after);
        let finish = match disposition {
            Disposition::Throttle => Finish::Throttled { requests: throttled_requests, retry_after },
            Disposition::Environment => Finish::Unknown,
            _ if unreachable => Finish::Unreachable,
            _ => Finish::Served,
        };
        let opened = self.finished(lane, probe, finish, task.clip_id)?;
        if disposition == Disposition::Throttle {
            self.domain_throttled(reporter).await?;
        } else if disposition != Disposition::Environment && !unreachable {
            self.domain_served(domain_probe, reporter).await?;
        }
        let context = retry::Context {
            tries: claimed.attempts,
            have_cookies: self.have_cookies,
            breaker: self.governor.breaker_on(),
            egresses: self.governor.egress_count(),
            blocked_on: 0,
            unreachable,
        };
        let verdict = retry::verdict(category, &context, &self.policy, fastrand::f64());
        attempt.category = Some(category.as_str());
        attempt.message = Some(&failure.message);
        attempt.bytes_fetched = bytes_fetched;
        attempt.download_s = download_s;
        let message = failure.message.clone();
        if category == Category::GeoBlocked {
            // Blocked from this worker's region: the clip goes to the fleet's other regions before it fails.
            attempt.outcome = "rerouted";
            self.journal.record_attempt(&attempt)?;
            return self.report(Report::GeoBlocked { key, token, youtube_id, message }, reporter).await;
        }
        let report = match verdict {
            Verdict::GiveBack | Verdict::Reroute => {
                // A signal about the egress (a ban, or an outage of this worker's network), not the video.
                let signal = if unreachable { EGRESS_DOWN } else { category.as_str() };
                self.journal.record_throttle(
                    self.run_id,
                    &egress,
                    signal,
                    opened.as_ref().map(|o| o.cooloff),
                    throttled_requests,
                )?;
                if unreachable {
                    self.summary.outage_events += 1;
                    self.outages.gave_back(self.journal, lane)?;
                } else {
                    self.summary.throttle_events += 1;
                }
                if let Some(o) = &opened {
                    reporter.note(&format!(
                        "{}: {} — cooling down for {}",
                        o.egress,
                        signal,
                        retry::format_duration(o.cooloff)
                    ));
                }
                attempt.outcome = "throttled";
                attempt.message = None;
                self.journal.record_attempt(&attempt)?;
                Report::GiveBack { key, token }
            }
            Verdict::Halt => {
                if self.summary.environment.is_none() {
                    self.summary.environment = Some(failure.message.clone());
                    reporter.note(&format!(
                        "error: {}; stopping and giving back this worker's clips (none is marked failed for this)",
                        failure.message
                    ));
                }
                attempt.outcome = "retry";
                self.journal.record_attempt(&attempt)?;
                self.halt.send_replace(true);
                Report::GiveBack { key, token }
            }
            Verdict::Retry { after } => {
                self.record_local_failure(&task, &failure, &claimed, State::Pending, bytes_fetched)?;
                attempt.outcome = "retry";
                self.journal.record_attempt(&attempt)?;
                reporter.event(Event::Retrying { id: &youtube_id, category: category.as_str(), after });
                Report::Failed { key, token, retry_after: Some(after), category, message, bytes_fetched }
            }
            Verdict::Fail { permanent } => {
                self.record_local_failure(&task, &failure, &claimed, State::Failed, bytes_fetched)?;
                attempt.outcome = "failed";
                self.journal.record_attempt(&attempt)?;
                if !permanent {
                    self.summary.retryable_failed += 1;
                }
                *self.summary.failed.entry(category.as_str().to_string()).or_default() += 1;
                reporter.event(Event::Failed { id: &youtube_id, category: category.as_str(), message: &message });
                Report::Failed { key, token, retry_after: None, category, message, bytes_fetched }
            }
        };
        self.report(report, reporter).await
    }

    fn record_local_failure(
        &mut self,
        task: &Task,
        failure: &crate::tools::Failure,
        claimed: &Claimed,
        state: State,
        bytes_fetched: u64,
    ) -> anyhow::Result<()> {
        self.journal.record_failure(
            task.clip_id,
            &Failed {
                state,
                category: failure.category.as_str(),
                message: &failure.message,
                stderr_tail: &failure.stderr_tail,
                attempts: claimed.attempts + 1,
                next_attempt_ms: None,
                bytes_fetched,
            },
        )
    }

    /// A throttle signal: the shared domain's breaker opens (once, however many workers saw the ban).
    async fn domain_throttled(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let Some(domain) = self.domain.clone() else { return Ok(()) };
        if self.offline.is_some() {
            return Ok(());
        }
        let opened = self.db.open_domain(&domain).await;
        if self.online(opened, reporter)? == Some(true) {
            reporter.note(&format!("throttle domain {domain}: breaker open for the whole fleet"));
        }
        Ok(())
    }

    /// The egress was served: a probe that got through closes the shared domain's breaker.
    async fn domain_served(&mut self, domain_probe: bool, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let Some(domain) = self.domain.clone().filter(|_| domain_probe && self.offline.is_none()) else {
            return Ok(());
        };
        let closed = self.db.close_domain(&domain, &self.id).await;
        if self.online(closed, reporter)? == Some(true) {
            tracing::info!(domain, "the probe got through: breaker closed");
        }
        Ok(())
    }

    /// The governor hears how a job of clip `clip_id` through `lane` ended; an outage that this opens or ends
    /// is journaled.
    fn finished(
        &mut self,
        lane: usize,
        probe: bool,
        finish: Finish,
        clip_id: i64,
    ) -> anyhow::Result<Option<crate::governor::Opened>> {
        let opened = self.governor.finished(lane, probe, finish, Instant::now());
        let (journal, run_id) = (&mut *self.journal, self.run_id);
        self.outages.after_finish(journal, run_id, &self.governor, lane, probe, finish, opened.is_some(), clip_id)?;
        Ok(opened)
    }

    /// Every egress of this worker cools for longer than `--max-wait`: stop (exit 3) and say when to rerun.
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
}

/// What the shared throttle domain says about starting a clip.
enum Admit {
    Yes,
    /// This worker won the probe: one clip, alone.
    Probe,
    Wait(Instant),
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The machine's name, for the worker's id and its default throttle domain.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    if name.is_empty() {
        "host".into()
    } else {
        name
    }
}

/// The egresses' names joined, for the default throttle domain `host:egress`.
fn egress_names(cfg: &Config) -> String {
    let names: Vec<&str> = cfg.egresses.iter().map(|e| e.name.as_str()).collect();
    names.join("+")
}

fn sha256_file(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
