//! A learned request rate per egress: additive increase, multiplicative decrease, on the rate of upstream
//! requests (yt-dlp's extraction and the relay's media requests alike), not only on the number of jobs.
//!
//! A ban is the host's answer to the rate it was asked at: the rate drops to [`DECREASE`] of the rate the
//! egress was actually sending at over the last [`WINDOW`], then grows by [`GROWTH_PER_MIN`] of that new
//! rate every minute while no signal comes. Requests go one interval apart (a pacer), not in bursts; an
//! egress that has not met a ban yet is paced only by the ceiling (`--rate`), if there is one.
//!
//! [`Gate`] is the shared, locked form every request of an egress waits on. It also holds requests while the
//! egress is banned (from the relay's first 429, or the breaker opening, until the breaker's probe gets
//! through), so that no clip already running sends into a ban; only the probe goes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// After a ban, the new rate is this fraction of the rate the egress was sending at.
pub const DECREASE: f64 = 0.5;
/// While no signal comes the rate grows, every minute, by this fraction of the rate the last ban left.
pub const GROWTH_PER_MIN: f64 = 0.1;
/// The rate never drops below three requests a minute: one interval must stay well inside ffmpeg's read
/// timeout (60 s) for a media request that waits its turn. A host that allows less is answered by the
/// breaker alone.
pub const MIN_PER_S: f64 = 0.05;
/// A 429 that an extraction met and that says no `Retry-After` (YouTube's watch page mostly says none) holds
/// its egress at least this long, for its yt-dlp workers too: the breaker hears of the ban only once yt-dlp has
/// failed the extraction, and opens it for its cool-off then (or lets it lapse, if the clip ended some other
/// way). Without it, other clips' requests went into the ban meanwhile.
pub const UNSAID_HOLD: Duration = Duration::from_secs(2);
/// The sending rate a ban is answered from is measured over this much time.
pub const WINDOW: Duration = Duration::from_secs(20);
/// ... and, while the egress is unpaced (no ban yet, no ceiling), over at least this much even when it began
/// more recently: a burst of a second or two (the first jobs' requests going out together) says how many
/// went at once, not a rate the egress could keep up, and half of it would still be several times what the
/// host allows. Once paced, requests go one interval apart and a second is enough.
///
/// A ban's `Retry-After` lengthens both (up to [`WINDOW`]): a host that counts requests over a window bans
/// until that window lets the address in again (a fixed window resets, the oldest request of a sliding one
/// falls out), so its window is at least as long as the `Retry-After` it sends, and the requests it counted
/// are those within that span, quiet time included. Measured over less, a burst that tripped a host counting
/// 12 requests in 30 s and banning for 20 s was learned as 72 requests a minute against the 24 it allows,
/// and the egress was banned twice more before its rate came down.
pub const MIN_SPAN: Duration = Duration::from_secs(5);
/// A ban that came after fewer requests than this within [`WINDOW`] says nothing about the rate (the
/// address may have been banned before it asked, or by someone else behind it): the rate stays as it was
/// and the breaker alone answers the ban. Without this, one 429 on a first request would measure a rate of
/// one request per window and pace the egress to the floor.
pub const MIN_EVIDENCE: usize = 4;
/// yt-dlp's extraction books this many requests until one through the egress says how many it made
/// ([`Gate::extracted`]; the API workers count them, the command line does not): the watch page and the
/// player request yt-dlp makes next on YouTube.
pub const EXTRACT_REQUESTS: u32 = 2;
/// The media requests a clip is expected to book: a header and a window per DASH track.
pub const MEDIA_REQUESTS: u32 = 4;
/// The requests a starting clip is expected to book ([`Gate::expect`]) until an extraction has said how many
/// it makes ([`Gate::clip_requests`]). `--rate` counts clips, so the ceiling on requests is `--rate` times
/// this.
pub const CLIP_REQUESTS: u32 = EXTRACT_REQUESTS + MEDIA_REQUESTS;
/// How long a request may wait for its egress (held while banned, or for its paced turn); past that the
/// clip is given back (nothing sent, no attempt charged) rather than keep ffmpeg waiting (its `-rw_timeout`
/// is 60 s).
pub const HOLD_BOUND: Duration = Duration::from_secs(45);

/// A new clip starts on an egress only if the requests the clips running there still need, with its own,
/// can all go within this much at the egress's rate (or nothing is owed and no request waits its turn):
/// well inside [`HOLD_BOUND`], so that none of them waits past it and sends its clip back.
pub const ROOM: Duration = Duration::from_secs(30);

