//! What the test source serves and how it misbehaves: video profiles, per-id scenario, throttles.
//!
//! Everything deserializes from JSON with defaults for every field, and the builder methods let Rust tests
//! write `Config::for_tests().with_behaviour("abc", Behaviour::Status(404))`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};

use crate::behaviour::{Behaviour, ScenarioEntry};

/// The largest frame number the 20-bit strip can carry.
pub const MAX_FRAMES: u64 = 1 << 20;

/// The shape of a synthetic video. All ids using one profile serve the same file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub duration_secs: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Seconds between keyframes; the encoder is forced to this exact cadence.
    pub gop_secs: f64,
    pub audio: bool,
    /// Average video bitrate. Kept near YouTube's 360p so byte counts in benchmarks mean something.
    pub video_kbps: u32,
    /// Consecutive B-frames x264 may use (`-bf`): frames are stored out of display order, so the file has
    /// composition offsets (`ctts`) and decode times run behind presentation times. 0 (the default) keeps
    /// decode order equal to display order.
    pub bframes: u32,
    /// Keyframes at irregular times, like YouTube's scene-cut encodes: forced at a fixed pseudo-random
    /// schedule with gaps of 0.6 to 9.6 s ([`Profile::irregular_keyframe_secs`]), plus whatever x264's
    /// scene-cut detection adds, never more than 10 s apart. `gop_secs` then only sets the DASH audio
    /// fragment length. Off by default: a fixed `gop_secs` cadence.
    pub irregular_keyframes: bool,
    /// A second 20-bit strip under the frame-number strip carrying this number, so a clip cut from
    /// another id's video (another tag) fails its check; read back with `frames::clip_tag`. 0 (the
    /// default) draws no tag strip.
    pub tag: u32,
    /// DASH fragments of about this many seconds, like YouTube's (about 5 s): a video fragment starts at
    /// the first keyframe at least this long after the previous one, audio fragments are exactly this
    /// long, so audio and video fragment boundaries do not line up. 0 (the default): one video fragment
    /// per keyframe and audio fragments of `gop_secs`, aligned with a fixed cadence.
    pub dash_fragment_secs: f64,
    /// Also offer WebM DASH formats (VP9 video this high, Opus audio), as YouTube does beside H.264; with
    /// a height nearer the format choice's target than the H.264's, the default choice takes the VP9.
    /// 0 (the default): H.264 and AAC only.
    pub webm_height: u32,
    /// Open GOPs (x264's `open-gop`, with `bframes`): keyframes after the first are I pictures that are not
    /// IDR, and the B-frames shown before each, decoded after it, reference the GOP before. Off by default.
    pub open_gop: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            duration_secs: 300.0,
            width: 320,
            height: 180,
            fps: 15,
            gop_secs: 2.0,
            audio: true,
            video_kbps: 500,
            bframes: 0,
            irregular_keyframes: false,
            tag: 0,
            dash_fragment_secs: 0.0,
            webm_height: 0,
            open_gop: false,
        }
    }
}

impl Profile {
    /// Number of frames in the file (frame numbers run from 0 to this minus one).
    pub fn frame_count(&self) -> u64 {
        (self.duration_secs * f64::from(self.fps)).round() as u64
    }

    /// Keyframe interval in frames.
    pub fn gop_frames(&self) -> u32 {
        ((self.gop_secs * f64::from(self.fps)).round() as u32).max(1)
    }

    /// The gaps between forced keyframes of an irregular profile, repeated over the video.
    pub const IRREGULAR_GAPS: [f64; 10] = [4.6, 1.3, 7.9, 3.2, 9.6, 0.6, 5.5, 6.7, 2.1, 8.3];

    /// The times of the forced keyframes of an irregular profile (x264 may add scene cuts), from 0.
    pub fn irregular_keyframe_secs(&self) -> Vec<f64> {
        let mut times = vec![0.0];
        let mut t = 0.0;
        for gap in Self::IRREGULAR_GAPS.iter().cycle() {
            t += gap;
            if t >= self.duration_secs {
                break;
            }
            times.push((t * 10.0_f64).round() / 10.0);
        }
        times
    }

    /// Seconds at which frame `n` is shown.
    pub fn frame_secs(&self, n: u32) -> f64 {
        f64::from(n) / f64::from(self.fps)
    }

