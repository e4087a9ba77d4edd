//! The store of a run on one machine: the SQLite journal knows every clip's state, and this keeps the clips
//! of the run in memory (fresh ones in plan order, given-back ones first, retries waiting out their delay).

use super::clip::Engine;
use super::store::{Drained, Settled, Store, Take, Work};
use crate::classify::Category;
use crate::config::{Config, Source};
use crate::governor::Governor;
use crate::journal::{self, Journal, State};
use crate::outdir::{DirCache, OutDir};
use crate::plan::{Job, KeyIndex, Plan};
use crate::progress::{Event, Reporter};
use crate::summary::Summary;
use crate::tools::process::StopSignal;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The clips a run works on.
pub enum Scope<'p> {
    /// The clips of this plan (already synced into the journal), in plan order.
    Plan(&'p Plan),
    /// Every clip of the journal, in id order: the journal holds exactly the plan, which did not change
    /// (`planned` is its size).
    Journal { planned: u64 },
    /// The clips of this plan, just imported into an empty journal ([`Journal::sync`]): pending, with
    /// consecutive ids from `first_id` in plan order. Nothing to read back from the journal.
    Imported { plan: &'p Plan, first_id: i64 },
}

pub struct JournalStore<'a> {
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
    /// For checking the clips on disk.
    engine: Arc<Engine>,
    stop: StopSignal,
    /// Clips given back or put first, before the fresh ones.
    queue: VecDeque<Work<()>>,
    /// Clips waiting out a retry delay.
    delayed: Vec<(Instant, Work<()>)>,
    /// The totals found in the journal, for the summary.
    found: Summary,
    /// `--source mirror` fetches nothing from YouTube: what the mirror phase left is pending.
    youtube: bool,
}

/// The clips a run starts from, as [`JournalStore::new`] finds them: (clip id, attempts) in plan order.
struct Queue {
    fresh: VecDeque<(i64, u32)>,
    on_disk: Vec<(i64, u32)>,
    plan_is_journal: bool,
    found: Summary,
}

