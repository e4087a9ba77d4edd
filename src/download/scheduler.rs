//! The one loop that owns a run: it picks clips, starts at most `-j` of them, records every outcome in the
//! journal, schedules retries, and handles Ctrl-C. Workers never touch the journal or the screen.

use super::clip::{Engine, Outcome, Task};
use super::outages::{OutageBook, EGRESS_DOWN};
use crate::classify::{Category, Disposition};
use crate::config::Config;
use crate::config::Source;
use crate::governor::{Finish, Governor, Opened, Pick};
use crate::journal::{self, Attempt, Failed, Journal, State};
use crate::outdir::OutDir;
use crate::plan::Plan;
use crate::progress::{Event, Reporter};
use crate::retry::{self, RetryPolicy, Verdict};
use crate::summary::Summary;
use crate::tools::process::StopSignal;
use crate::tools::Failure;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
use tokio::task::JoinSet;

/// The clips a run works on.
pub enum Scope<'p> {
    /// The clips of this plan (already synced into the journal), in plan order.
    Plan(&'p Plan),
    /// Every clip of the journal, in id order: the journal holds exactly the plan, which did not change
    /// (`planned` is its size).
    Journal { planned: u64 },
}

pub struct Scheduler<'a> {
    journal: &'a mut Journal,
    out: &'a OutDir,
    /// `--url-template`, for the tasks built as clips start.
    url_template: String,
    /// Clips not started yet in this run, in plan order: (clip id, attempts). Their task is built from the
    /// journal when they start, so that 650,000 of them cost 16 bytes each.
    fresh: VecDeque<(i64, u32)>,
    /// Clips to run whose file is already in place (a run killed between placing and journaling): checked
    /// and adopted before anything is fetched.
    on_disk: Vec<(i64, u32)>,
    /// The journal's clips are the plan's, in plan order.
    plan_is_journal: bool,
    engine: Arc<Engine>,
    run_id: i64,
    jobs: usize,
    policy: RetryPolicy,
    have_cookies: bool,
    /// Ctrl-C from the user.
    stop: StopSignal,
    /// What the workers listen to: turned on by Ctrl-C or by a broken environment.
    halt: tokio::sync::watch::Sender<bool>,
    /// Clips given back or put first, before the fresh ones.
    queue: VecDeque<Work>,
    /// Clips waiting out a retry delay.
    delayed: Vec<(Instant, Work)>,
    /// Attempts made in this run, per clip: each run gets a fresh budget for passing failures.
    tries: HashMap<i64, u32>,
    /// Outage signals and the outages they make, journaled.
    outages: OutageBook,
    summary: Summary,
    governor: Governor,
    max_wait: Duration,
    /// `--source mirror` fetches nothing from YouTube: what the mirror phase left is pending.
    youtube: bool,
}

