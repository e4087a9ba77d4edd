//! A fleet worker's store (`download --db URL --fleet NAME`): the clips come from the fleet's PostgreSQL
//! database a few at a time, each held as a lease kept alive by heartbeat, and go back with a fenced update.
//! The run loop is the single machine's (`scheduler.rs`), which judges every outcome and writes the local
//! journal; this store adds what the fleet shares: leases, the throttle domain's breaker and pace, geo-blocked
//! clips routed to other regions, and the outbox that keeps reports while the database is away.

use super::clip::Task;
use super::store::{Drained, Heard, Settled, Store, Take, Work};
use crate::config::{Config, FleetOptions};
use crate::fleet::{Claimed, Db, Left};
use crate::governor::Policy;
use crate::journal::Journal;
use crate::outdir::OutDir;
use crate::progress::Reporter;
use crate::summary::Summary;
use report::{Offline, Report};
use std::collections::HashMap;
use std::time::{Duration, Instant};

mod outbox;
mod report;

/// How often a worker with nothing to claim asks again (others' leases may expire, retries come due).
const IDLE_POLL: Duration = Duration::from_millis(1000);

/// How many leases long a worker waits for a fleet that has never had a clip to be seeded (by a worker that
/// brings the annotations, starting at the same time) before it stops with a usage error.
const EMPTY_FLEET_LEASES: u32 = 2;

/// What a running clip holds in the fleet.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    key: String,
    token: i64,
    /// This clip is the throttle domain's one probe.
    domain_probe: bool,
}

pub(super) struct FleetStore<'a> {
    db: Db,
    opts: FleetOptions,
    id: String,
    /// The shared throttle domain (`--throttle-domain`), if any.
    domain: Option<String>,
    journal: &'a mut Journal,
    out: &'a OutDir,
    url_template: String,
    /// Leases held: clip key → token.
    held: HashMap<String, i64>,
    cooldown: Duration,
    /// The shared domain's time between two clip starts (`--rate` with `--throttle-domain`).
    pace: Option<Duration>,
    /// The domain start slot this worker reserved and waits for.
    slot_at: Option<Instant>,
    /// Reports for the fleet made while its database was away, oldest first.
    outbox: std::collections::VecDeque<Report>,
    /// Set while the database is away: no claims, outcomes wait in the outbox.
    offline: Option<Offline>,
    /// How often leases are extended, and when next.
    beat_every: Duration,
    next_beat: Instant,
    /// The shared domain's learned rate: when it is read next, and since when each egress's rate grows
    /// as the domain's last reading set it (a rate that grows since another time was cut here).
    next_rate_read: Instant,
    rates_applied: HashMap<String, Instant>,
    /// The domain's live workers at the last reading, among whom its rate is shared.
    domain_workers: u64,
    /// Since when this worker has found the fleet without a single clip ([`EMPTY_FLEET_LEASES`]).
    empty_since: Option<Instant>,
}

