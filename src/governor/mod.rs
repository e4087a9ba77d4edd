//! The governor decides which egress a clip leaves through and when: circuit breakers against throttling,
//! pacing, and the choice of the healthy egress with the most headroom.

pub mod breaker;
pub mod egress;
pub mod pacer;
pub mod rate;

pub use breaker::{Admit, Breaker};
pub use egress::{Egress, Route};
pub use pacer::Pacer;
pub use rate::{Aimd, Demand, Gate};

use std::time::{Duration, Instant};

/// Throttle handling settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `false` is `--no-breaker`: throttle signals are treated as ordinary passing failures.
    pub breaker: bool,
    /// Each ban teaches the egress a request rate (`rate.rs`); `false` is `--no-learned-rate` (and
    /// `--no-breaker`): requests are paced by `--rate` alone.
    pub learn_rate: bool,
    pub cooldown: Duration,
    pub cooldown_cap: Duration,
    /// Clips an hour per egress, or `None`.
    pub rate_per_hour: Option<f64>,
    pub jitter: f64,
    /// `--down-after`: this many jobs in a row through one egress that reach nothing open its breaker as
    /// `egress_down`.
    pub down_after: u32,
    /// `--down-cooloff`: an outage's first cool-off; it doubles per failed probe up to `down_cooloff_cap`.
    pub down_cooloff: Duration,
    pub down_cooloff_cap: Duration,
}

/// One egress and what the governor knows of it.
#[derive(Debug)]
pub struct Lane {
    pub egress: Egress,
    pub breaker: Breaker,
    pub pacer: Pacer,
    /// The egress's learned request rate, which every request through it waits on, and its hold while
    /// banned (`rate.rs`); shared with the clips' engine.
    pub gate: Gate,
    pub running: usize,
    pub started: u64,
    pub throttled: u64,
    /// Requests answered with a throttle signal: sent into a ban (the one that revealed it included).
    pub wasted: u64,
    /// Total time this egress spent cooling off bans.
    pub cooled: Duration,
    /// Total time this egress spent down (outages), apart from `cooled`.
    pub down_time: Duration,
    /// After a ban, jobs at once through this lane ramp up from one instead of all starting together and
    /// tripping the ban again: doubling with each success up to `ceiling`, then one more for every `limit`
    /// successes (TCP's congestion control, with a ban for a lost packet). `None` is unlimited.
    pub limit: Option<usize>,
    /// Half the jobs that were running when the last ban began: the doubling stops there.
    pub ceiling: Option<usize>,
    /// Successes since `limit` last grew past `ceiling`.
    grown: usize,
    /// Jobs in a row, since the last one the server served, that reached nothing.
    pub down_streak: u32,
}

/// Where the next clip goes, or how long until one can go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    Lane {
        index: usize,
        probe: bool,
    },
    /// Nothing can start now; `until` is the earliest time something may (None: only when a job ends).
    Wait {
        until: Option<Instant>,
    },
}

/// How a job through a lane ended, as far as the governor cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Finish {
    /// The server served us (the clip is done, or failed for a reason of its own).
    Served,
    /// A throttle signal; `requests` of the job were answered with one (429, bot check): sent into a ban.
    /// `retry_after`: how long the server said to stay away, if it did.
    Throttled { requests: u64, retry_after: Option<Duration> },
    /// The egress reached nothing (no name, refused, no route, no proxy, no TLS: `classify::unreachable`).
    Unreachable,
    /// Neither (interrupted, environment).
    Unknown,
}

/// A throttle signal that opened a breaker, for the journal and the display.
#[derive(Debug, Clone)]
pub struct Opened {
    pub egress: String,
    pub cooloff: Duration,
    /// The request rate the egress learned from this ban, if it taught one.
    pub learned: Option<rate::Cut>,
}

/// Past this many jobs at once the ramp after a ban ends.
const RAMP_CAP: usize = 64;

pub struct Governor {
    pub lanes: Vec<Lane>,
    pub policy: Policy,
}

impl Lane {
    /// One more success while the breaker is closed: the limit after a ban grows.
    fn grow(&mut self) {
        let Some(limit) = self.limit else { return };
        let ceiling = self.ceiling.unwrap_or(RAMP_CAP);
        let next = if limit < ceiling {
            (limit * 2).min(ceiling)
        } else {
            self.grown += 1;
            if self.grown < limit {
                return;
            }
            self.grown = 0;
            limit + 1
        };
        self.limit = (next < RAMP_CAP).then_some(next);
    }
}

