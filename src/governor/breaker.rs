//! A circuit breaker per egress: a throttle signal stops new work through it at once; after a cool-off
//! exactly one probe goes through; success closes it, another signal doubles the cool-off (capped, jittered).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// Takes work.
    Closed,
    /// Takes nothing until `until`.
    Open { until: Instant },
    /// The cool-off is over and one probe is out; nothing else goes through until it comes back.
    Probing,
}

/// What the breaker allows right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    Yes,
    /// Yes, but as the one probe of a half-open breaker.
    Probe,
    No {
        until: Option<Instant>,
    },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    pub state: State,
    /// The cool-off the next signal will start from.
    pub cooloff: Duration,
    base: Duration,
    cap: Duration,
    jitter: f64,
    /// When the current ban began (first signal), for the time spent cooling.
    pub ban_began: Option<Instant>,
    /// While open for an outage (`egress_down`, see [`Breaker::down`]): the outage's current cool-off.
    pub down: Option<Duration>,
}

impl Breaker {
    pub fn new(base: Duration, cap: Duration, jitter: f64) -> Breaker {
        Breaker { state: State::Closed, cooloff: base, base, cap: cap.max(base), jitter, ban_began: None, down: None }
    }

    /// A breaker restored from the journal: still open until `until`, with the cool-off it had reached.
    pub fn restored(mut self, until: Instant, cooloff: Duration) -> Breaker {
        self.state = State::Open { until };
        self.cooloff = cooloff.clamp(self.base, self.cap);
        self.ban_began = Some(Instant::now());
        self
    }