impl<'a> FleetStore<'a> {
    /// Joins the fleet: registers the worker and its throttle domain.
    pub(super) async fn new(
        cfg: &Config,
        db: Db,
        out: &'a OutDir,
        journal: &'a mut Journal,
    ) -> anyhow::Result<FleetStore<'a>> {
        let opts = cfg.fleet.clone().expect("a fleet run has fleet options");
        let host = host_name();
        let id = format!("{host}-{}-{:06x}", std::process::id(), fastrand::u32(..0x100_0000));
        let domain_name = opts.domain.clone().unwrap_or_else(|| format!("{host}:{}", egress_names(cfg)));
        db.register_worker(&id, &host, &opts.region, &domain_name).await?;
        let domain = opts.domain.clone();
        // A shared domain is paced as one (`--rate` for the whole domain, one row), not per worker.
        let pace = match &domain {
            Some(_) => cfg.throttle.rate_per_hour.map(|r| Duration::from_secs_f64(3600.0 / r)),
            None => None,
        };
        if let Some(d) = &domain {
            db.add_domain(d, cfg.throttle.cooldown, cfg.throttle.cooldown_cap).await?;
        }
        tracing::info!(worker = %id, fleet = %db.fleet, domain = %domain_name, "joined the fleet");
        let beat_every = (opts.lease / 10).clamp(Duration::from_millis(250), Duration::from_secs(30));
        Ok(FleetStore {
            db,
            opts,
            id,
            domain,
            journal,
            out,
            url_template: cfg.url_template.clone(),
            held: HashMap::new(),
            cooldown: cfg.throttle.cooldown,
            pace,
            slot_at: None,
            outbox: Default::default(),
            offline: None,
            beat_every,
            next_beat: Instant::now(),
            next_rate_read: Instant::now(),
            rates_applied: HashMap::new(),
            domain_workers: 1,
            empty_since: None,
        })
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
        // Leases the fleet gives this worker that it does not know of: a claim that committed as the
        // connection died, before its clips reached the worker. The heartbeat would renew them for ever, and
        // no worker would make those clips; they go back uncharged. (A report waiting in the outbox still
        // holds its lease: it is delivered, not released.)
        let waiting: std::collections::HashSet<&str> = self.outbox.iter().map(Report::key).collect();
        let unknown: Vec<(String, i64)> =
            held.into_iter().filter(|(k, _)| !self.held.contains_key(k) && !waiting.contains(k.as_str())).collect();
        for (key, token) in unknown {
            let released = self.db.release(&key, token).await;
            if self.online(released, reporter)? == Some(true) {
                tracing::info!(clip = %key, "a lease this worker never learned of (its claim's answer was lost) went back");
            }
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
            probe: false,
            demand: None,
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
}

impl Store for FleetStore<'_> {
    type Claim = Lease;

    const HALT_NOTE: &'static str = "stopping and giving back this worker's clips (none is marked failed for this)";

    const ROUTES_BY_REGION: bool = true;

    fn journal(&mut self) -> &mut Journal {
        self.journal
    }

    /// A shared domain's pace is the domain's (one row for every worker in it), not this process's.
    fn policy(&self, mut policy: Policy) -> Policy {
        if self.domain.is_some() {
            policy.rate_per_hour = None;
        }
        policy
    }

    /// The breakers are the fleet's (a shared domain's row) or this run's. The learned request rates are
    /// kept per egress in the worker's journal too; a shared domain's come from its row instead
    /// ([`Store::share_rates`]).
    fn load_breakers(&mut self, governor: &mut crate::governor::Governor) -> anyhow::Result<()> {
        match self.domain {
            Some(_) => Ok(()),
            None => super::store::load_rates(self.journal, governor),
        }
    }

    /// A shared domain's learned rate lives in its row, beside its breaker: the rate of all its workers
    /// together, each pacing every request of its own in-process at its share (the rate over the domain's
    /// live workers and this worker's egresses), read again every heartbeat. A ban that cuts this worker's
    /// rate tells the domain at once what the domain should send (this worker's new rate times the
    /// domain's workers and egresses: the host answered all of them); the domain keeps the lowest answer,
    /// so workers meeting one ban cut it once.
    async fn share_rates(
        &mut self,
        governor: &mut crate::governor::Governor,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let Some(domain) = self.domain.clone() else { return Ok(()) };
        if self.offline.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        let egresses = governor.rate_bases().count().max(1) as f64;
        let cut = governor
            .rate_bases()
            .filter_map(|(e, b)| b.filter(|(_, since)| self.rates_applied.get(e) != Some(since)))
            .map(|(per_min, _)| per_min)
            .reduce(f64::min);
        if cut.is_none() && now < self.next_rate_read {
            return Ok(());
        }
        if let Some(per_min) = cut {
            let whole = per_min * egresses * self.domain_workers.max(1) as f64;
            let growth = crate::governor::rate::GROWTH_PER_MIN;
            let answered = self.db.cut_domain_rate(&domain, whole, growth).await;
            if self.online(answered, reporter)? == Some(true) {
                tracing::info!(domain, per_min = whole, "a ban set the throttle domain's learned rate");
            }
        }
        let read = self.db.domain_rate(&domain).await;
        let Some(read) = self.online(read, reporter)?.flatten() else { return Ok(()) };
        self.next_rate_read = now + self.beat_every;
        self.domain_workers = read.live_workers.max(1);
        let (Some(per_min), Some(age_s)) = (read.per_min, read.age_s) else { return Ok(()) };
        let since = now.checked_sub(Duration::from_secs_f64(age_s.max(0.0))).unwrap_or(now);
        let share = per_min / (egresses * self.domain_workers as f64);
        let names: Vec<String> = governor.rate_bases().map(|(e, _)| e.to_string()).collect();
        for egress in names {
            governor.restore_rate(&egress, share, since);
            self.rates_applied.insert(egress, since);
        }
        Ok(())
    }

