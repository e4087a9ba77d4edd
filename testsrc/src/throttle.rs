//! Rate limits: per-connection pacing, the global bandwidth bucket, and per-IP 429 bans.
//!
//! All decisions take `now` as an argument so the arithmetic is tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::IpThrottle;

/// Largest write; small enough that a hang-up is noticed quickly, large enough for loopback speed.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Chunk size for a body limited to `rate` bytes/s: about 20 writes a second keeps the pacing smooth.
pub fn chunk_size(rate: Option<u64>) -> usize {
    match rate {
        Some(rate) => ((rate / 20) as usize).clamp(512, MAX_CHUNK),
        None => MAX_CHUNK,
    }
}

/// Paces one connection: after `sent` bytes, the next write may start at `start + sent / rate`.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    start: Option<Instant>,
    sent: u64,
}

impl Pacer {
    pub fn new(bytes_per_sec: u64) -> Self {
        Pacer { rate: bytes_per_sec.max(1) as f64, start: None, sent: 0 }
    }

    /// When the next write may start; the first write goes at once.
    pub fn next_write_at(&mut self, now: Instant) -> Instant {
        let start = *self.start.get_or_insert(now);
        start + Duration::from_secs_f64(self.sent as f64 / self.rate)
    }

    pub fn record(&mut self, bytes: u64) {
        self.sent += bytes;
    }
}

/// The global bandwidth cap shared by all connections (a GCRA token bucket): each write reserves its
/// slot on a shared timeline, so concurrent connections split the rate instead of each getting it.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: Duration,
    theoretical_arrival: Mutex<Option<Instant>>,
}

impl Bucket {
    pub fn new(bytes_per_sec: u64) -> Self {
        Bucket {
            rate: bytes_per_sec.max(1) as f64,
            burst: Duration::from_millis(50),
            theoretical_arrival: Mutex::new(None),
        }
    }

    /// Reserves `bytes` and returns when they may be written.
    pub fn reserve(&self, bytes: u64, now: Instant) -> Instant {
        let mut tat = self.theoretical_arrival.lock().unwrap_or_else(|e| e.into_inner());
        let begin = tat.map_or(now, |t| t.max(now));
        let end = begin + Duration::from_secs_f64(bytes as f64 / self.rate);
        *tat = Some(end);
        end.checked_sub(self.burst).map_or(now, |t| t.max(now))
    }
}

/// The answer for one request from the per-IP throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Answer 429; the ban ends this long from now.
    Banned {
        remaining: Duration,
    },
}

#[derive(Debug, Default)]
struct Client {
    recent: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

/// Counts requests per client IP in a sliding window and bans IPs that exceed it.
#[derive(Debug)]
pub struct IpTracker {
    config: IpThrottle,
    clients: HashMap<IpAddr, Client>,
}

impl IpTracker {
    pub fn new(config: IpThrottle) -> Self {
        IpTracker { config, clients: HashMap::new() }
    }

    /// Records one request from `ip` and decides whether it is served.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if !self.config.enabled {
            return Verdict::Allow;
        }
        let ban = Duration::from_secs_f64(self.config.ban_secs);
        let window = Duration::from_secs_f64(self.config.window_secs);
        let client = self.clients.entry(ip).or_default();
        if let Some(until) = client.banned_until.filter(|&until| now < until) {
            let until = if self.config.extend_ban { now + ban } else { until };
            client.banned_until = Some(until);
            return Verdict::Banned { remaining: until - now };
        }
        while client.recent.front().is_some_and(|&t| now.duration_since(t) >= window) {
            client.recent.pop_front();
        }
        client.recent.push_back(now);
        if client.recent.len() > self.config.max_requests as usize {
            // A ban wipes the history, like a fresh start once it is lifted.
            client.recent.clear();
            client.banned_until = Some(now + ban);
            return Verdict::Banned { remaining: ban };
        }
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn pacer_spaces_writes_by_rate() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(1000);
        assert_eq!(pacer.next_write_at(t0), t0);
        pacer.record(500);
        assert_eq!(pacer.next_write_at(t0 + secs(0.1)), t0 + secs(0.5));
        pacer.record(1500);
        assert_eq!(pacer.next_write_at(t0 + secs(3.0)), t0 + secs(2.0));
    }

    #[test]
    fn bucket_shares_rate_between_callers() {
        let t0 = Instant::now();
        let bucket = Bucket::new(1000);
        // The first 50 ms of bytes go at once (the burst), then writers queue on the shared timeline.
        assert_eq!(bucket.reserve(50, t0), t0);
        assert_eq!(bucket.reserve(100, t0), t0 + secs(0.1));
        assert_eq!(bucket.reserve(100, t0), t0 + secs(0.2));
        // After an idle period the timeline restarts at now, without banking unused seconds.
        let later = t0 + secs(10.0);
        assert_eq!(bucket.reserve(10, later), later);
        assert_eq!(bucket.reserve(1000, later), later + secs(0.96));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(None), MAX_CHUNK);
        assert_eq!(chunk_size(Some(32 * 1024)), 1638);
        assert_eq!(chunk_size(Some(10)), 512);
        assert_eq!(chunk_size(Some(1 << 30)), MAX_CHUNK);
    }

    #[test]
    fn bans_after_too_many_requests_then_recovers() {
        let config =
            IpThrottle { enabled: true, window_secs: 10.0, max_requests: 3, ban_secs: 5.0, ..IpThrottle::default() };
        let mut tracker = IpTracker::new(config);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let t0 = Instant::now();
        let table = [
            (a, 0.0, Verdict::Allow),
            (a, 1.0, Verdict::Allow),
            (a, 2.0, Verdict::Allow),
            (b, 2.0, Verdict::Allow),
            (a, 3.0, Verdict::Banned { remaining: secs(5.0) }),
            (a, 4.0, Verdict::Banned { remaining: secs(4.0) }),
            (b, 4.0, Verdict::Allow),
            (a, 8.0, Verdict::Allow),
            (a, 8.5, Verdict::Allow),
        ];
        for (i, (ip, at, want)) in table.into_iter().enumerate() {
            assert_eq!(tracker.check(ip, t0 + secs(at)), want, "row {i}");
        }
    }

    #[test]
    fn window_slides_and_bans_can_extend() {
        let config = IpThrottle {
            enabled: true,
            window_secs: 1.0,
            max_requests: 1,
            ban_secs: 2.0,
            extend_ban: true,
            ..IpThrottle::default()
        };
        let mut tracker = IpTracker::new(config);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(tracker.check(ip, t0), Verdict::Allow);
        assert_eq!(tracker.check(ip, t0 + secs(1.0)), Verdict::Allow, "the first request left the window");
        assert_eq!(tracker.check(ip, t0 + secs(1.5)), Verdict::Banned { remaining: secs(2.0) });
        assert_eq!(tracker.check(ip, t0 + secs(3.0)), Verdict::Banned { remaining: secs(2.0) }, "extended");
        assert_eq!(tracker.check(ip, t0 + secs(5.0)), Verdict::Allow);
    }

    #[test]
    fn disabled_tracker_allows_everything() {
        let mut tracker = IpTracker::new(IpThrottle::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..1000).all(|_| tracker.check(ip, t0) == Verdict::Allow));
    }
}