    pub fn admit(&self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Yes,
            State::Open { until } if now >= until => Admit::Probe,
            State::Open { until } => Admit::No { until: Some(until) },
            State::Probing => Admit::No { until: None },
        }
    }

    /// A job was started through this egress (`probe` from `admit`).
    pub fn started(&mut self, probe: bool) {
        if probe {
            self.state = State::Probing;
        }
    }

    /// A job through this egress got past the server: the ban, if any, is over.
    pub fn succeeded(&mut self) {
        self.state = State::Closed;
        self.cooloff = self.base;
        self.ban_began = None;
        self.down = None;
    }

    /// A job that was not a throttle signal and not a success (a video failure): a probe that ends like this
    /// still proves the egress works.
    pub fn finished_other(&mut self, probe: bool) {
        if probe {
            self.succeeded();
        }
    }

    /// A throttle signal. Returns the cool-off started, or `None` when the breaker was already open (a job
    /// that was running when the ban began): that one starts no second cool-off.
    ///
    /// Jitter only lengthens the cool-off: `--cooldown` is the least the user asked for, and a probe that
    /// goes before the ban is over only doubles the next one. A `Retry-After` from the server (`server_says`)
    /// is a floor too, up to the cap.
    pub fn signal(
        &mut self,
        now: Instant,
        probe: bool,
        rng_unit: f64,
        server_says: Option<Duration>,
    ) -> Option<Duration> {
        match (self.state, probe) {
            (State::Open { .. }, false) | (State::Probing, false) => None,
            (_, was_probe) => {
                if was_probe {
                    self.cooloff = (self.cooloff * 2).min(self.cap);
                }
                let spread = 1.0 + self.jitter.max(0.0) * rng_unit.clamp(0.0, 1.0);
                let wait = self.cooloff.mul_f64(spread).max(server_says.unwrap_or_default().min(self.cap));
                self.state = State::Open { until: now + wait };
                self.ban_began.get_or_insert(now);
                Some(wait)
            }
        }
    }

    /// An outage: the egress reached nothing on several jobs in a row. Opens as [`Breaker::signal`] does,
    /// with the outage's own cool-off: `base` at first, doubled by each probe that finds the egress still
    /// down, up to `cap`. `None` when the breaker was already open and this job was not its probe.
    pub fn down(&mut self, now: Instant, probe: bool, base: Duration, cap: Duration) -> Option<Duration> {
        if !probe && self.state != State::Closed {
            return None;
        }
        let wait = match (self.down, probe) {
            (Some(last), true) => (last * 2).min(cap.max(base)),
            _ => base,
        };
        self.down = Some(wait);
        self.state = State::Open { until: now + wait };
        self.ban_began.get_or_insert(now);
        Some(wait)
    }

    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_signal_opens_then_one_probe_then_close() {
        let t0 = Instant::now();
        let mut b = Breaker::new(10 * S, 80 * S, 0.0);
        assert_eq!(b.admit(t0), Admit::Yes);
        assert_eq!(b.signal(t0, false, 0.5, None), Some(10 * S));
        assert_eq!(b.admit(t0 + 5 * S), Admit::No { until: Some(t0 + 10 * S) });
        // A job that was already running reports the ban too: no new cool-off.
        assert_eq!(b.signal(t0 + S, false, 0.5, None), None);
        assert_eq!(b.admit(t0 + 10 * S), Admit::Probe);
        b.started(true);
        assert_eq!(b.admit(t0 + 11 * S), Admit::No { until: None }, "exactly one probe");
        b.succeeded();
        assert_eq!(b.admit(t0 + 12 * S), Admit::Yes);
        assert_eq!(b.cooloff, 10 * S);
    }

    #[test]
    fn failed_probes_double_the_cooloff_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Breaker::new(10 * S, 35 * S, 0.0);
        b.signal(t0, false, 0.5, None);
        let mut now = t0;
        let mut waits = vec![];
        for _ in 0..4 {
            now = b.open_until().unwrap();
            assert_eq!(b.admit(now), Admit::Probe);
            b.started(true);
            waits.push(b.signal(now, true, 0.5, None).unwrap());
        }
        assert_eq!(waits, vec![20 * S, 35 * S, 35 * S, 35 * S]);
        let _ = now;
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let t0 = Instant::now();
        for (rng, want) in [(0.0, 100.0), (0.5, 112.5), (1.0, 125.0)] {
            let mut b = Breaker::new(100 * S, 1000 * S, 0.25);
            assert_eq!(b.signal(t0, false, rng, None), Some(S.mul_f64(want)));
        }
    }

    #[test]
    fn retry_after_is_a_floor_up_to_the_cap() {
        let t0 = Instant::now();
        // (Retry-After, want): shorter than the cool-off changes nothing; longer wins; beyond the cap, the cap.
        for (says, want) in [(None, 10), (Some(4), 10), (Some(30), 30), (Some(500), 80)] {
            let mut b = Breaker::new(10 * S, 80 * S, 0.0);
            assert_eq!(b.signal(t0, false, 0.5, says.map(|s| s * S)), Some(want * S), "{says:?}");
            assert_eq!(b.admit(t0 + want * S), Admit::Probe);
        }
    }

    #[test]
    fn a_probe_that_fails_for_the_video_still_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(10 * S, 80 * S, 0.0);
        b.signal(t0, false, 0.5, None);
        b.started(true);
        b.finished_other(true);
        assert_eq!(b.admit(t0), Admit::Yes);
    }

    #[test]
    fn an_outage_opens_with_its_own_cooloff_doubling_per_failed_probe_and_a_success_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1800 * S, 86400 * S, 0.25);
        assert_eq!(b.down(t0, false, 15 * S, 60 * S), Some(15 * S));
        // Jobs already running that fail the same way start nothing more.
        assert_eq!(b.down(t0 + S, false, 15 * S, 60 * S), None);
        let mut waits = vec![];
        for _ in 0..4 {
            let at = b.open_until().unwrap();
            assert_eq!(b.admit(at), Admit::Probe);
            b.started(true);
            waits.push(b.down(at, true, 15 * S, 60 * S).unwrap());
        }
        assert_eq!(waits, vec![30 * S, 60 * S, 60 * S, 60 * S]);
        b.started(true);
        b.succeeded();
        assert_eq!((b.admit(t0), b.down), (Admit::Yes, None));
        assert_eq!(b.cooloff, 1800 * S, "the ban's cool-off is untouched");
    }

    #[test]
    fn restored_breakers_stay_open() {
        let t0 = Instant::now();
        let b = Breaker::new(10 * S, 80 * S, 0.0).restored(t0 + 30 * S, 40 * S);
        assert_eq!(b.admit(t0), Admit::No { until: Some(t0 + 30 * S) });
        assert_eq!(b.cooloff, 40 * S);
    }
}