/// The request ceiling `--rate` (clips an hour) allows, in requests a second.
pub fn ceiling_per_s(clips_per_hour: Option<f64>) -> Option<f64> {
    clips_per_hour.filter(|r| *r > 0.0).map(|r| r * f64::from(CLIP_REQUESTS) / 3600.0)
}

/// What a ban taught an egress ([`Aimd::cut`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    /// The new rate, requests a second.
    pub per_s: f64,
    /// It is [`DECREASE`] of the rate these requests went at (or of the rate allowed, if lower), over this
    /// span ([`Aimd::sending`]).
    pub sent: usize,
    pub over: Duration,
}

/// A booking of requests that go once something else is ready ([`Aimd::reserve_pending`]): an extraction
/// that had its turn and waits for a yt-dlp worker, then is in the worker's hands until its answer says how
/// many requests it made.
#[derive(Debug, Clone)]
struct Pending {
    /// When its requests were booked to go, in order; the first is the booking's key.
    times: Vec<Instant>,
    /// How many of them are counted as sent so far (the first `went` of `times`); fewer than all.
    went: usize,
}

/// The arithmetic, without locks or clocks of its own.
#[derive(Debug, Clone)]
pub struct Aimd {
    /// The rate the last ban (or the journal) left, and since when it grows; `None` before any ban.
    base: Option<(f64, Instant)>,
    ceiling: Option<f64>,
    /// When the requests booked within the last [`WINDOW`] go (in order), and the first one ever.
    sent: VecDeque<Instant>,
    /// Bookings not all of whose requests are known to have gone ([`Aimd::reserve_pending`]).
    pending: Vec<Pending>,
    first: Option<Instant>,
    /// When the egress last got out of a hold: the time before, when nothing could go, is not part of the
    /// rate it was sending at.
    resumed: Option<Instant>,
    /// The earliest time the next request may go.
    next: Option<Instant>,
}

impl Aimd {
    pub fn new(ceiling: Option<f64>) -> Aimd {
        let ceiling = ceiling.filter(|c| *c > 0.0);
        Aimd { base: None, ceiling, sent: VecDeque::new(), pending: Vec::new(), first: None, resumed: None, next: None }
    }

    /// [`Aimd::restore`], from `now`.
    pub fn restored(mut self, per_s: f64, now: Instant) -> Aimd {
        self.restore(per_s, now);
        self
    }

    /// The rate the last ban left (requests a second) and since when it grows; `None` before any ban.
    pub fn base(&self) -> Option<(f64, Instant)> {
        self.base
    }

    /// Takes a rate learned elsewhere (by an earlier run, or a throttle domain's share; requests a second),
    /// growing since `since` as if this egress had learned it then (capped by this run's ceiling, never under
    /// the floor).
    pub fn restore(&mut self, per_s: f64, since: Instant) {
        if per_s.is_finite() && per_s > 0.0 {
            self.base = Some((self.capped(per_s.max(MIN_PER_S)), since));
        }
    }

    fn capped(&self, r: f64) -> f64 {
        self.ceiling.map_or(r, |c| r.min(c))
    }

    /// The rate allowed at `now` in requests a second; `None` is unpaced.
    pub fn rate(&self, now: Instant) -> Option<f64> {
        match self.base {
            Some((r, since)) => {
                let minutes = now.saturating_duration_since(since).as_secs_f64() / 60.0;
                Some(self.capped(r + r * GROWTH_PER_MIN * minutes))
            }
            None => self.ceiling,
        }
    }

    /// The rate learned so far, for the journal and `status`: `None` before any ban.
    pub fn learned(&self, now: Instant) -> Option<f64> {
        self.base.and_then(|_| self.rate(now))
    }

    /// The requests that went over the last [`WINDOW`] (or since the first, or since the egress last got
    /// out of a hold, if sooner, but at least over a second, or [`MIN_SPAN`] while unpaced, or the ban's
    /// `Retry-After` if longer), and the rate that makes.
    pub fn sending(&self, now: Instant, retry_after: Option<Duration>) -> (usize, f64) {
        let (n, span) = self.sent_over(now, retry_after);
        (n, if span.is_zero() { 0.0 } else { n as f64 / span.as_secs_f64() })
    }