impl Governor {
    pub fn new(egresses: Vec<Egress>, policy: Policy) -> Governor {
        let lanes = egresses
            .into_iter()
            .map(|egress| Lane {
                egress,
                breaker: Breaker::new(policy.cooldown, policy.cooldown_cap, policy.jitter),
                pacer: Pacer::new(policy.rate_per_hour, policy.jitter),
                gate: Gate::new(Aimd::new(rate::ceiling_per_s(policy.rate_per_hour)), policy.breaker),
                running: 0,
                started: 0,
                throttled: 0,
                wasted: 0,
                cooled: Duration::ZERO,
                down_time: Duration::ZERO,
                limit: None,
                ceiling: None,
                grown: 0,
                down_streak: 0,
            })
            .collect();
        Governor { lanes, policy }
    }

    /// Puts back a cool-off that an earlier run recorded and that is not over yet.
    pub fn restore(&mut self, egress: &str, until: Instant, cooloff: Duration) {
        if let Some(lane) = self.lanes.iter_mut().find(|l| l.egress.name == egress) {
            lane.breaker = lane.breaker.clone().restored(until, cooloff);
        }
    }

    /// The gates the clips' requests wait on, one per lane in order, instead of the governor's own.
    pub fn use_gates(&mut self, gates: impl IntoIterator<Item = Gate>) {
        for (lane, gate) in self.lanes.iter_mut().zip(gates) {
            lane.gate = gate;
        }
    }

    /// Sets an egress's learned rate (requests a minute, growing since `since`) from the rate an earlier
    /// run learned or its throttle domain's share (unless rates are not learned).
    pub fn restore_rate(&mut self, egress: &str, per_min: f64, since: Instant) {
        if !self.policy.learn_rate {
            return;
        }
        if let Some(lane) = self.lanes.iter_mut().find(|l| l.egress.name == egress) {
            lane.gate.restore(per_min / 60.0, since);
        }
    }