impl<'a> JournalStore<'a> {
    /// The clips of `scope`: read from the journal, where those to run now (failed ones whose category is
    /// retried, done ones whose file is missing) go back to pending, or taken from a plan just imported.
    pub fn new(
        cfg: &Config,
        out: &'a OutDir,
        journal: &'a mut Journal,
        engine: Arc<Engine>,
        scope: Scope<'_>,
        stop: StopSignal,
    ) -> anyhow::Result<JournalStore<'a>> {
        let Queue { fresh, on_disk, plan_is_journal, found } = match scope {
            Scope::Plan(plan) => Self::read_back(cfg, out, journal, Some(plan), plan.jobs.len() as u64)?,
            Scope::Journal { planned } => Self::read_back(cfg, out, journal, None, planned)?,
            Scope::Imported { plan, first_id } => Self::imported(out, plan, first_id)?,
        };
        Ok(JournalStore {
            journal,
            out,
            url_template: cfg.url_template.clone(),
            fresh,
            on_disk,
            plan_is_journal,
            engine,
            stop,
            queue: VecDeque::new(),
            delayed: Vec::new(),
            found,
            youtube: cfg.source != Source::Mirror,
        })
    }

    /// The journal's clips (of `plan` when given, of `planned` in all), in plan order.
    fn read_back(
        cfg: &Config,
        out: &OutDir,
        journal: &mut Journal,
        plan: Option<&Plan>,
        planned: u64,
    ) -> anyhow::Result<Queue> {
        let have_cookies = cfg.have_cookies;
        let mut summary = Summary { planned, ..Summary::default() };
        // The plan's clips by key, for picking them out of the journal (`None`: every journaled clip).
        let index: Option<(&[Job], KeyIndex)> = plan.map(|plan| (&plan.jobs[..], KeyIndex::of(&plan.jobs)));
        // (position in the plan, clip id, attempts) of the clips to run, and those already on disk.
        let mut fresh: Vec<(u32, i64, u32)> = Vec::new();
        let mut on_disk = Vec::new();
        let mut reset = Vec::new();
        let (mut seen, mut last_pos, mut in_order) = (0u64, None, true);
        let mut dirs = DirCache::default();
        journal.for_each_clip_state(|rec| {
            let pos = match &index {
                Some((jobs, index)) => match index.get(jobs, (rec.youtube_id, rec.start_ms, rec.end_ms)) {
                    Some(pos) => pos,
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
                State::Done if dirs.is_file(out.root(), checked(rel)?) => {
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
            if run && rec.state != State::Done && dirs.is_file(out.root(), checked(rel)?) {
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
        Ok(Queue { fresh, on_disk, plan_is_journal, found: summary })
    }

    /// A plan just imported into an empty journal: every clip runs, in plan order, without reading the
    /// 650,000 rows just written back. A file already at a clip's path (the folder of a lost journal) is
    /// checked before anything is fetched, as on any run.
    fn imported(out: &OutDir, plan: &Plan, first_id: i64) -> anyhow::Result<Queue> {
        let mut dirs = DirCache::default();
        let (mut fresh, mut on_disk) = (VecDeque::with_capacity(plan.jobs.len()), Vec::new());
        for (id, job) in (first_id..).zip(&plan.jobs) {
            match dirs.is_file(out.root(), checked(&job.rel_path)?) {
                true => on_disk.push((id, 0)),
                false => fresh.push_back((id, 0)),
            }
        }
        let found = Summary { planned: plan.jobs.len() as u64, ..Summary::default() };
        Ok(Queue { fresh, on_disk, plan_is_journal: true, found })
    }

    /// The journal's clips are the plan's, in plan order (a rerun of the same plan may then skip planning).
    pub fn plan_is_journal(&self) -> bool {
        self.plan_is_journal
    }

    /// The task of a clip about to start, from the journal.
    fn work(&self, clip_id: i64, attempts: u32) -> anyhow::Result<Work<()>> {
        let (key, rel_path) = self.journal.clip_task(clip_id)?;
        let task = super::clip::Task {
            clip_id,
            url: self.url_template.replace(crate::config::ID_PLACEHOLDER, &key.youtube_id),
            start: key.start_ms as f64 / 1000.0,
            end: key.end_ms as f64 / 1000.0,
            dest: self.out.clip_path(&rel_path)?,
            probe: false,
            demand: None,
        };
        Ok(Work { task, id: key.youtube_id, attempts, tries: 0, blocked_on: vec![], claim: () })
    }

    /// A clip that reached its final name before a crash is adopted once verified, not fetched again.
    async fn adopt_finished_files(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let mut stop = self.stop.clone();
        for (id, attempts) in std::mem::take(&mut self.on_disk) {
            let work = self.work(id, attempts)?;
            match self.engine.adopt(&work.task, &mut stop).await {
                Some(done) => {
                    self.journal.record_done(work.task.clip_id, &done)?;
                    summary.adopted += 1;
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
}

impl Store for JournalStore<'_> {
    type Claim = ();

    const HALT_NOTE: &'static str = "stopping (no clip is marked failed for this)";

    const ROUTES_BY_REGION: bool = false;

    fn journal(&mut self) -> &mut Journal {
        self.journal
    }

    fn load_breakers(&mut self, governor: &mut Governor) -> anyhow::Result<()> {
        let (now, now_ms) = (Instant::now(), journal::now_ms());
        for (egress, until_ms, cooloff_ms) in self.journal.egress_states()? {
            if let Some(until_ms) = until_ms.filter(|u| *u > now_ms) {
                let until = now + Duration::from_millis((until_ms - now_ms) as u64);
                governor.restore(&egress, until, Duration::from_millis(cooloff_ms.max(0) as u64));
            }
        }
        super::store::load_rates(self.journal, governor)
    }

    /// Writes each egress's breaker and learned rate to the journal, so that a rerun before a cool-off ends
    /// does not hammer, and starts from the rate the host tolerated.
    fn save_breakers(&mut self, governor: &Governor) -> anyhow::Result<()> {
        let (now, now_ms) = (Instant::now(), journal::now_ms());
        for (egress, until, cooloff) in governor.breakers() {
            let until = until.map(|u| now_ms + u.saturating_duration_since(now).as_millis() as i64);
            self.journal.save_egress(egress, until, cooloff.as_millis() as i64)?;
        }
        super::store::save_rates(self.journal, governor)
    }

    async fn begin(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        *summary = std::mem::take(&mut self.found);
        reporter.begin(summary.planned, summary.already_done + summary.already_failed);
        self.adopt_finished_files(summary, reporter).await?;
        if !self.youtube {
            summary.pending += (self.queue.len() + self.fresh.len()) as u64;
            self.queue.clear();
            self.fresh.clear();
        }
        Ok(())
    }

    async fn tend(&mut self, _: &mut Summary, _: &mut dyn Reporter) -> anyhow::Result<Option<Instant>> {
        Ok(None)
    }

    fn ready(&self) -> bool {
        let now = Instant::now();
        !self.queue.is_empty() || !self.fresh.is_empty() || self.delayed.iter().any(|(t, _)| *t <= now)
    }

    fn ready_for(&self, lane: usize) -> bool {
        let now = Instant::now();
        self.queue.iter().any(|w| w.allows(lane))
            || !self.fresh.is_empty()
            || self.delayed.iter().any(|(t, w)| *t <= now && w.allows(lane))
    }

    fn next_due(&self) -> Option<Instant> {
        self.delayed.iter().map(|(t, _)| *t).min()
    }

    /// The next clip whose retry delay is over and that may go through `lane`.
    async fn take(
        &mut self,
        lane: usize,
        _probe: bool,
        _running: usize,
        _: &mut Summary,
        _: &mut dyn Reporter,
    ) -> anyhow::Result<Take<()>> {
        let now = Instant::now();
        let work = if let Some(i) = self.delayed.iter().position(|(t, w)| *t <= now && w.allows(lane)) {
            Some(self.delayed.swap_remove(i).1)
        } else if let Some(i) = self.queue.iter().position(|w| w.allows(lane)) {
            self.queue.remove(i)
        } else {
            match self.fresh.pop_front() {
                Some((id, attempts)) => Some(self.work(id, attempts)?),
                None => None,
            }
        };
        Ok(match work {
            Some(work) => Take::Work { work, alone: false },
            None => Take::Dry,
        })
    }

    async fn settle(
        &mut self,
        mut work: Work<()>,
        settled: Settled,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        match settled {
            Settled::Done(done) => {
                summary.add_done(&done);
                reporter.event(Event::Done { id: &work.id, bytes: done.bytes_fetched });
            }
            Settled::Cancelled | Settled::Halt => summary.pending += 1,
            Settled::GiveBack => self.queue.push_front(work),
            Settled::Reroute { lane, .. } => {
                work.blocked_on.push(lane);
                self.queue.push_front(work);
            }
            Settled::Retry { after, .. } => self.delayed.push((Instant::now() + after, work)),
            Settled::Fail { .. } => {}
        }
        Ok(())
    }

    async fn drained(&mut self, _dry: bool, _: &mut dyn Reporter) -> anyhow::Result<Drained> {
        Ok(if self.queue.is_empty() && self.fresh.is_empty() && self.delayed.is_empty() {
            Drained::Yes
        } else {
            Drained::No(None)
        })
    }

    async fn end(&mut self, summary: &mut Summary, _: &mut dyn Reporter) -> anyhow::Result<()> {
        summary.pending += (self.queue.len() + self.fresh.len() + self.delayed.len()) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod queue_tests;

/// `rel`, once it is known to stay inside OUT.
fn checked(rel: &Path) -> anyhow::Result<&Path> {
    crate::outdir::check_inside(rel)?;
    Ok(rel)
}