    fn save_breakers(&mut self, governor: &crate::governor::Governor) -> anyhow::Result<()> {
        super::store::save_rates(self.journal, governor)
    }

    async fn begin(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        let left = self.db.left().await?;
        summary.planned = left.total;
        summary.already_done = left.done;
        summary.already_failed = left.failed;
        reporter.begin(left.total, left.done + left.failed);
        Ok(())
    }

    /// Reconnects when the database is away (then delivers the outbox), and beats when due.
    async fn tend(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<Option<Instant>> {
        if self.try_reconnect(summary, reporter).await? {
            self.next_beat = Instant::now();
        }
        if self.offline.is_none() && Instant::now() >= self.next_beat {
            self.beat(reporter).await?;
            self.next_beat = Instant::now() + self.beat_every;
        }
        Ok(Some(self.offline.map_or(self.next_beat, |off| off.next_try)))
    }

    fn ready(&self) -> bool {
        self.offline.is_none()
    }

    fn ready_for(&self, _lane: usize) -> bool {
        true
    }

    /// Retry times are the database's: a clip due again is claimed like any other.
    fn next_due(&self) -> Option<Instant> {
        None
    }

    /// Claims one clip, when the shared domain admits a start and its pace allows one now.
    async fn take(
        &mut self,
        _lane: usize,
        probe: bool,
        running: usize,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<Take<Lease>> {
        let domain_probe = match self.domain_admits(running, reporter).await? {
            Admit::Yes => false,
            Admit::Probe => true,
            Admit::Wait(until) => return Ok(Take::Wait(Some(until))),
        };
        if let Some(until) = self.paced(reporter).await? {
            return Ok(Take::Wait(Some(until)));
        }
        let claimed = self.db.claim(&self.id, 1, self.opts.lease, &self.opts.region).await;
        let Some(mut claimed) = self.online(claimed, reporter)? else { return Ok(Take::Wait(None)) };
        let Some(claimed) = claimed.pop() else { return Ok(Take::Dry) };
        let task = self.task_for(&claimed)?;
        if !probe && !domain_probe {
            if let Some((sha256, done)) = self.made_here(&task)? {
                // Made in this folder by an earlier run whose report never reached the fleet (the worker was
                // killed while the database was away): completed from that copy, unfetched.
                tracing::info!(clip = %claimed.clip_key, "completed from the copy this folder already holds");
                let (key, token, youtube_id) = (claimed.clip_key, claimed.token, claimed.job.key.youtube_id);
                self.report(Report::Done { key, token, youtube_id, sha256, done }, summary, reporter).await?;
                return Ok(Take::Settled);
            }
        }
        self.held.insert(claimed.clip_key.clone(), claimed.token);
        let lease = Lease { key: claimed.clip_key, token: claimed.token, domain_probe };
        let id = claimed.job.key.youtube_id;
        let work =
            Work { task, id, attempts: claimed.attempts, tries: claimed.attempts, blocked_on: vec![], claim: lease };
        Ok(Take::Work { work, alone: domain_probe })
    }

    /// The shared domain's breaker: a throttle signal opens it, a probe that got through closes it.
    async fn heard(&mut self, work: &Work<Lease>, heard: Heard, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        match heard {
            Heard::Throttled => self.domain_throttled(reporter).await,
            Heard::Served => self.domain_served(work.claim.domain_probe, reporter).await,
        }
    }

    /// Tells the fleet (now, or from the outbox once the database is back).
    async fn settle(
        &mut self,
        work: Work<Lease>,
        settled: Settled,
        summary: &mut Summary,
        reporter: &mut dyn Reporter,
    ) -> anyhow::Result<()> {
        let Lease { key, token, .. } = work.claim;
        let token = self.held.remove(&key).unwrap_or(token);
        let youtube_id = work.id;
        let report = match settled {
            Settled::Done(done) => {
                let sha256 = sha256_file(&work.task.dest)?;
                self.journal.record_sha256(work.task.clip_id, Some(&sha256))?;
                Report::Done { key, token, youtube_id, sha256, done }
            }
            Settled::Cancelled | Settled::GiveBack | Settled::Halt => Report::GiveBack { key, token },
            // Blocked from this worker's region: the clip goes to the fleet's other regions before it fails.
            Settled::Reroute { message, .. } => Report::GeoBlocked { key, token, youtube_id, message },
            Settled::Retry { after, failure } => Report::Failed {
                key,
                token,
                retry_after: Some(after),
                category: failure.category,
                message: failure.message,
                bytes_fetched: failure.bytes_fetched,
            },
            Settled::Fail { failure } => Report::Failed {
                key,
                token,
                retry_after: None,
                category: failure.category,
                message: failure.message,
                bytes_fetched: failure.bytes_fetched,
            },
        };
        self.report(report, summary, reporter).await
    }

    /// Nothing to claim: over when nothing in the fleet is pending or leased; else asks again soon (others'
    /// leases may expire, retries come due).
    async fn drained(&mut self, dry: bool, reporter: &mut dyn Reporter) -> anyhow::Result<Drained> {
        if !dry {
            return Ok(Drained::No(None));
        }
        let left = self.db.left().await;
        let Some(left) = self.online(left, reporter)? else { return Ok(Drained::No(None)) };
        if left.total == 0 {
            // Never seeded: not a finished fleet but one whose seeding worker may still be starting (workers
            // started together, this one without the annotations). Waited for, then said.
            let wait = self.opts.lease * EMPTY_FLEET_LEASES;
            let since = *self.empty_since.get_or_insert_with(|| {
                let line = format!(
                    "fleet `{}` has no clips yet: waiting up to {} for a worker with the annotations to seed it",
                    self.db.fleet,
                    humantime::format_duration(wait)
                );
                tracing::info!("{line}");
                reporter.note(&line);
                Instant::now()
            });
            if since.elapsed() >= wait {
                return Err(crate::exit_codes::Usage(anyhow::anyhow!(
                    "fleet `{}` has no clips: give this worker the annotations (a dataset name or annotation \
                     files) to seed it, or check --fleet and --db",
                    self.db.fleet
                ))
                .into());
            }
            return Ok(Drained::No(Some(Instant::now() + IDLE_POLL)));
        }
        if left.pending == 0 && left.leased == 0 {
            return Ok(Drained::Yes);
        }
        let poll = IDLE_POLL.mul_f64(0.75 + 0.5 * fastrand::f64());
        Ok(Drained::No(Some(Instant::now() + poll)))
    }

    /// Delivers what the outbox holds if it can, gives back every lease still held, and counts what is left
    /// in the fleet.
    async fn end(&mut self, summary: &mut Summary, reporter: &mut dyn Reporter) -> anyhow::Result<()> {
        // Reports the database has not heard yet: one more try to deliver them before leaving.
        if let Some(off) = self.offline.as_mut() {
            off.next_try = Instant::now();
            let _ = self.try_reconnect(summary, reporter).await;
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
        summary.pending = left.pending + left.leased + self.outbox.len() as u64;
        Ok(())
    }

    async fn leave(&mut self, result: &anyhow::Result<()>, exit_code: i32) {
        let reason = match result {
            Err(e) => format!("error: {e:#}"),
            Ok(()) => format!("exit {exit_code}"),
        };
        let _ = self.db.stop_worker(&self.id, &reason).await;
    }
}

/// What the shared throttle domain says about starting a clip.
enum Admit {
    Yes,
    /// This worker won the probe: one clip, alone.
    Probe,
    Wait(Instant),
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
    Ok(crate::units::hex(&hasher.finalize()))
}
