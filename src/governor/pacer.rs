//! Pacing per egress: at most N clip starts an hour, spread out with jitter instead of bursting until banned.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Mean gap between starts; `None` paces nothing.
    gap: Option<Duration>,
    jitter: f64,
    next: Option<Instant>,
}

impl Pacer {
    /// `per_hour`: clips an hour, or `None` for no pacing.
    pub fn new(per_hour: Option<f64>, jitter: f64) -> Pacer {
        let gap = per_hour.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(3600.0 / r));
        Pacer { gap, jitter, next: None }
    }

    /// The earliest time the next clip may start.
    pub fn ready_at(&self) -> Option<Instant> {
        self.next
    }

    pub fn is_ready(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// A clip started now: the next may start one jittered gap later.
    pub fn take(&mut self, now: Instant, rng_unit: f64) {
        if let Some(gap) = self.gap {
            let spread = 1.0 + self.jitter * (2.0 * rng_unit.clamp(0.0, 1.0) - 1.0);
            self.next = Some(now + gap.mul_f64(spread.max(0.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_is_always_ready() {
        let mut p = Pacer::new(None, 0.3);
        let now = Instant::now();
        p.take(now, 0.5);
        assert!(p.is_ready(now));
    }

    #[test]
    fn gaps_follow_the_rate_with_jitter() {
        let now = Instant::now();
        for (rng, want_ms) in [(0.0, 8400), (0.5, 12000), (1.0, 15600)] {
            let mut p = Pacer::new(Some(300.0), 0.3);
            p.take(now, rng);
            assert_eq!(p.ready_at(), Some(now + Duration::from_millis(want_ms)));
            assert!(!p.is_ready(now + Duration::from_millis(want_ms - 1)));
            assert!(p.is_ready(now + Duration::from_millis(want_ms)));
        }
    }
}
