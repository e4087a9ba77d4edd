//! Retry policy: a small pure state machine from (category, attempts) to "retry after" or "give up".
//!
//! The caller owns the clock and the randomness: it passes a uniform `rng_unit` in `[0, 1]` (e.g.
//! `fastrand::f64()`), sleeps or schedules, and persists the attempt count. That keeps this testable.

use std::time::Duration;

use crate::classify::{Category, Disposition};

/// Exponential backoff with a cap and symmetric jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Upper bound on any delay, jitter included.
    pub max: Duration,
    /// Growth per further attempt.
    pub factor: f64,
    /// Relative spread: 0.25 spreads each delay over ±25% so that clips failing together do not
    /// come back together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_secs(30), max: Duration::from_secs(3600), factor: 2.0, jitter: 0.25 }
    }
}

/// What to do with a clip after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Put the clip back and try it again no sooner than `after` from now.
    Retry { after: Duration },
    /// Stop trying this clip. For [`Disposition::Environment`] the caller stops the whole run instead
    /// and leaves the clip pending: a broken machine says nothing about the video.
    GiveUp,
}

impl RetryPolicy {
    /// Decides after a failure in `category`; `attempts` counts the attempts made so far including the
    /// one that just failed (0 is treated as 1).
    ///
    /// [`Disposition::Throttle`] always retries after the base delay and the caller must *not*
    /// increment the clip's attempt count: the egress was throttled, not the clip. The egress's own
    /// cool-down is the governor's business; the base delay only keeps a naive caller from spinning.
    /// Permanent, cookie-bound and environment failures give up at once.
    pub fn decide(&self, category: Category, attempts: u32, rng_unit: f64) -> Decision {
        match category.disposition() {
            Disposition::Permanent | Disposition::NeedsCookies | Disposition::Environment => Decision::GiveUp,
            Disposition::Throttle => Decision::Retry { after: self.delay(1, rng_unit) },
            Disposition::RetryLater if attempts.max(1) >= category.max_attempts() => Decision::GiveUp,
            Disposition::RetryLater => Decision::Retry { after: self.delay(attempts.max(1), rng_unit) },
        }
    }

    /// `base * factor^(attempts-1)`, capped, then spread by jitter and capped again.
    fn delay(&self, attempts: u32, rng_unit: f64) -> Duration {
        let max = self.max.as_secs_f64();
        // Exponent capped so that a huge attempt count cannot overflow to inf/NaN.
        let exponent = attempts.saturating_sub(1).min(64) as i32;
        let raw = (self.base.as_secs_f64() * self.factor.max(1.0).powi(exponent)).min(max);
        let spread = self.jitter.clamp(0.0, 1.0) * (2.0 * rng_unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((raw * (1.0 + spread)).clamp(0.0, max))
    }
}

/// Parses `90s`, `20m`, `6h`, `1d`, `1h30m`, `1h 30m`, `1.5h`, `500ms`, or plain seconds `45`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration: expected e.g. 90s, 20m, 6h, 1d, 1h30m or plain seconds".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map(Duration::from_secs).map_err(|e| format!("invalid duration `{s}`: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration `{s}` ({e}): expected e.g. 90s, 20m, 6h, 1d, 1h30m or plain seconds"))
}

/// Short human form with the two largest non-zero units: `1h 30m`, `45s`, `2d 3h`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return if d.is_zero() { "0s".into() } else { format!("{}ms", d.as_millis()) };
    }
    let mut secs = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    let mut parts = Vec::with_capacity(2);
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = secs / size;
        secs %= size;
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        } else if !parts.is_empty() {
            // `1h 0m 5s` reads worse than `1h`: stop at the first gap after the leading unit.
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn decisions_follow_dispositions_and_attempt_limits() {
        let p = RetryPolicy::default();
        let mid = 0.5; // no jitter
        let cases = [
            (Unavailable, 1, Decision::GiveUp),
            (GeoBlocked, 1, Decision::GiveUp),
            (AgeRestricted, 1, Decision::GiveUp),
            (Environment, 1, Decision::GiveUp),
            (Http404, 1, Decision::Retry { after: secs(30) }),
            (Http404, 2, Decision::GiveUp),
            (Http403, 1, Decision::Retry { after: secs(30) }),
            (Http403, 2, Decision::GiveUp),
            (Network, 0, Decision::Retry { after: secs(30) }),
            (Network, 1, Decision::Retry { after: secs(30) }),
            (Network, 2, Decision::Retry { after: secs(60) }),
            (Network, 4, Decision::Retry { after: secs(240) }),
            (Network, 5, Decision::GiveUp),
            (Other, 2, Decision::Retry { after: secs(60) }),
            (Other, 3, Decision::GiveUp),
            // Throttling never gives up and never grows: the attempt is not counted.
            (RateLimited, 1, Decision::Retry { after: secs(30) }),
            (RateLimited, 1000, Decision::Retry { after: secs(30) }),
            (BotCheck, 7, Decision::Retry { after: secs(30) }),
        ];
        for (category, attempts, expected) in cases {
            assert_eq!(p.decide(category, attempts, mid), expected, "{category} after {attempts}");
        }
    }

    #[test]
    fn delays_grow_to_the_cap_and_jitter_stays_in_bounds() {
        let p = RetryPolicy { base: secs(30), max: secs(3600), factor: 2.0, jitter: 0.25 };
        // (attempts, rng, expected seconds)
        let cases = [
            (1, 0.0, 22.5),
            (1, 1.0, 37.5),
            (3, 0.0, 90.0),
            (3, 1.0, 150.0),
            (7, 0.5, 1920.0),
            (8, 0.5, 3600.0),
            (8, 1.0, 3600.0),
            (8, 0.0, 2700.0),
            (1_000_000, 0.0, 2700.0),
            (1, -3.0, 22.5),
            (1, 7.0, 37.5),
        ];
        for (attempts, rng, expected) in cases {
            let got = p.delay(attempts, rng).as_secs_f64();
            assert!((got - expected).abs() < 1e-6, "attempt {attempts} rng {rng}: {got} != {expected}");
        }
    }

    #[test]
    fn parses_durations() {
        let ok = [
            ("90s", secs(90)),
            ("20m", secs(1200)),
            ("6h", secs(21_600)),
            ("1d", secs(86_400)),
            ("1h30m", secs(5400)),
            ("1h 30m", secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("45", secs(45)),
            (" 45 ", secs(45)),
            ("0", secs(0)),
            ("1.5h", secs(5400)),
        ];
        for (input, expected) in ok {
            assert_eq!(parse_duration(input), Ok(expected), "{input:?}");
        }
        for bad in ["", "abc", "-5s", "1h30", "5 parsecs", "99999999999999999999999"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("duration"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn formats_durations_shortly() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (secs(45), "45s"),
            (Duration::from_millis(44_600), "45s"),
            (secs(90), "1m 30s"),
            (secs(3600), "1h"),
            (secs(5400), "1h 30m"),
            (secs(3605), "1h"),
            (secs(5425), "1h 30m"),
            (secs(93_784), "1d 2h"),
        ];
        for (d, expected) in cases {
            assert_eq!(format_duration(d), expected, "{d:?}");
        }
        for s in ["1h 30m", "45s", "1d 2h"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