    /// [`Aimd::sending`]: how many went over what span.
    fn sent_over(&self, now: Instant, retry_after: Option<Duration>) -> (usize, Duration) {
        let Some(first) = self.first else { return (0, Duration::ZERO) };
        let since = self.resumed.map_or(first, |r| r.max(first));
        let least = if self.rate(now).is_none() { MIN_SPAN } else { Duration::from_secs(1) };
        let least = retry_after.map_or(least, |r| r.max(least)).min(WINDOW);
        let span = now.saturating_duration_since(since).clamp(least, WINDOW);
        let from = now.checked_sub(span).unwrap_or(first);
        (self.sent.iter().filter(|t| **t > from && **t <= now).count(), span)
    }

    /// A ban (whose 429 said `Retry-After`, if it did): the rate drops to [`DECREASE`] of the lower of the
    /// rate sent at and the rate allowed, and that is returned; `None` when too few requests went for the ban
    /// to say anything about the rate ([`MIN_EVIDENCE`]), which leaves the rate as it was.
    pub fn cut(&mut self, now: Instant, retry_after: Option<Duration>) -> Option<Cut> {
        let (n, over) = self.sent_over(now, retry_after);
        if n < MIN_EVIDENCE {
            return None;
        }
        let sent = n as f64 / over.as_secs_f64();
        let from = self.rate(now).map_or(sent, |r| r.min(sent));
        let new = self.capped((from * DECREASE).max(MIN_PER_S));
        self.base = Some((new, now));
        // Bookings made at the old rate are void: the next request waits one interval of the new rate.
        self.sent.retain(|t| *t <= now);
        // So are the unsent slots of pending bookings: a request that goes in one anyway is not counted.
        for p in &mut self.pending {
            p.times.retain(|t| *t <= now);
        }
        self.pending.retain(|p| p.went < p.times.len());
        self.next = Some(now + Duration::from_secs_f64(1.0 / new));
        Some(Cut { per_s: new, sent: n, over })
    }

    /// Takes back the requests of the booking of `booked` whose first went at `at` ([`Aimd::reserve`]) past
    /// the first `sent` of them: they were never sent (an extraction booked more than it made), and the rate
    /// sent at counts what went. A booking's requests lie side by side in the record, in order; the pacing
    /// keeps the time they took. A pending booking ([`Aimd::reserve_pending`]) is settled: its first `sent`
    /// count as sent, the rest never will.
    pub fn unbook(&mut self, at: Instant, booked: u32, sent: u32) {
        if let Some(i) = self.pending_at(at) {
            let Pending { times, went } = self.pending.swap_remove(i);
            let sent = (sent.min(booked) as usize).min(times.len());
            self.record(times.get(went..sent).unwrap_or_default().iter().copied());
            for t in times.get(sent..went).unwrap_or_default() {
                if let Some(j) = self.sent.iter().position(|s| s == t) {
                    self.sent.remove(j);
                }
            }
            return;
        }
        let Some(i) = self.sent.iter().position(|t| *t == at) else { return };
        let (from, to) = (i + sent as usize, (i + booked as usize).min(self.sent.len()));
        if from < to {
            self.sent.drain(from..to);
        }
    }

    /// The egress got out of a hold at `now`: the rate it sends at is measured from here.
    pub fn resume(&mut self, now: Instant) {
        self.resumed = Some(now);
    }

    /// When the next request would go if booked at `now`.
    pub fn next_at(&self, now: Instant) -> Instant {
        self.next.map_or(now, |n| n.max(now))
    }

    /// Books `n` requests (at least one): returns when the first may go (`now` or later); each goes one
    /// interval after the one before, and the next booking one interval after the last.
    pub fn reserve(&mut self, now: Instant, n: u32) -> Instant {
        self.book(now, n, false)
    }

    /// [`Aimd::reserve`], for requests that do not go at their turn but once something else is ready (an
    /// extraction, once a yt-dlp worker is free for it and has set up): paced as booked, each counts as sent
    /// once it goes ([`Aimd::went`]), or once it is known how many went ([`Aimd::unbook`], [`Aimd::settle`]).
    /// Counted from their turn, those of clips still waiting for a worker when a ban came made the rate it
    /// was cut from look higher than what the host saw, and the egress was banned again.
    pub fn reserve_pending(&mut self, now: Instant, n: u32) -> Instant {
        self.book(now, n, true)
    }