    fn validate(&self, name: &str) -> anyhow::Result<()> {
        ensure!(
            self.width >= 40 && self.height >= 24 && self.width.is_multiple_of(2) && self.height.is_multiple_of(2),
            "profile {name}: width and height must be even and at least 40x24"
        );
        ensure!((1..=120).contains(&self.fps), "profile {name}: fps must be 1..=120");
        ensure!(self.duration_secs > 0.0, "profile {name}: duration must be positive");
        ensure!(self.gop_secs > 0.0, "profile {name}: gop must be positive");
        ensure!(self.video_kbps >= 50, "profile {name}: video_kbps must be at least 50");
        ensure!(self.bframes <= 16, "profile {name}: bframes must be 0..=16");
        ensure!(self.tag < (1 << 20), "profile {name}: tag must fit 20 bits");
        ensure!(self.webm_height == 0 || self.webm_height >= 24, "profile {name}: webm_height must be 0 or >= 24");
        ensure!(!self.open_gop || self.bframes > 0, "profile {name}: open_gop needs bframes");
        ensure!(
            self.dash_fragment_secs >= 0.0 && self.dash_fragment_secs.is_finite(),
            "profile {name}: dash_fragment_secs must be 0 or positive"
        );
        ensure!(
            self.frame_count() < MAX_FRAMES,
            "profile {name}: {} frames do not fit the 20-bit frame-number strip",
            self.frame_count()
        );
        Ok(())
    }
}

/// Models YouTube's media servers, which trickle open-ended ranges of long videos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenRangeThrottle {
    pub enabled: bool,
    /// Open-ended requests with more than this many bytes left are throttled.
    pub threshold: u64,
    /// Bytes per second for throttled responses.
    pub rate: u64,
}

impl Default for OpenRangeThrottle {
    fn default() -> Self {
        // On by default, as on YouTube: it only touches files with more than 10 MB left (long videos).
        OpenRangeThrottle { enabled: true, threshold: 10_000_000, rate: 32 * 1024 }
    }
}

/// Models YouTube's 429 bans: too many requests from one IP in a window ban it for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpThrottle {
    pub enabled: bool,
    pub window_secs: f64,
    /// More than this many video requests (`/watch?v=` and `/v/`) inside the window trigger a ban.
    pub max_requests: u32,
    pub ban_secs: f64,
    /// Requests made during a ban restart the ban clock.
    pub extend_ban: bool,
    /// The 429s say no `Retry-After`, as YouTube's on its watch page mostly do not.
    pub unsaid: bool,
}

impl Default for IpThrottle {
    fn default() -> Self {
        IpThrottle {
            enabled: false,
            window_secs: 60.0,
            max_requests: 100,
            ban_secs: 60.0,
            extend_ban: false,
            unsaid: false,
        }
    }
}

/// The whole server configuration.
/// YouTube since mid-2026: media URLs that need a proof-of-origin token are served for about their first
/// megabyte, then answered 403; the progressive itag 18 stays available. Here: for a client IP in `ips`, a
/// request for a DASH track (`/v/{id}/video.mp4`, `/v/{id}/audio.m4a`) whose range starts at or past
/// `window_bytes` is answered 403. The page, the manifest and the progressive file are never refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashToken {
    /// Client IPs (`127.0.0.3`) without a token; empty: nobody is refused.
    pub ips: Vec<String>,
    /// Bytes of each DASH file served before the 403s start.
    pub window_bytes: u64,
}

impl Default for DashToken {
    fn default() -> Self {
        DashToken { ips: Vec::new(), window_bytes: 1 << 20 }
    }
}