#[derive(Debug, Clone)]
struct Work {
    task: Task,
    id: String,
    attempts: u32,
    /// Egresses (lane indices) through which the video was geo-blocked: it goes through the others.
    blocked_on: Vec<usize>,
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

impl Work {
    fn allows(&self, lane: usize) -> bool {
        !self.blocked_on.contains(&lane)
    }
}

impl<'a> Scheduler<'a> {
    pub fn new(
        cfg: &Config,
        out: &'a OutDir,
        journal: &'a mut Journal,
        engine: Arc<Engine>,
        run_id: i64,
        scope: Scope<'_>,
        stop: StopSignal,
    ) -> anyhow::Result<Scheduler<'a>> {
        let have_cookies = cfg.have_cookies;
        let mut summary = Summary::default();
        // The plan's clips by key, for picking them out of the journal (`None`: every journaled clip).
        let index: Option<HashMap<(&str, i64, i64), u32>> = match &scope {
            Scope::Plan(plan) => {
                summary.planned = plan.jobs.len() as u64;
                let keys = plan.jobs.iter().enumerate();
                Some(keys.map(|(i, j)| ((j.key.youtube_id.as_str(), j.key.start_ms, j.key.end_ms), i as u32)).collect())
            }
            Scope::Journal { planned } => {
                summary.planned = *planned;
                None
            }
        };
        // (position in the plan, clip id, attempts) of the clips to run, and those already on disk.
        let mut fresh: Vec<(u32, i64, u32)> = Vec::new();
        let mut on_disk = Vec::new();
        let mut reset = Vec::new();
        let (mut seen, mut last_pos, mut in_order) = (0u64, None, true);
        let mut dirs = DirCache::default();
        journal.for_each_clip_state(|rec| {
            let pos = match &index {
                Some(index) => match index.get(&(rec.youtube_id, rec.start_ms, rec.end_ms)) {
                    Some(&pos) => pos,
                    None => {
                        in_order = false;
                        return Ok(());
                    }
                },
                None => seen as u32,
            };
            seen += 1;
            in_order &= last_pos.is_none_or(|l| l < pos);
            last_pos = Some(pos);
            let rel = Path::new(rec.rel_path);
            let run = match rec.state {
                State::Done if dirs.is_file(out, rel)? => {
                    summary.already_done += 1;
                    false
                }
                State::Done => {
                    tracing::warn!(path = %rec.rel_path, "a done clip is missing: fetching it again");
                    reset.push(rec.id);
                    true
                }
                State::Pending => true,
                State::Failed => {
                    let category = rec.category.and_then(|c| c.parse().ok()).unwrap_or(Category::Other);
                    let wanted = match &cfg.retry_failed {
                        Some(only) => only.is_empty() || only.contains(&category),
                        None => false,
                    } || (cfg.source == Source::Auto && category == Category::MissingFromMirror);
                    // `--source mirror` fetches nothing itself: what the mirror phase failed stays failed.
                    let retry_here = cfg.source != Source::Mirror && !category.is_permanent(have_cookies);
                    if wanted || retry_here {
                        reset.push(rec.id);
                        true
                    } else {
                        summary.already_failed += 1;
                        *summary.failed.entry(category.as_str().to_string()).or_default() += 1;
                        false
                    }
                }
            };
            if run && rec.state != State::Done && dirs.is_file(out, rel)? {
                // A file from a run killed between placing it and journaling it: verified before use.
                on_disk.push((pos, rec.id, rec.attempts));
            } else if run {
                fresh.push((pos, rec.id, rec.attempts));
            }
            Ok(())
        })?;
        let plan_is_journal = in_order && seen == summary.planned;
        if !in_order {
            fresh.sort_unstable_by_key(|f| f.0);
            on_disk.sort_unstable_by_key(|f| f.0);
        }
        let fresh: VecDeque<(i64, u32)> = fresh.into_iter().map(|(_, id, attempts)| (id, attempts)).collect();
        let on_disk = on_disk.into_iter().map(|(_, id, attempts)| (id, attempts)).collect();
        journal.reset_to_pending(&reset)?;
        let mut governor = Governor::new(cfg.egresses.clone(), cfg.throttle.clone());
        let (now, now_ms) = (Instant::now(), journal::now_ms());
        for (egress, until_ms, cooloff_ms) in journal.egress_states()? {
            if let Some(until_ms) = until_ms.filter(|u| *u > now_ms) {
                let until = now + Duration::from_millis((until_ms - now_ms) as u64);
                governor.restore(&egress, until, Duration::from_millis(cooloff_ms.max(0) as u64));
            }
        }
        Ok(Scheduler {
            journal,
            out,
            url_template: cfg.url_template.clone(),
            engine,
            run_id,
            jobs: cfg.jobs,
            policy: cfg.retry,
            have_cookies,
            stop,
            halt: tokio::sync::watch::channel(false).0,
            queue: VecDeque::new(),
            fresh,
            on_disk,
            plan_is_journal,
            delayed: Vec::new(),
            tries: HashMap::new(),
            outages: OutageBook::default(),
            summary,
            governor,
            max_wait: cfg.max_wait,
            youtube: cfg.source != Source::Mirror,
        })
    }