    /// [`Aimd::reserve_pending`] if `pending`, else [`Aimd::reserve`].
    pub fn book(&mut self, now: Instant, n: u32, pending: bool) -> Instant {
        let times = self.slots(now, n);
        let first = times[0];
        if pending {
            self.pending.push(Pending { times, went: 0 });
        } else {
            self.record(times);
        }
        self.forget(now);
        first
    }

    /// Where the pending booking whose first request was booked for `at` is in `pending`.
    fn pending_at(&self, at: Instant) -> Option<usize> {
        self.pending.iter().position(|p| p.times.first() == Some(&at))
    }

    /// One more request of the pending booking whose first was booked for `at` ([`Aimd::reserve_pending`])
    /// goes: it counts as sent, at the time it was booked for. Past what was booked, nothing more counts
    /// (as an extraction's answer counts no more than it booked, [`Aimd::unbook`]).
    pub fn went(&mut self, at: Instant) {
        let Some(i) = self.pending_at(at) else { return };
        let p = &mut self.pending[i];
        let Some(&t) = p.times.get(p.went) else { return };
        p.went += 1;
        if p.went == p.times.len() {
            self.pending.swap_remove(i);
        }
        self.record([t]);
    }

    /// The pending booking whose first was booked for `at` is over: what went of it ([`Aimd::went`]) is
    /// all that went.
    pub fn settle(&mut self, at: Instant) {
        if let Some(i) = self.pending_at(at) {
            self.pending.swap_remove(i);
        }
    }

    /// The times `n` requests (at least one) booked at `now` go at, the pace moved on past them.
    fn slots(&mut self, now: Instant, n: u32) -> Vec<Instant> {
        let mut at = self.next_at(now);
        self.first.get_or_insert(at);
        let mut times = Vec::with_capacity(n.max(1) as usize);
        for _ in 0..n.max(1) {
            times.push(at);
            if let Some(r) = self.rate(at) {
                at += Duration::from_secs_f64(1.0 / r);
                self.next = Some(at);
            }
        }
        times
    }

    /// Records requests as sent at `times` (in order), keeping the record in order.
    fn record(&mut self, times: impl IntoIterator<Item = Instant>) {
        for t in times {
            let i = self.sent.partition_point(|s| *s <= t);
            self.sent.insert(i, t);
        }
    }

    /// Drops what lies wholly past the last [`WINDOW`] before `now`: sent requests, and pending bookings
    /// that never went (their clip ended before it had a worker).
    fn forget(&mut self, now: Instant) {
        let old = |t: &Instant| now.saturating_duration_since(*t) > WINDOW;
        while self.sent.front().is_some_and(old) {
            self.sent.pop_front();
        }
        self.pending.retain(|p| !p.times.last().is_some_and(old));
    }
}

/// How often a held request looks again once the expected reopening has passed and the probe is out.
const PROBE_POLL: Duration = Duration::from_millis(100);

/// A request not let through in time: the egress stays banned (or its turn comes) this much later than the
/// wait's bound allows. Nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldTooLong(pub Duration);

#[derive(Debug)]
struct GateState {
    aimd: Aimd,
    /// Holding is on (breakers are: not `--no-breaker`).
    holds: bool,
    /// The egress is banned and expected to reopen then: requests wait, also past that time, until the
    /// probe has got through ([`Gate::reopened`]); only the probe goes first.
    held_until: Option<Instant>,
    /// The breaker opened: the hold lasts until the probe gets through. Otherwise it is the relay's own,
    /// from a 429 the breaker has not heard of yet, and lapses at `held_until`: a 429 whose clip ends some
    /// other way opens no breaker, and no probe would ever lift the hold.
    firm: bool,
    /// Requests waiting in the hold now.
    waiting: usize,
    /// Requests the clips running through the egress are expected to make and have not booked yet
    /// ([`Demand`]).
    owed: u32,
    /// The requests waiting in the hold go back at once ([`Gate::give_back_held`]), until none waits.
    give_back: bool,
    /// When the last throttle signal came back through this egress ([`Gate::throttled`]).
    met_at: Option<Instant>,
    /// When the probe's answer last lifted the hold ([`Gate::reopened`]).
    reopened_at: Option<Instant>,
    /// The `Retry-After` of the last 429 that said one: the span a ban's rate is measured over
    /// ([`MIN_SPAN`]).
    retry_after: Option<Duration>,
    /// The requests an extraction books: what the last one through the egress made, if it said
    /// ([`Gate::extracted`]).
    extract_requests: u32,
}