impl DashToken {
    /// Whether a DASH request from `ip` whose range starts at `start` is refused.
    pub fn refuses(&self, ip: &str, start: u64) -> bool {
        start >= self.window_bytes && self.ips.iter().any(|i| i == ip)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Generated videos are cached here across runs and processes.
    pub cache_dir: PathBuf,
    /// Used by every id without a scenario entry naming another profile.
    pub profile: Profile,
    /// Extra named profiles that scenario entries may select.
    pub profiles: BTreeMap<String, Profile>,
    pub scenario: BTreeMap<String, ScenarioEntry>,
    /// Global cap in bytes per second shared by all connections; 0 means no cap.
    pub bandwidth: u64,
    pub open_range_throttle: OpenRangeThrottle,
    pub ip_throttle: IpThrottle,
    /// DASH media refused past its first bytes for some client IPs, like YouTube's URLs without a PO token.
    pub dash_token: DashToken,
    /// Served under `/files/...` when set.
    pub static_dir: Option<PathBuf>,
    /// Print one line per finished request to stderr.
    pub log_requests: bool,
    /// How long a signed media URL stays valid (see `ScenarioEntry::signed`); googlevideo's last 6 hours.
    pub url_ttl_secs: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cache_dir: default_cache_dir(),
            profile: Profile::default(),
            profiles: BTreeMap::new(),
            scenario: BTreeMap::new(),
            bandwidth: 0,
            open_range_throttle: OpenRangeThrottle::default(),
            ip_throttle: IpThrottle::default(),
            dash_token: DashToken::default(),
            static_dir: None,
            log_requests: false,
            url_ttl_secs: 6.0 * 3600.0,
        }
    }
}

/// The cache shared by test runs, so repeated runs reuse the encoded videos.
pub fn default_cache_dir() -> PathBuf {
    std::env::temp_dir().join("kinetics-testsrc-cache")
}

impl Config {
    /// The default config with a short (30 s) default video, which encodes in about a second.
    pub fn for_tests() -> Self {
        Config::default().with_duration(30.0)
    }

    /// Reads a JSON config file; missing fields take their defaults.
    pub fn from_json_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Sets the duration of the default profile.
    pub fn with_duration(mut self, secs: f64) -> Self {
        self.profile.duration_secs = secs;
        self
    }

    pub fn with_profile(mut self, name: &str, profile: Profile) -> Self {
        self.profiles.insert(name.to_owned(), profile);
        self
    }

    pub fn with_behaviour(self, id: &str, behaviour: Behaviour) -> Self {
        self.with_entry(id, ScenarioEntry::new(behaviour))
    }

    pub fn with_entry(mut self, id: &str, entry: ScenarioEntry) -> Self {
        self.scenario.insert(id.to_owned(), entry);
        self
    }

