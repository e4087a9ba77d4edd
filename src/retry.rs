//! The retry rules in one place: a small pure decision from a failed attempt (its category, the clip's
//! tries, cookies, egresses, breakers) to a [`Verdict`], and the backoff that spaces retries.
//!
//! The caller owns the clock and the randomness: it passes a uniform `rng_unit` in `[0, 1]` (e.g.
//! `fastrand::f64()`), schedules, persists the attempt count and applies the verdict. That keeps this testable.

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

impl RetryPolicy {
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

/// What the run does with a clip after a failed attempt. Every retry rule of the tool is in [`verdict`];
/// the scheduler only applies the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A signal about the egress, not the video (a throttle while breakers are on): the clip goes back to
    /// the front of the queue, its attempts untouched.
    GiveBack,
    /// Blocked in this egress's country, not everywhere: the other egresses get to try; attempts untouched.
    Reroute,
    /// A passing failure: the attempt counts, the clip comes back no sooner than `after` from now.
    Retry { after: Duration },
    /// The attempt counts and the clip is failed. A `permanent` one stays failed on a rerun; the others
    /// get a fresh budget from the next run.
    Fail { permanent: bool },
    /// The machine is broken: the run stops, the clip stays pending, nothing is marked failed for it.
    Halt,
}

impl Verdict {
    /// Whether the attempt counts against the clip's budget.
    pub fn counts_attempt(self) -> bool {
        matches!(self, Verdict::Retry { .. } | Verdict::Fail { .. })
    }
}

/// What besides the failure's category the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Attempts at this clip in this run before the one that just failed.
    pub tries: u32,
    /// Cookies were given: age-restricted clips are worth retrying on a rerun.
    pub have_cookies: bool,
    /// Breakers are on (not `--no-breaker`).
    pub breaker: bool,
    /// Egresses of the run.
    pub egresses: usize,
    /// Egresses through which this clip was already geo-blocked.
    pub blocked_on: usize,
    /// The failure said the egress reached nothing (`classify::unreachable`) and the clip has not yet
    /// been given back for that more often than an outage takes to be recognised.
    pub unreachable: bool,
}

/// Whether a media request's failure means "this format needs a token on this egress", not "this clip is
/// forbidden": YouTube (since mid-2026) serves the DASH URLs of many clients for about their first megabyte
/// without a proof-of-origin token, then answers 403; a URL marked `rqh=1` needs one from its first request.
/// `status` is what upstream answered, `bytes_served` what the same URL had served before, `progressive`
/// whether the stream already is the muxed itag 18 (there is nothing to fall back to). The clip is then
/// fetched again as itag 18 within the same attempt, nothing charged.
pub fn format_refused(status: Option<u16>, bytes_served: u64, url: &str, progressive: bool) -> bool {
    let needs_token = url.split(['?', '&']).skip(1).any(|pair| pair == "rqh=1");
    status == Some(403) && !progressive && (bytes_served > 0 || needs_token)
}

/// Decides what happens to a clip whose attempt failed in `category`; `rng_unit` in `[0, 1]` spreads the
/// delay (see [`RetryPolicy`]).
pub fn verdict(category: Category, cx: &Context, policy: &RetryPolicy, rng_unit: f64) -> Verdict {
    let disposition = category.disposition();
    if disposition == Disposition::Throttle && cx.breaker {
        return Verdict::GiveBack;
    }
    // An outage is about the egress too: the clip waits for the network, its attempts untouched.
    if category == Category::Network && cx.unreachable && cx.breaker {
        return Verdict::GiveBack;
    }
    if category == Category::GeoBlocked && cx.egresses > cx.blocked_on + 1 {
        return Verdict::Reroute;
    }
    let tries = cx.tries.saturating_add(1);
    let retry = match disposition {
        Disposition::Environment => return Verdict::Halt,
        Disposition::Permanent | Disposition::NeedsCookies => false,
        // Without breakers a throttle is just another passing failure, as in the tools of today.
        Disposition::Throttle => tries < Category::Network.max_attempts(),
        Disposition::RetryLater => tries < category.max_attempts(),
    };
    if retry {
        Verdict::Retry { after: policy.delay(tries, rng_unit) }
    } else {
        Verdict::Fail { permanent: category.is_permanent(cx.have_cookies) }
    }
}

impl Category {
    /// Whether a clip that failed in this category stays failed on a rerun: the permanent categories,
    /// `http_404` once its retry is spent, and age-restricted clips unless cookies are given.
    pub fn is_permanent(self, have_cookies: bool) -> bool {
        match self.disposition() {
            Disposition::Permanent => true,
            Disposition::NeedsCookies => !have_cookies,
            _ => self == Category::Http404,
        }
    }