/// Holds `s` to `until` at least: the new end, if that pushed it later.
fn extend(s: &mut GateState, until: Instant) -> Option<Instant> {
    match s.held_until {
        Some(h) if h >= until => None,
        _ => {
            s.held_until = Some(until);
            Some(until)
        }
    }
}

/// The requests one running clip is still expected to make through its egress: counted in the gate's
/// `owed` from its start ([`Gate::expect`]), less each booking its requests make, and the rest given back
/// when the clip no longer needs any ([`Demand::release`], or when the last handle is dropped).
#[derive(Debug, Clone)]
pub struct Demand(Arc<DemandInner>);

#[derive(Debug)]
struct DemandInner {
    state: Arc<Mutex<GateState>>,
    left: Mutex<u32>,
}

impl DemandInner {
    /// Takes up to `n` of what is left (all of it with `u32::MAX`) off the gate's `owed`, within the gate's
    /// lock `s`.
    fn settle(&self, s: &mut GateState, n: u32) {
        let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = n.min(*left);
        *left -= taken;
        s.owed = s.owed.saturating_sub(taken);
    }
}

impl Demand {
    /// The clip needs no more requests (its media is fetched, or it ended): what it did not book is no
    /// longer owed.
    pub fn release(&self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.settle(&mut s, u32::MAX);
    }

    /// Requests still expected of this clip.
    pub fn left(&self) -> u32 {
        *self.0.left.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for DemandInner {
    fn drop(&mut self) {
        let state = self.state.clone();
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        self.settle(&mut s, u32::MAX);
    }
}

/// One egress's learned rate, shared by everything that sends through it. The breaker's probe holds a
/// handle of its own ([`Gate::for_probe`]): paced like the others, but never held, since it is the
/// request that ends the hold.
#[derive(Clone)]
pub struct Gate {
    state: Arc<Mutex<GateState>>,
    probe: bool,
    /// The clip whose requests go through this handle: their bookings are taken off what it owes.
    demand: Option<Demand>,
    /// Wakes the requests waiting in the hold when they are to go back ([`Gate::give_back_held`]), or when
    /// their clip met a throttle signal ([`Gate::clip_throttled`]).
    wake: Arc<tokio::sync::Notify>,
    /// A request of this handle's clip was answered with a throttle signal: the clip's other requests are
    /// not sent ([`Gate::clip_met`]). Each clip's handle ([`Gate::for_clip`]) has its own.
    clip_met: Arc<AtomicBool>,
    /// Told each time the hold is pushed later or lifted ([`Gate::watch_hold`]), shared by every handle.
    watch: Arc<std::sync::OnceLock<HoldWatch>>,
}

/// What is told of an egress's hold: the time it lasts to, or `None` once it is lifted.
pub type HoldWatch = Box<dyn Fn(Option<Instant>) + Send + Sync>;

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("state", &self.state)
            .field("probe", &self.probe)
            .field("demand", &self.demand)
            .field("clip_met", &self.clip_met)
            .field("watched", &self.watch.get().is_some())
            .finish()
    }
}

/// Counts a request into the hold and out again, whichever way its wait ends.
struct Waiting<'g>(&'g Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.waiting = s.waiting.saturating_sub(1);
            s.give_back &= s.waiting > 0;
        });
    }
}

impl Gate {
    /// `holds`: requests wait while the egress is banned (breakers on).
    pub fn new(aimd: Aimd, holds: bool) -> Gate {
        let state = GateState {
            aimd,
            holds,
            held_until: None,
            firm: false,
            waiting: 0,
            owed: 0,
            give_back: false,
            met_at: None,
            reopened_at: None,
            retry_after: None,
            extract_requests: EXTRACT_REQUESTS,
        };
        let wake = Arc::default();
        Gate {
            state: Arc::new(Mutex::new(state)),
            probe: false,
            demand: None,
            wake,
            clip_met: Arc::default(),
            watch: Arc::default(),
        }
    }

    /// From now on `f` is told each time the hold is pushed later (the time it lasts to) or lifted by the
    /// probe (`None`): an egress's yt-dlp workers read it before each request, so that an extraction let go
    /// before a ban began sends nothing into it (the gate has no say once it is in yt-dlp's hands). Once
    /// per gate; a second watcher is ignored.
    pub fn watch_hold(&self, f: HoldWatch) {
        let _ = self.watch.set(f);
    }

