//! Counters and a bounded request log, served as JSON at `/_stats` and returned by `TestServer::stats`.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How many finished requests the log keeps.
pub const LOG_CAPACITY: usize = 10_000;

/// A snapshot of everything the server counted. Requests to `/_stats` itself are not counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total_requests: u64,
    /// Body bytes actually written to sockets.
    pub bytes_sent: u64,
    /// Responses still being written. A client may have read a whole body before the server has
    /// counted its last chunk, so wait for this to reach 0 (`TestServer::wait_idle`) before asserting.
    pub in_flight: u64,
    /// Per video id: every well-formed request for one of its resources (`/watch?v={id}`, `/v/{id}.mp4`,
    /// `/v/{id}.mpd`, `/v/{id}/video.mp4`, `/v/{id}/audio.m4a`) counts here.
    pub ids: BTreeMap<String, IdStats>,
    /// Per client IP.
    pub ips: BTreeMap<String, IpStats>,
    /// The last `LOG_CAPACITY` finished requests, oldest first.
    pub log: Vec<LogEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdStats {
    pub requests: u64,
    pub bytes: u64,
    /// Count of responses per status code.
    pub statuses: BTreeMap<u16, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpStats {
    pub requests: u64,
    pub count_429: u64,
    /// Unix milliseconds when the latest ban ends (or ended); `None` if never banned.
    pub banned_until: Option<u64>,
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Unix milliseconds when the request head arrived.
    pub time_ms: u64,
    pub ip: String,
    pub method: String,
    /// The request target without its query string: every watch page is logged as `/watch`.
    pub path: String,
    /// The video id the request counted for (see `Stats::ids`), so `/watch?v={id}` can be told apart.
    #[serde(default)]
    pub id: Option<String>,
    /// The Range header as sent, if any.
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes written.
    pub bytes: u64,
    /// Served at the open-range throttle rate.
    pub throttled: bool,
    /// The whole promised body was written (false after truncation or a client hang-up).
    pub complete: bool,
    /// The request came as to an HTTP proxy (absolute-form target).
    #[serde(default)]
    pub proxied: bool,
    /// The Cookie header as sent, if any.
    #[serde(default)]
    pub cookie: Option<String>,
}

impl Stats {
    /// Counters for one id (zeros if it was never requested).
    pub fn id(&self, id: &str) -> IdStats {
        self.ids.get(id).cloned().unwrap_or_default()
    }

    /// Counters for one client IP (zeros if it never connected).
    pub fn ip(&self, ip: &str) -> IpStats {
        self.ips.get(ip).cloned().unwrap_or_default()
    }

    /// How many responses for `id` had `status`.
    pub fn status_count(&self, id: &str, status: u16) -> u64 {
        self.ids.get(id).and_then(|s| s.statuses.get(&status)).copied().unwrap_or(0)
    }

    /// Log entries for `/v/{id}.mp4` (the progressive file only), oldest first.
    pub fn log_for<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a LogEntry> + 'a {
        self.log_for_path(&format!("/v/{id}.mp4"))
    }

    /// Log entries for the watch page of `id` (`/watch?v={id}`), oldest first.
    pub fn log_for_page<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a LogEntry> + 'a {
        let id = id.to_owned();
        self.log.iter().filter(move |e| e.path == "/watch" && e.id.as_deref() == Some(id.as_str()))
    }

    /// Log entries for exactly `path` (without query), e.g. `/v/{id}/video.mp4`, oldest first.
    pub fn log_for_path<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a LogEntry> + 'a {
        let path = path.to_owned();
        self.log.iter().filter(move |e| e.path == path)
    }

    /// Body bytes written for exactly `path`, as far as the log still reaches.
    pub fn bytes_for_path(&self, path: &str) -> u64 {
        self.log_for_path(path).map(|e| e.bytes).sum()
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The shared, locked counters behind `Stats`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stats: Stats,
    log: VecDeque<LogEntry>,
}