    pub async fn run(mut self, reporter: &mut dyn Reporter) -> anyhow::Result<Summary> {
        let started = Instant::now();
        reporter.begin(self.summary.planned, self.summary.already_done + self.summary.already_failed);
        self.adopt_finished_files(reporter).await?;
        if !self.youtube {
            self.summary.pending += (self.queue.len() + self.fresh.len()) as u64;
            self.queue.clear();
            self.fresh.clear();
        }
        let mut running: JoinSet<(Work, Outcome, i64, usize, bool)> = JoinSet::new();
        let mut stop = self.stop.clone();
        let halt = self.halt.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            if *stop.borrow() && !*halt.borrow() {
                self.halt.send_replace(true);
            }
            let stopping = *halt.borrow();
            let mut wake = self.next_retry();
            while !stopping && running.len() < self.jobs && self.has_ready_work() {
                let now = Instant::now();
                let (index, probe) = match self.governor.pick_where(now, |lane| self.has_ready_work_for(lane)) {
                    Pick::Lane { index, probe } => (index, probe),
                    Pick::Wait { until } => {
                        wake = min_instant(wake, until);
                        break;
                    }
                };
                let Some(work) = self.next_ready_for(index)? else { break };
                self.governor.started(index, probe, now);
                let engine = self.engine.clone();
                let stop = self.halt.subscribe();
                running.spawn(async move {
                    let started_ms = journal::now_ms();
                    let outcome = engine.run(&work.task, index, stop).await;
                    (work, outcome, started_ms, index, probe)
                });
            }
            if running.is_empty()
                && (stopping || (self.queue.is_empty() && self.fresh.is_empty() && self.delayed.is_empty()))
            {
                break;
            }
            if running.is_empty() && self.all_cooling_too_long()? {
                break;
            }
            reporter.waiting(self.governor.status_line(Instant::now()));
            let wake = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(joined) = running.join_next() => {
                    let (work, outcome, started_ms, lane, probe) = joined?;
                    self.record(work, outcome, started_ms, lane, probe, reporter)?;
                }
                _ = tokio::time::sleep_until(wake.into()), if running.len() < self.jobs && !stopping => {}
                _ = stop.changed(), if !stopping => {}
                _ = tick.tick() => reporter.tick(),
            }
        }
        self.save_breakers()?;
        self.summary.wasted_requests = self.governor.wasted();
        self.summary.cooling = self.governor.cooled();
        self.summary.down_time = self.governor.down_time(Instant::now());
        self.summary.outages = self.journal.outages()?.iter().filter(|o| o.run_id == Some(self.run_id)).count() as u64;
        reporter.end();
        self.summary.interrupted = *self.stop.borrow() && self.summary.environment.is_none();
        self.summary.elapsed = started.elapsed();
        self.summary.pending += (self.queue.len() + self.fresh.len() + self.delayed.len()) as u64;
        self.summary.exit_code = self.summary.decide_exit_code();
        Ok(self.summary)
    }

    /// The next clip whose retry delay is over and that may go through `lane`.
    fn next_ready_for(&mut self, lane: usize) -> anyhow::Result<Option<Work>> {
        let now = Instant::now();
        if let Some(i) = self.delayed.iter().position(|(t, w)| *t <= now && w.allows(lane)) {
            return Ok(Some(self.delayed.swap_remove(i).1));
        }
        if let Some(i) = self.queue.iter().position(|w| w.allows(lane)) {
            return Ok(self.queue.remove(i));
        }
        match self.fresh.pop_front() {
            Some((id, attempts)) => self.work(id, attempts).map(Some),
            None => Ok(None),
        }
    }

    fn has_ready_work(&self) -> bool {
        let now = Instant::now();
        !self.queue.is_empty() || !self.fresh.is_empty() || self.delayed.iter().any(|(t, _)| *t <= now)
    }

    fn has_ready_work_for(&self, lane: usize) -> bool {
        let now = Instant::now();
        self.queue.iter().any(|w| w.allows(lane))
            || !self.fresh.is_empty()
            || self.delayed.iter().any(|(t, w)| *t <= now && w.allows(lane))
    }

    /// When the earliest delayed retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.delayed.iter().map(|(t, _)| *t).min()
    }

    /// Every egress is cooling and the first reopens later than `--max-wait`: the run ends here, and says
    /// when a rerun will find an egress open again.
    fn all_cooling_too_long(&mut self) -> anyhow::Result<bool> {
        let now = Instant::now();
        let Some(until) = self.governor.all_cooling_until(now) else { return Ok(false) };
        let wait = until.saturating_duration_since(now);
        if wait <= self.max_wait {
            return Ok(false);
        }
        let at = std::time::SystemTime::now() + wait;
        self.summary.resume_after = Some(humantime::format_rfc3339_seconds(at).to_string());
        self.summary.network_down = self.governor.network_down();
        Ok(true)
    }

    /// Writes each egress's breaker to the journal, so that a rerun before a cool-off ends does not hammer.
    fn save_breakers(&mut self) -> anyhow::Result<()> {
        let (now, now_ms) = (Instant::now(), journal::now_ms());
        for (egress, until, cooloff) in self.governor.breakers() {
            let until = until.map(|u| now_ms + u.saturating_duration_since(now).as_millis() as i64);
            self.journal.save_egress(egress, until, cooloff.as_millis() as i64)?;
        }
        Ok(())
    }

    /// The governor hears how a job of clip `clip_id` through `lane` ended; an outage that this opens or ends
    /// is journaled.
    fn finished(&mut self, lane: usize, probe: bool, finish: Finish, clip_id: i64) -> anyhow::Result<Option<Opened>> {
        let opened = self.governor.finished(lane, probe, finish, Instant::now());
        let (journal, run_id) = (&mut *self.journal, self.run_id);
        self.outages.after_finish(journal, run_id, &self.governor, lane, probe, finish, opened.is_some(), clip_id)?;
        Ok(opened)
    }

    /// Records one finished attempt: the governor hears how the egress fared, a failure gets its verdict
    /// from [`retry::verdict`], and [`Scheduler::apply`] carries that out.
    fn record(
        &mut self,
        work: Work,
        outcome: Outcome,
        started_ms: i64,
        lane: usize,
        probe: bool,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let egress = self.governor.egress_name(lane).to_string();
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
                self.summary.pending += 1;
                return Ok(());
            }
            Outcome::Done(done) => {
                self.finished(lane, probe, Finish::Served, clip_id)?;
                self.journal.record_done(clip_id, &done)?;
                attempt.bytes_fetched = done.bytes_fetched;
                attempt.download_s = done.download_s;
                attempt.encode_s = done.encode_s;
                self.journal.record_attempt(&attempt)?;
                self.summary.add_done(&done);
                reporter.event(Event::Done { id: &work.id, bytes: done.bytes_fetched });
                return Ok(());
            }
            Outcome::Failed { failure, bytes_fetched, download_s, throttled_requests, retry_after } => {
                (failure, bytes_fetched, download_s, throttled_requests, retry_after)
            }
        };
        let category = failure.category;
        self.summary.bytes_fetched += bytes_fetched;
        let down_after = self.governor.policy.down_after;
        let unreachable = self.outages.is_unreachable(clip_id, category, &failure.stderr_tail, down_after);
        let finish = match category.disposition() {
            Disposition::Throttle => Finish::Throttled { requests: throttled_requests, retry_after },
            Disposition::Environment => Finish::Unknown,
            _ if unreachable => Finish::Unreachable,
            _ => Finish::Served,
        };
        let opened = self.finished(lane, probe, finish, clip_id)?;
        let context = retry::Context {
            tries: self.tries.get(&clip_id).copied().unwrap_or(0),
            have_cookies: self.have_cookies,
            breaker: self.governor.breaker_on(),
            egresses: self.governor.egress_count(),
            blocked_on: work.blocked_on.len(),
            unreachable,
        };
        let verdict = retry::verdict(category, &context, &self.policy, fastrand::f64());
        attempt.category = Some(category.as_str());
        attempt.message = Some(&failure.message);
        attempt.bytes_fetched = bytes_fetched;
        attempt.download_s = download_s;
        let failed = FailedAttempt { failure: &failure, bytes_fetched, throttled_requests, lane, opened, unreachable };
        self.apply(verdict, work, failed, attempt, reporter)
    }

    /// Carries out a failure's verdict: the journal, the summary, the reporter and the queues.
    fn apply(
        &mut self,
        verdict: Verdict,
        mut work: Work,
        failed: FailedAttempt<'_>,
        mut attempt: Attempt<'_>,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let FailedAttempt { failure, bytes_fetched, throttled_requests, lane, opened, unreachable } = failed;
        let category = failure.category;
        let egress = attempt.egress;
        let throttle = category.disposition() == Disposition::Throttle;
        if verdict.counts_attempt() {
            *self.tries.entry(work.task.clip_id).or_default() += 1;
            work.attempts += 1;
        }
        let (state, next) = match verdict {
            Verdict::GiveBack => {
                // A signal about the egress, not the video: back to pending, attempts untouched.
                let signal = if unreachable { EGRESS_DOWN } else { category.as_str() };
                self.journal.record_throttle(
                    self.run_id,
                    egress,
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
                    self.save_breakers()?;
                }
                attempt.outcome = "throttled";
                attempt.message = None;
                self.journal.record_attempt(&attempt)?;
                self.queue.push_front(work);
                return Ok(());
            }
            Verdict::Reroute => {
                work.blocked_on.push(lane);
                attempt.outcome = "rerouted";
                self.journal.record_attempt(&attempt)?;
                self.queue.push_front(work);
                return Ok(());
            }
            Verdict::Halt => (State::Pending, None),
            Verdict::Retry { after } => (State::Pending, Some(after)),
            Verdict::Fail { .. } => (State::Failed, None),
        };
        self.journal.record_failure(
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
        self.journal.record_attempt(&attempt)?;
        if verdict == Verdict::Halt {
            if self.summary.environment.is_none() {
                self.summary.environment = Some(failure.message.clone());
                reporter.note(&format!("error: {}; stopping (no clip is marked failed for this)", failure.message));
            }
            // Ends every running child; their clips stay pending.
            self.summary.pending += 1;
            self.halt.send_replace(true);
            return Ok(());
        }
        if throttle {
            // With `--no-breaker` a throttle signal is an ordinary retryable failure, still on record.
            self.journal.record_throttle(self.run_id, egress, category.as_str(), None, throttled_requests)?;
            self.summary.throttle_events += 1;
        }
        match verdict {
            Verdict::Retry { after } => {
                reporter.event(Event::Retrying { id: &work.id, category: category.as_str(), after });
                self.delayed.push((Instant::now() + after, work));
            }
            Verdict::Fail { permanent } => {
                if !permanent {
                    self.summary.retryable_failed += 1;
                }
                *self.summary.failed.entry(category.as_str().to_string()).or_default() += 1;
                reporter.event(Event::Failed { id: &work.id, category: category.as_str(), message: &failure.message });
            }
            Verdict::GiveBack | Verdict::Reroute | Verdict::Halt => {}
        }
        Ok(())
    }

    /// A clip that reached its final name before a crash is adopted once verified, not fetched again.
    async fn adopt_finished_files(&mut self, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let mut stop = self.stop.clone();
        for (id, attempts) in std::mem::take(&mut self.on_disk) {
            let work = self.work(id, attempts)?;
            match self.engine.adopt(&work.task, &mut stop).await {
                Some(done) => {
                    self.journal.record_done(work.task.clip_id, &done)?;
                    self.summary.adopted += 1;
                    reporter.event(Event::Adopted { id: &work.id });
                }
                None => {
                    tracing::warn!(path = %work.task.dest.display(), "a clip on disk failed verification: fetching it again");
                    let _ = std::fs::remove_file(&work.task.dest);
                    self.queue.push_back(work);
                }
            }
        }
        Ok(())
    }

    /// The task of a clip about to start, from the journal.
    fn work(&self, clip_id: i64, attempts: u32) -> anyhow::Result<Work> {
        let (key, rel_path) = self.journal.clip_task(clip_id)?;
        let task = Task {
            clip_id,
            url: self.url_template.replace(crate::config::ID_PLACEHOLDER, &key.youtube_id),
            start: key.start_ms as f64 / 1000.0,
            end: key.end_ms as f64 / 1000.0,
            dest: self.out.clip_path(&rel_path)?,
        };
        Ok(Work { task, id: key.youtube_id, attempts, blocked_on: vec![] })
    }

    /// The journal's clips are the plan's, in plan order (a rerun of the same plan may then skip planning).
    pub fn plan_is_journal(&self) -> bool {
        self.plan_is_journal
    }

    /// The journal this run records into.
    pub fn journal(&mut self) -> &mut Journal {
        self.journal
    }
}

/// Whether clip files exist, asking about a file only when its folder exists (a first run's folders do not,
/// and 650,000 failed lookups cost more than the 2,000 of their folders).
#[derive(Default)]
struct DirCache {
    dirs: HashMap<String, bool>,
}

impl DirCache {
    fn is_file(&mut self, out: &OutDir, rel: &Path) -> anyhow::Result<bool> {
        let dest = out.clip_path(rel)?;
        let parent = rel.parent().and_then(Path::to_str).unwrap_or("");
        let exists = match self.dirs.get(parent) {
            Some(&e) => e,
            None => {
                let e = dest.parent().is_some_and(Path::is_dir);
                self.dirs.insert(parent.to_owned(), e);
                e
            }
        };
        Ok(exists && dest.is_file())
    }
}