    fn tell(&self, hold: Option<Option<Instant>>) {
        if let (Some(hold), Some(watch)) = (hold, self.watch.get()) {
            watch(hold);
        }
    }

    /// The same egress's gate for the clip that probes it after a cool-off.
    pub fn for_probe(&self) -> Gate {
        Gate {
            state: self.state.clone(),
            probe: true,
            demand: self.demand.clone(),
            wake: self.wake.clone(),
            clip_met: self.clip_met.clone(),
            watch: self.watch.clone(),
        }
    }

    /// A clip starts through this egress expecting to make `n` requests: they are owed until booked or
    /// released, and a later clip starts only when the rate has room for them and its own ([`Gate::room_at`]).
    pub fn expect(&self, n: u32) -> Demand {
        self.with(|s| s.owed = s.owed.saturating_add(n));
        Demand(Arc::new(DemandInner { state: self.state.clone(), left: Mutex::new(n) }))
    }

    /// This gate, with the bookings of its requests taken off `demand` (the clip's).
    pub fn for_clip(&self, demand: Option<&Demand>) -> Gate {
        Gate {
            state: self.state.clone(),
            probe: self.probe,
            demand: demand.cloned(),
            wake: self.wake.clone(),
            clip_met: Arc::default(),
            watch: self.watch.clone(),
        }
    }

    /// An extraction through this egress, which booked `booked` requests, the first going at `at` (what
    /// [`Gate::wait`] returned), made `n` (yt-dlp in an API worker counts them): the next ones book as many,
    /// and a clip is expected to make that many and its media requests; what it booked and did not send is
    /// not part of the rate sent at ([`Aimd::unbook`]). Booking more than are sent leaves the host's budget
    /// unused: on a host whose watch page lists the formats (one request, not YouTube's two), each clip's
    /// spare booking held its egress a whole interval, a sixth of its rate; and counted as sent, the opening
    /// burst's spare bookings made the first ban's rate look a fifth higher than it was.
    pub fn extracted(&self, n: u32, booked: u32, at: Instant) {
        self.with(|s| {
            s.extract_requests = n.max(1);
            s.aimd.unbook(at, booked, n);
        });
    }

    /// `sent` of the `booked` requests whose first went at `at` ([`Gate::wait`] returned it) were sent: all of
    /// them (an extraction that did not count its requests), or fewer: none when a clip that waited for a
    /// yt-dlp worker after its turn found its egress held by then, or when the relay's request was not asked
    /// after all; those its worker sent before the egress was held. The others are not part of the rate sent
    /// at ([`Aimd::unbook`]); what an extraction makes is unchanged.
    pub fn sent(&self, booked: u32, sent: u32, at: Instant) {
        self.with(|s| s.aimd.unbook(at, booked, sent));
    }

    /// One more of the requests [`Gate::wait_pending`] let go at `at` goes now (its yt-dlp worker says so):
    /// it counts as sent. [`Gate::extracted`], [`Gate::sent`] or [`Gate::settle`] say how many went in all.
    pub fn went(&self, at: Instant) {
        self.with(|s| s.aimd.went(at));
    }

    /// The requests [`Gate::wait_pending`] let go at `at` are all told: those [`Gate::went`] said went.
    pub fn settle(&self, at: Instant) {
        self.with(|s| s.aimd.settle(at));
    }

    /// The requests an extraction through this egress books ([`Gate::extracted`]).
    pub fn extract_requests(&self) -> u32 {
        self.with(|s| s.extract_requests)
    }

    /// The requests a clip starting through this egress is expected to make.
    pub fn clip_requests(&self) -> u32 {
        self.extract_requests() + MEDIA_REQUESTS
    }

    /// Requests the clips running through the egress still owe.
    pub fn owed(&self) -> u32 {
        self.with(|s| s.owed)
    }