    /// Each egress's learned rate as its last ban left it: requests a minute, and since when it grows
    /// (`None` before its first ban, or with `--no-learned-rate`).
    pub fn rate_bases(&self) -> impl Iterator<Item = (&str, Option<(f64, Instant)>)> + '_ {
        let learn = self.policy.learn_rate;
        self.lanes.iter().map(move |l| {
            let base = l.gate.base().filter(|_| learn).map(|(per_s, since)| (per_s * 60.0, since));
            (l.egress.name.as_str(), base)
        })
    }

    /// Each egress's learned request rate (requests a minute; `None` before its first ban).
    pub fn rates(&self, now: Instant) -> impl Iterator<Item = (&str, Option<f64>)> + '_ {
        self.lanes.iter().map(move |l| (l.egress.name.as_str(), l.gate.learned(now).map(|r| r * 60.0)))
    }

    /// Requests of running clips held at the lane's gate while its egress is banned.
    pub fn holding(&self, lane: usize) -> usize {
        self.lanes[lane].gate.holding()
    }

    /// The admissible lane with the most headroom: fewest running, then least used.
    pub fn pick(&self, now: Instant) -> Pick {
        self.pick_where(now, |_| true)
    }

    /// As [`Governor::pick`], among the lanes `allowed` accepts (a clip geo-blocked on some egresses may
    /// only go through the others).
    pub fn pick_where(&self, now: Instant, allowed: impl Fn(usize) -> bool) -> Pick {
        let mut best: Option<(usize, bool)> = None;
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        };
        for (i, lane) in self.lanes.iter().enumerate() {
            if !allowed(i) {
                continue;
            }
            let admit = if self.policy.breaker { lane.breaker.admit(now) } else { Admit::Yes };
            let probe = match admit {
                Admit::Yes => false,
                Admit::Probe => true,
                Admit::No { until } => {
                    consider(until);
                    continue;
                }
            };
            // The ramp after a ban counts the jobs from before it too, but never keeps the probe out: those
            // jobs' requests are held until the probe gets through.
            if !probe && lane.limit.is_some_and(|l| lane.running >= l) {
                continue;
            }
            if !lane.pacer.is_ready(now) {
                consider(lane.pacer.ready_at());
                continue;
            }
            // Requests still wait their turn at the learned rate, or the clips running there still need
            // more than the rate has room for beside a new clip's: it would only queue behind them, and its
            // requests or theirs would wait past their bound. The probe only waits its turn: the requests
            // held for it are owed too.
            let turn = if probe { lane.gate.next_at(now) } else { lane.gate.room_at(now, lane.gate.clip_requests()) };
            if turn > now {
                consider(Some(turn));
                continue;
            }
            let better = match best {
                None => true,
                Some((b, _)) => {
                    let other = &self.lanes[b];
                    (lane.running, lane.started) < (other.running, other.started)
                }
            };
            if better {
                best = Some((i, probe));
            }
        }
        match best {
            Some((index, probe)) => Pick::Lane { index, probe },
            None => Pick::Wait { until: earliest },
        }
    }

    /// Clips whose requests are held on an egress whose breaker is open, when nothing is left to take
    /// through it (`nothing_for(lane)`: no clip to be its probe) and its cool-off is over or another egress
    /// takes work (breaker closed or due a probe, nothing held there), go back uncharged at once instead of
    /// waiting out their bound: one of them can then probe it, or the other egress run them. An egress whose
    /// breaker has not opened yet (its relay met a 429 the breaker will hear of when that clip ends) keeps
    /// its clips: it would take them straight back.
    pub fn give_back_unprobed(&self, now: Instant, nothing_for: impl Fn(usize) -> bool) {
        if !self.policy.breaker {
            return;
        }
        let admits: Vec<Admit> = self.lanes.iter().map(|lane| lane.breaker.admit(now)).collect();
        let takes = |j: usize| matches!(admits[j], Admit::Yes | Admit::Probe) && !self.lanes[j].gate.is_held();
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.gate.holding() == 0 || admits[i] == Admit::Yes || !nothing_for(i) {
                continue;
            }
            if admits[i] == Admit::Probe || (0..self.lanes.len()).any(|j| j != i && takes(j)) {
                lane.gate.give_back_held();
            }
        }
    }

    /// A clip starts through lane `index`: the requests it is expected to make are owed at the lane's gate
    /// until it books them or releases the rest ([`Demand`]).
    pub fn started(&mut self, index: usize, probe: bool, now: Instant) -> Demand {
        let lane = &mut self.lanes[index];
        lane.breaker.started(probe);
        lane.pacer.take(now, fastrand::f64());
        lane.running += 1;
        lane.started += 1;
        lane.gate.expect(lane.gate.clip_requests())
    }

    /// Records how a job ended; returns the breaker that opened, if one did.
    pub fn finished(&mut self, index: usize, probe: bool, finish: Finish, now: Instant) -> Option<Opened> {
        let lane = &mut self.lanes[index];
        lane.running = lane.running.saturating_sub(1);
        // A probe whose breaker opened again while it ran (the requests its answer let go met a new ban, see
        // `renewed` below) no longer speaks for the egress: the next cool-off's probe does.
        let probe = probe && lane.breaker.state == breaker::State::Probing;
        match finish {
            Finish::Served => {
                lane.down_streak = 0;
                // Only the probe speaks for a ban: a job that started before the ban and got through says
                // nothing about now.
                if probe {
                    if let Some(began) = lane.breaker.ban_began {
                        // An outage's time is the network's, not the source's throttling.
                        let spent = now.saturating_duration_since(began);
                        if lane.breaker.down.is_some() {
                            lane.down_time += spent;
                        } else {
                            lane.cooled += spent;
                        }
                    }
                    lane.breaker.succeeded();
                    lane.gate.reopened(now);
                }
                if lane.breaker.state == breaker::State::Closed {
                    lane.grow();
                }
                None
            }
            Finish::Unknown => {
                if probe {
                    // The probe never got an answer: let another one go when possible.
                    lane.breaker.state = breaker::State::Open { until: now };
                }
                None
            }
            Finish::Unreachable => {
                lane.down_streak += 1;
                // A probe that reaches nothing proves the outage goes on; otherwise it takes
                // `down_after` jobs in a row, so that one clip's bad luck does not stop the egress.
                if !self.policy.breaker || (!probe && lane.down_streak < self.policy.down_after.max(1)) {
                    return None;
                }
                let (base, cap) = (self.policy.down_cooloff, self.policy.down_cooloff_cap);
                let cooloff = lane.breaker.down(now, probe, base, cap)?;
                Some(Opened { egress: lane.egress.name.clone(), cooloff, learned: None })
            }
            Finish::Throttled { requests, retry_after } => {
                lane.throttled += 1;
                lane.wasted += requests;
                if !self.policy.breaker {
                    return None;
                }
                // The jobs in flight when the ban began: those still running and this one.
                let at_ban = lane.running + 1;
                // A job's signal while the probe is out is one from before the ban, unless it came back after
                // the probe's answer lifted the hold: then the requests held for the probe, let go at once,
                // met a new ban, and the probe's own end (perhaps served, from before it) must not close the
                // breaker into it. Like a failed probe, that doubles the cool-off.
                let renewed =
                    !probe && lane.breaker.state == breaker::State::Probing && lane.gate.throttled_since_reopened();
                let Some(cooloff) = lane.breaker.signal(now, probe || renewed, fastrand::f64(), retry_after) else {
                    // A job from before the ban: the hold lasts as long as the breaker stays open.
                    if let Some(until) = lane.breaker.open_until() {
                        lane.gate.banned(now, until, false);
                    }
                    return None;
                };
                lane.ceiling = Some((at_ban / 2).max(1));
                lane.limit = Some(1);
                lane.grown = 0;
                // The ban teaches the egress a request rate, and holds its requests until the probe is through.
                let learned = lane.gate.banned(now, now + cooloff, self.policy.learn_rate);
                Some(Opened { egress: lane.egress.name.clone(), cooloff, learned })
            }
        }
    }

    /// When every lane is cooling, the earliest time one reopens.
    pub fn all_cooling_until(&self, now: Instant) -> Option<Instant> {
        if !self.policy.breaker {
            return None;
        }
        let mut earliest: Option<Instant> = None;
        for lane in &self.lanes {
            match lane.breaker.admit(now) {
                Admit::No { until: Some(t) } => earliest = Some(earliest.map_or(t, |e| e.min(t))),
                _ => return None,
            }
        }
        earliest
    }

    /// Every egress is open for an outage: the network is down, not the source throttling.
    pub fn network_down(&self) -> bool {
        self.policy.breaker && self.lanes.iter().all(|l| l.breaker.down.is_some())
    }

    /// "127.0.0.2 resumes in 3m 10s; 127.0.0.3 probing" for the progress line; None when all are healthy.
    /// When every egress reached nothing: "network down: 127.0.0.2 next probe in 15s".
    pub fn status_line(&self, now: Instant) -> Option<String> {
        let parts: Vec<String> = self
            .lanes
            .iter()
            .filter_map(|l| match l.breaker.state {
                breaker::State::Closed => None,
                breaker::State::Probing => Some(format!("{} probing", l.egress.name)),
                breaker::State::Open { until } => Some(format!(
                    "{} {} {}",
                    l.egress.name,
                    if l.breaker.down.is_some() { "down, next probe in" } else { "resumes in" },
                    crate::retry::format_duration(until.saturating_duration_since(now))
                )),
            })
            .collect();
        let what = if self.network_down() { "network down" } else { "throttled" };
        (!parts.is_empty()).then(|| format!("{what}: {}", parts.join("; ")))
    }

    /// Breakers are on (not `--no-breaker`).
    pub fn breaker_on(&self) -> bool {
        self.policy.breaker
    }

    /// How many egresses the run has.
    pub fn egress_count(&self) -> usize {
        self.lanes.len()
    }

    /// The name of the egress behind a lane.
    pub fn egress_name(&self, lane: usize) -> &str {
        &self.lanes[lane].egress.name
    }

    /// Each egress's breaker as the journal keeps it: (name, open until, current cool-off).
    pub fn breakers(&self) -> impl Iterator<Item = (&str, Option<Instant>, Duration)> + '_ {
        self.lanes.iter().map(|l| (l.egress.name.as_str(), l.breaker.open_until(), l.breaker.cooloff))
    }

    pub fn wasted(&self) -> u64 {
        self.lanes.iter().map(|l| l.wasted).sum()
    }

    /// Time egresses spent cooling off bans, added up (outages not included).
    pub fn cooled(&self) -> Duration {
        self.lanes.iter().map(|l| l.cooled).sum()
    }

    /// Time egresses spent down in this run, added up: outages that ended, and those still on until `now`.
    pub fn down_time(&self, now: Instant) -> Duration {
        let ongoing = |l: &Lane| match (l.breaker.down, l.breaker.ban_began) {
            (Some(_), Some(began)) => now.saturating_duration_since(began),
            _ => Duration::ZERO,
        };
        self.lanes.iter().map(|l| l.down_time + ongoing(l)).sum()
    }

    /// The egress behind `lane` is open for an outage.
    pub fn is_down(&self, lane: usize) -> bool {
        self.lanes[lane].breaker.down.is_some()
    }
}

#[cfg(test)]
mod tests;