impl Recorder {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Counts a request once its status is decided, so counts are visible while the body still flows.
    pub fn response_started(&self, ip: IpAddr, id: Option<&str>, status: u16) {
        self.with(|inner| {
            let stats = &mut inner.stats;
            stats.total_requests += 1;
            stats.in_flight += 1;
            stats.ips.entry(ip.to_string()).or_default().requests += 1;
            if let Some(id) = id {
                let entry = stats.ids.entry(id.to_owned()).or_default();
                entry.requests += 1;
                *entry.statuses.entry(status).or_default() += 1;
            }
        });
    }

    pub fn banned(&self, ip: IpAddr, remaining: Duration) {
        let until = unix_ms(SystemTime::now() + remaining);
        self.with(|inner| {
            let entry = inner.stats.ips.entry(ip.to_string()).or_default();
            entry.count_429 += 1;
            entry.banned_until = Some(until);
        });
    }

    pub fn bytes_written(&self, id: Option<&str>, bytes: u64) {
        self.with(|inner| {
            inner.stats.bytes_sent += bytes;
            if let Some(id) = id {
                inner.stats.ids.entry(id.to_owned()).or_default().bytes += bytes;
            }
        });
    }

    pub fn finished(&self, entry: LogEntry) {
        self.with(|inner| {
            inner.stats.in_flight = inner.stats.in_flight.saturating_sub(1);
            if inner.log.len() == LOG_CAPACITY {
                inner.log.pop_front();
            }
            inner.log.push_back(entry);
        });
    }

    pub fn snapshot(&self) -> Stats {
        self.with(|inner| Stats { log: inner.log.iter().cloned().collect(), ..inner.stats.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, status: u16) -> LogEntry {
        LogEntry {
            time_ms: 1,
            ip: "127.0.0.1".into(),
            method: "GET".into(),
            path: path.into(),
            id: path.strip_prefix("/v/").map(|_| "abc".to_owned()),
            range: None,
            status,
            bytes: 0,
            throttled: false,
            complete: true,
            proxied: false,
            cookie: None,
        }
    }

    #[test]
    fn counts_and_bounded_log() {
        let rec = Recorder::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        rec.response_started(ip, Some("abc"), 206);
        rec.response_started(ip, Some("abc"), 503);
        rec.response_started(ip, None, 404);
        assert_eq!(rec.snapshot().in_flight, 3);
        rec.bytes_written(Some("abc"), 100);
        rec.bytes_written(None, 7);
        rec.banned(ip, Duration::from_secs(60));
        for i in 0..LOG_CAPACITY + 5 {
            rec.finished(entry(if i % 2 == 0 { "/v/abc.mp4" } else { "/x" }, 200));
        }
        let stats = rec.snapshot();
        assert_eq!(stats.total_requests, 3);
        assert_eq!(stats.in_flight, 0, "every started response finished");
        assert_eq!(stats.bytes_sent, 107);
        assert_eq!(stats.id("abc").bytes, 100);
        assert_eq!(stats.status_count("abc", 503), 1);
        assert_eq!(stats.status_count("abc", 200), 0);
        let ip_stats = stats.ip("127.0.0.9");
        assert_eq!((ip_stats.requests, ip_stats.count_429), (3, 1));
        assert!(ip_stats.banned_until.unwrap() > unix_ms(SystemTime::now()));
        assert_eq!(stats.log.len(), LOG_CAPACITY);
        assert_eq!(stats.log_for("abc").count(), LOG_CAPACITY / 2);
        assert_eq!(stats.log_for_path("/x").count(), LOG_CAPACITY / 2);
        assert_eq!(stats.log_for_path("/v/abc.mpd").count(), 0);
        assert_eq!(stats.log_for_page("abc").count(), 0);
        let page = |id: Option<&str>| LogEntry { id: id.map(str::to_owned), ..entry("/watch", 200) };
        for id in [Some("abc"), Some("xyz"), None] {
            rec.finished(page(id));
        }
        let pages: Vec<LogEntry> = rec.snapshot().log_for_page("abc").cloned().collect();
        assert_eq!(pages, [page(Some("abc"))]);

        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<Stats>(&json).unwrap(), stats);
    }
}