    /// How many attempts (including the first) a clip gets in this category before it is failed.
    ///
    /// `http_403`/`http_404` get one retry: a fresh extraction yields fresh media URLs, and a 403 that
    /// persists points at the environment (PO token, player client) rather than the video. Categories
    /// whose attempts are not counted ([`Disposition::Throttle`], [`Disposition::Environment`]) return
    /// `u32::MAX`.
    pub fn max_attempts(self) -> u32 {
        match self.disposition() {
            Disposition::Permanent | Disposition::NeedsCookies => 1,
            Disposition::Throttle | Disposition::Environment => u32::MAX,
            Disposition::RetryLater => match self {
                Category::Http403 | Category::Http404 => 2,
                Category::LiveNotStarted | Category::ExtractFailed | Category::Corrupt | Category::Other => 3,
                _ => 5,
            },
        }
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
    #[test]
    fn format_refused_table() {
        let dash = "https://rr1.googlevideo.com/videoplayback?itag=134&rqh=0";
        let token = "https://rr1.googlevideo.com/videoplayback?itag=134&rqh=1&n=x";
        // (status, bytes served before, url, progressive, refused)
        let table = [
            (Some(403), 1_048_576, dash, false, true),
            (Some(403), 1, "http://127.0.0.1:9/v/abc/video.mp4", false, true),
            (Some(403), 0, dash, false, false),
            (Some(403), 0, token, false, true),
            (Some(403), 5000, dash, true, false),
            (Some(403), 0, token, true, false),
            (Some(404), 5000, dash, false, false),
            (Some(429), 5000, token, false, false),
            (None, 5000, token, false, false),
            (Some(403), 0, "https://h/v?xrqh=1", false, false),
        ];
        for (i, (status, served, url, progressive, want)) in table.into_iter().enumerate() {
            assert_eq!(super::format_refused(status, served, url, progressive), want, "row {i}: {url}");
        }
    }

    use super::*;
    use Category::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// One egress, breakers on, no cookies, a first attempt: the common case the table varies.
    const FIRST: Context =
        Context { tries: 0, have_cookies: false, breaker: true, egresses: 1, blocked_on: 0, unreachable: false };

    #[test]
    fn verdicts_follow_categories_tries_and_the_run() {
        let p = RetryPolicy::default();
        let retry = |s| Verdict::Retry { after: secs(s) };
        let fail = |permanent| Verdict::Fail { permanent };
        let tries = |tries| Context { tries, ..FIRST };
        let cases = [
            // Verdicts about the video fail at once and stay failed.
            (Unavailable, FIRST, fail(true)),
            (Private, FIRST, fail(true)),
            (FormatUnavailable, FIRST, fail(true)),
            (MissingFromMirror, FIRST, fail(true)),
            // Age-restricted: failed now; a rerun with cookies tries again.
            (AgeRestricted, FIRST, fail(true)),
            (AgeRestricted, Context { have_cookies: true, ..FIRST }, fail(false)),
            // Passing failures: backoff doubles until the category's budget is spent.
            (Network, FIRST, retry(30)),
            (Network, tries(1), retry(60)),
            (Network, tries(3), retry(240)),
            (Network, tries(4), fail(false)),
            (Other, tries(1), retry(60)),
            (Other, tries(2), fail(false)),
            (Corrupt, tries(2), fail(false)),
            (Http403, FIRST, retry(30)),
            (Http403, tries(1), fail(false)),
            // A 404 twice is a verdict: it stays failed on a rerun.
            (Http404, FIRST, retry(30)),
            (Http404, tries(1), fail(true)),
            // Throttling is about the egress: given back, never counted, whatever the tries.
            (RateLimited, FIRST, Verdict::GiveBack),
            (BotCheck, tries(1000), Verdict::GiveBack),
            // Without breakers a throttle is an ordinary passing failure with the network's budget.
            (RateLimited, Context { breaker: false, ..FIRST }, retry(30)),
            (BotCheck, Context { breaker: false, tries: 3, ..FIRST }, retry(240)),
            (RateLimited, Context { breaker: false, tries: 4, ..FIRST }, fail(false)),
            // The egress reached nothing: given back like a throttle; without breakers, or once the clip has
            // been given back as often as an outage takes to show, an ordinary network failure.
            (Network, Context { unreachable: true, ..FIRST }, Verdict::GiveBack),
            (Network, Context { unreachable: true, tries: 4, ..FIRST }, Verdict::GiveBack),
            (Network, Context { unreachable: true, breaker: false, ..FIRST }, retry(30)),
            (Network, Context { unreachable: true, breaker: false, tries: 4, ..FIRST }, fail(false)),
            (Other, Context { unreachable: true, ..FIRST }, retry(30)),
            // Geo-blocked: rerouted while an egress that has not refused it is left, then failed.
            (GeoBlocked, FIRST, fail(true)),
            (GeoBlocked, Context { egresses: 2, ..FIRST }, Verdict::Reroute),
            (GeoBlocked, Context { egresses: 3, blocked_on: 1, ..FIRST }, Verdict::Reroute),
            (GeoBlocked, Context { egresses: 3, blocked_on: 2, ..FIRST }, fail(true)),
            // A broken machine halts the run whatever else holds.
            (Environment, FIRST, Verdict::Halt),
            (Environment, Context { tries: 9, breaker: false, egresses: 4, ..FIRST }, Verdict::Halt),
        ];
        for (category, cx, expected) in cases {
            assert_eq!(verdict(category, &cx, &p, 0.5), expected, "{category} with {cx:?}");
        }
    }

    #[test]
    fn only_retries_and_failures_count_an_attempt() {
        let cases = [
            (Verdict::GiveBack, false),
            (Verdict::Reroute, false),
            (Verdict::Halt, false),
            (Verdict::Retry { after: secs(1) }, true),
            (Verdict::Fail { permanent: true }, true),
            (Verdict::Fail { permanent: false }, true),
        ];
        for (v, counts) in cases {
            assert_eq!(v.counts_attempt(), counts, "{v:?}");
        }
    }

    #[test]
    fn every_category_gets_a_verdict_within_its_budget() {
        let p = RetryPolicy::default();
        for category in Category::ALL {
            let mut cx = Context { breaker: false, ..FIRST };
            let mut attempts = 0;
            let last = loop {
                let v = verdict(category, &cx, &p, 0.5);
                if !v.counts_attempt() {
                    break v;
                }
                attempts += 1;
                match v {
                    Verdict::Retry { .. } => cx.tries += 1,
                    _ => break v,
                }
                assert!(attempts <= 5, "{category} retried more than five times");
            };
            match category.disposition() {
                Disposition::Environment => assert_eq!(last, Verdict::Halt, "{category}"),
                _ => assert!(matches!(last, Verdict::Fail { .. }), "{category}: {last:?}"),
            }
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