    pub fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth = bytes_per_sec;
        self
    }

    pub fn without_open_range_throttle(mut self) -> Self {
        self.open_range_throttle.enabled = false;
        self
    }

    pub fn with_url_ttl(mut self, secs: f64) -> Self {
        self.url_ttl_secs = secs;
        self
    }

    pub fn with_open_range_throttle(mut self, threshold: u64, rate: u64) -> Self {
        self.open_range_throttle = OpenRangeThrottle { enabled: true, threshold, rate };
        self
    }

    pub fn with_ip_throttle(mut self, max_requests: u32, window_secs: f64, ban_secs: f64) -> Self {
        self.ip_throttle = IpThrottle { enabled: true, window_secs, max_requests, ban_secs, ..IpThrottle::default() };
        self
    }

    /// The per-IP bans' 429s say no `Retry-After` ([`IpThrottle::unsaid`]).
    pub fn without_retry_after(mut self) -> Self {
        self.ip_throttle.unsaid = true;
        self
    }

    /// Refuses DASH media to `ips` past their first `window_bytes` (see [`DashToken`]).
    pub fn with_dash_token(mut self, ips: &[&str], window_bytes: u64) -> Self {
        self.dash_token = DashToken { ips: ips.iter().map(|ip| (*ip).to_owned()).collect(), window_bytes };
        self
    }

    pub fn with_static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }

    /// The scenario entry for `id`, `ok` with the default profile when it has none.
    pub fn entry_for(&self, id: &str) -> ScenarioEntry {
        self.scenario.get(id).cloned().unwrap_or_default()
    }

    /// The profile serving `id`, so tests can turn frame numbers into seconds.
    pub fn profile_for(&self, id: &str) -> &Profile {
        match self.scenario.get(id).and_then(|e| e.profile.as_deref()) {
            Some(name) => self.profiles.get(name).unwrap_or(&self.profile),
            None => &self.profile,
        }
    }

    /// Checks everything `spawn` relies on, so mistakes fail loudly before any video is encoded.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.profile.validate("default")?;
        for (name, profile) in &self.profiles {
            profile.validate(name)?;
        }
        for (id, entry) in &self.scenario {
            ensure!(crate::server::valid_id(id), "scenario id {id:?} is not a valid video id");
            if let Some(name) = &entry.profile {
                ensure!(self.profiles.contains_key(name), "scenario id {id}: unknown profile {name:?}");
            }
            entry.behaviour.validate().map_err(|e| anyhow::anyhow!("scenario id {id}: {e}"))?;
        }
        ensure!(self.url_ttl_secs.is_finite(), "url_ttl_secs must be a number of seconds");
        if self.open_range_throttle.enabled && self.open_range_throttle.rate == 0 {
            bail!("open-range throttle rate must be positive");
        }
        let ip = &self.ip_throttle;
        if ip.enabled && (ip.window_secs <= 0.0 || ip.ban_secs < 0.0) {
            bail!("ip throttle needs a positive window and a non-negative ban");
        }
        Ok(())
    }

    /// The distinct profiles that some id can be served with, default first.
    pub(crate) fn used_profiles(&self) -> Vec<(Option<&str>, &Profile)> {
        let mut used = vec![(None, &self.profile)];
        for (name, profile) in &self.profiles {
            if self.scenario.values().any(|e| e.profile.as_deref() == Some(name)) {
                used.push((Some(name.as_str()), profile));
            }
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fills_defaults_and_accepts_both_scenario_forms() {
        let json = r#"{
            "bandwidth": 1000,
            "profile": {"duration_secs": 20},
            "profiles": {"long": {"duration_secs": 3600}},
            "scenario": {
                "gone": "status:410",
                "flaky": {"fail_then_ok": {"status": 503, "count": 2}},
                "bench": {"profile": "long"},
                "cut": {"behaviour": "truncate:0.5", "profile": "long"}
            }
        }"#;
        let config: Config = serde_json::from_str(json).unwrap();
        config.validate().unwrap();
        assert_eq!(config.profile.duration_secs, 20.0);
        assert_eq!(config.profile.fps, 15);
        assert_eq!(config.entry_for("gone").behaviour, Behaviour::Status(410));
        assert_eq!(config.entry_for("flaky").behaviour, Behaviour::FailThenOk { status: 503, count: 2 });
        assert_eq!(config.entry_for("bench").behaviour, Behaviour::Ok);
        assert_eq!(config.profile_for("bench").duration_secs, 3600.0);
        assert_eq!(config.profile_for("cut").duration_secs, 3600.0);
        assert_eq!(config.profile_for("other").duration_secs, 20.0);
        assert_eq!(config.used_profiles().len(), 2);
        assert!(config.open_range_throttle.enabled, "on by default, for long videos");
        assert_eq!(config.open_range_throttle.threshold, 10_000_000);
    }

    #[test]
    fn validate_rejects_bad_configs() {
        let cases: Vec<(&str, Config)> = vec![
            ("bad id", Config::default().with_behaviour("a/b", Behaviour::Ok)),
            (
                "unknown profile",
                Config::default().with_entry("x", ScenarioEntry::new(Behaviour::Ok).with_profile("nope")),
            ),
            ("odd width", Config { profile: Profile { width: 321, ..Profile::default() }, ..Config::default() }),
            ("too long", Config::default().with_duration(1e6)),
            ("bad status", Config::default().with_behaviour("x", Behaviour::Status(99))),
            ("zero throttle", Config::default().with_open_range_throttle(10, 0)),
        ];
        for (name, config) in cases {
            assert!(config.validate().is_err(), "{name} should be rejected");
        }
        Config::default().validate().unwrap();
    }

    #[test]
    fn dash_token_refuses_listed_ips_past_the_window() {
        let token = DashToken { ips: vec!["127.0.0.3".into()], window_bytes: 1000 };
        let table = [
            ("127.0.0.3", 0, false),
            ("127.0.0.3", 999, false),
            ("127.0.0.3", 1000, true),
            ("127.0.0.3", 5_000_000, true),
            ("127.0.0.2", 5_000_000, false),
            ("127.0.0.1", 1000, false),
        ];
        for (ip, start, want) in table {
            assert_eq!(token.refuses(ip, start), want, "{ip} {start}");
        }
        assert!(!DashToken::default().refuses("127.0.0.1", u64::MAX), "nobody is refused by default");
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(serde_json::from_str::<Config>(r#"{"bandwith": 5}"#).is_err());
    }
}