    /// When a new clip that will make `n` requests has room at the egress's rate: at once when unpaced; else
    /// once no request waits its turn, and, while running clips owe requests, once what is queued and owed
    /// with its own `n` can go within [`ROOM`]. Owed requests are booked by the clips in order, so the end of
    /// what is queued and owed stays put as they book: the time computed holds until a clip releases what it
    /// did not use (then it comes sooner).
    pub fn room_at(&self, now: Instant, n: u32) -> Instant {
        self.with(|s| {
            let next = s.aimd.next_at(now);
            let Some(rate) = s.aimd.rate(now) else { return next };
            if s.owed == 0 {
                return next;
            }
            let end = next + Duration::from_secs_f64(f64::from(s.owed.saturating_add(n)) / rate);
            next.max(end.checked_sub(ROOM).unwrap_or(now))
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut GateState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A 429 (or a bot check) came back through this egress: requests are held from now on, expected to
    /// reopen no sooner than `retry_after` (the breaker's cool-off, once the scheduler hears of the ban, may
    /// say later).
    pub fn throttled(&self, now: Instant, retry_after: Option<Duration>) {
        let told = self.with(|s| {
            s.met_at = Some(s.met_at.map_or(now, |m| m.max(now)));
            s.retry_after = retry_after.or(s.retry_after);
            s.holds.then(|| extend(s, now + retry_after.unwrap_or_default())).flatten()
        });
        // A hold that lapses at once (no `Retry-After`) is nothing to tell the workers.
        self.tell(told.filter(|until| *until > now).map(Some));
    }

    /// The egress's yt-dlp workers hold it to `until`: one would not send an extraction's request (a 429
    /// another worker met, whose note may not be here yet), or one met a 429 that said no `Retry-After`
    /// ([`UNSAID_HOLD`]). The gate holds as long, without a throttle signal of its own.
    pub fn held_by_workers(&self, until: Instant) {
        let told = self.with(|s| s.holds.then(|| extend(s, until)).flatten());
        self.tell(told.map(Some));
    }

    /// A request of this handle's clip was answered with a throttle signal (the relay met a 429): as
    /// [`Gate::throttled`] for the egress, and the clip's other requests, waiting here or not sent yet, go no
    /// further ([`Gate::clip_met`]): their answer is known, and the clip ends now, so that the breaker hears
    /// of the ban when it began (a clip whose second track waited out the ban's `Retry-After` in the hold
    /// opened the breaker only then, for a whole cool-off more, and the rate it learned was measured over the
    /// quiet hold).
    pub fn clip_throttled(&self, now: Instant, retry_after: Option<Duration>) {
        self.clip_met.store(true, Ordering::Relaxed);
        self.throttled(now, retry_after);
        self.wake.notify_waiters();
    }

    /// This handle's clip met a throttle signal ([`Gate::clip_throttled`]).
    pub fn clip_met(&self) -> bool {
        self.clip_met.load(Ordering::Relaxed)
    }

    /// The breaker opened (or stays open) until `until`: requests are held until its probe gets through.
    /// `learn`: this signal opened the breaker, a ban to learn from: the rate is cut, if enough was sent to
    /// learn from ([`Aimd::cut`]), and the new rate returned.
    pub fn banned(&self, now: Instant, until: Instant, learn: bool) -> Option<Cut> {
        let (told, learned) = self.with(|s| {
            let told = s.holds.then(|| extend(s, until)).flatten();
            s.firm |= s.holds;
            (told, learn.then(|| s.aimd.cut(now, s.retry_after)).flatten())
        });
        self.tell(told.map(Some));
        learned
    }

    /// The requests waiting in the hold now give up at once, sending nothing (their clips go back
    /// uncharged): the egress's cool-off is over and no clip is left to probe it, so nothing would lift the
    /// hold before their bound.
    pub fn give_back_held(&self) {
        let newly = self.with(|s| {
            let was = s.give_back;
            s.give_back = s.waiting > 0;
            s.give_back && !was
        });
        if newly {
            self.wake.notify_waiters();
        }
    }

    /// The probe got through: nothing is held.
    pub fn reopened(&self, now: Instant) {
        let lifted = self.with(|s| {
            s.firm = false;
            s.give_back = false;
            s.reopened_at = Some(now);
            let lifted = s.held_until.take().is_some();
            if lifted {
                s.aimd.resume(now);
            }
            lifted
        });
        self.tell(lifted.then_some(None));
    }

    /// A throttle signal came back through this egress after the probe's answer lifted the hold: the
    /// requests let go then met a new ban, whatever the probe's own end says.
    pub fn throttled_since_reopened(&self) -> bool {
        self.with(|s| matches!((s.met_at, s.reopened_at), (Some(met), Some(reopened)) if met > reopened))
    }

    /// [`Aimd::restore`]: a rate an earlier run learned, or a throttle domain's share of its rate.
    pub fn restore(&self, per_s: f64, since: Instant) {
        self.with(|s| s.aimd.restore(per_s, since))
    }

    /// The rate learned, requests a second (`None` before any ban).
    pub fn learned(&self, now: Instant) -> Option<f64> {
        self.with(|s| s.aimd.learned(now))
    }

    /// [`Aimd::base`]: what the last ban left, and since when.
    pub fn base(&self) -> Option<(f64, Instant)> {
        self.with(|s| s.aimd.base())
    }

    /// Whether requests through this egress are held now (banned, or a 429 its relay met).
    pub fn is_held(&self) -> bool {
        self.with(|s| s.held_until.is_some())
    }

    /// Requests waiting in the hold now.
    pub fn holding(&self) -> usize {
        self.with(|s| s.waiting)
    }

    /// When a request booked now would go: `now` when nothing waits its turn.
    pub fn next_at(&self, now: Instant) -> Instant {
        self.with(|s| s.aimd.next_at(now))
    }

    /// Books `n` requests at `now` (the gate's lock held), [`Aimd::reserve_pending`] if `pending`: they are no
    /// longer owed by this handle's clip.
    fn book(&self, s: &mut GateState, now: Instant, n: u32, pending: bool) -> Instant {
        if let Some(d) = &self.demand {
            d.0.settle(s, n);
        }
        s.aimd.book(now, n, pending)
    }

    /// Waits until `n` requests may go through this egress (the first of them now, the time returned): while
    /// the egress is held (banned, or cooled off with its probe still out), and then for their turn. A wait
    /// that would end past `bound` (from the call) gives up at once, sending nothing.
    pub async fn wait(&self, bound: Duration, n: u32) -> Result<Instant, HeldTooLong> {
        self.wait_as(bound, n, false).await
    }

    /// [`Gate::wait`] for requests that go only once something else is ready (an extraction, once a yt-dlp
    /// worker is free for it): they count as sent once they are known to have gone ([`Gate::went`],
    /// [`Gate::extracted`], [`Gate::sent`]).
    pub async fn wait_pending(&self, bound: Duration, n: u32) -> Result<Instant, HeldTooLong> {
        self.wait_as(bound, n, true).await
    }

    async fn wait_as(&self, bound: Duration, n: u32, pending: bool) -> Result<Instant, HeldTooLong> {
        let deadline = Instant::now() + bound;
        let mut counted = None;
        // Bounded: each turn books the requests, or sleeps until the expected reopening (or for a
        // `PROBE_POLL` while the probe is out), and gives up at `deadline`.
        loop {
            // Listening before the state is read: a give-back between the two is not missed.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.clip_met() {
                return Err(HeldTooLong(Duration::ZERO));
            }
            let now = Instant::now();
            let step = self.with(|s| match s.held_until {
                // The relay's own hold lapsed (no breaker opened for its 429, or not yet): the rate sent at is
                // still measured from before it, so that a ban the breaker hears of next learns from the
                // requests that brought it (measured from here, it would see too few to learn anything).
                Some(until) if !s.firm && now >= until => {
                    s.held_until = None;
                    Ok(self.book(s, now, n, pending))
                }
                Some(_) if !self.probe && s.give_back => Err(None),
                Some(until) if !self.probe => Err(Some(until)),
                _ if s.aimd.next_at(now) > deadline => Err(Some(s.aimd.next_at(now))),
                _ => Ok(self.book(s, now, n, pending)),
            });
            match step {
                Ok(at) => {
                    tokio::time::sleep_until(at.into()).await;
                    // A ban that began while this request waited its turn holds it too: it did not go, and books
                    // again once the hold ends.
                    let held = !self.probe
                        && self.with(|s| {
                            let held = s.held_until.is_some();
                            if held {
                                s.aimd.unbook(at, n, 0);
                            }
                            held
                        });
                    if !held {
                        return Ok(at);
                    }
                }
                Err(None) => return Err(HeldTooLong(Duration::ZERO)),
                Err(Some(until)) if until > deadline => return Err(HeldTooLong(until.saturating_duration_since(now))),
                Err(Some(_)) if now >= deadline => return Err(HeldTooLong(Duration::ZERO)),
                Err(Some(until)) => {
                    if counted.is_none() {
                        self.with(|s| s.waiting += 1);
                        counted = Some(Waiting(self));
                    }
                    let wake = until.max(now + PROBE_POLL).min(deadline);
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.into()) => {}
                        _ = notified => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
