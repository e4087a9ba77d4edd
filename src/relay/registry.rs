//! Registrations: which upstream URL a relay token stands for, and what fetching it has cost so far.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::cache::Cache;
use super::mp4::{self, Index, Scan};

/// Why the upstream side of a registration failed, as recorded in [`Registration::last_upstream_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Upstream answered with an HTTP error status.
    #[error("upstream answered {status} {reason}")]
    Status { status: u16, reason: String },
    /// Upstream answered 200 with the whole resource to a Range request.
    #[error("upstream ignored the range request and answered 200")]
    RangeUnsupported,
    /// A 206 whose `Content-Range` is missing, unparsable, or not the range asked for.
    #[error("upstream sent an unusable Content-Range ({0})")]
    BadContentRange(String),
    /// Connecting, a timeout, a reset, or a body that ended early.
    #[error("upstream transfer failed: {0}")]
    Transport(String),
    /// Not sent: the egress is banned (or its learned rate gives the request no turn) for longer than a
    /// request may wait; the clip is given back with nothing sent.
    #[error("upstream not asked: the egress is held for another {0:?}")]
    Held(std::time::Duration),
}

impl UpstreamError {
    /// What a request gets without being sent once its registration, or another of its clip's, was answered
    /// 429 ([`Entry::was_throttled`]): the same throttle signal, not a new request into the ban.
    pub(super) fn throttled_before() -> UpstreamError {
        UpstreamError::Status { status: 429, reason: "Too Many Requests".to_string() }
    }

    /// The HTTP status upstream answered with, if that is what went wrong.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether asking again for the same bytes may work: network trouble, 408 and 5xx.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Transport(_) => true,
            // Not 429: retrying a throttle sends more requests into a ban; the egress's breaker decides.
            UpstreamError::Status { status, .. } => matches!(status, 408 | 500..=599),
            UpstreamError::RangeUnsupported | UpstreamError::BadContentRange(_) | UpstreamError::Held(_) => false,
        }
    }
}

/// Relay-wide sums over all registrations, past and present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayTotals {
    /// Body bytes read from upstream.
    pub bytes_fetched: u64,
    /// Upstream requests sent, including retries and length probes.
    pub upstream_requests: u64,
    /// Upstream requests that were retries after a transient failure.
    pub upstream_retries: u64,
}

/// Lock-free counters shared by the relay (totals) and by each registration.
#[derive(Debug, Default)]
pub(super) struct Counters {
    bytes_fetched: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_retries: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> RelayTotals {
        RelayTotals {
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
            upstream_requests: self.upstream_requests.load(Ordering::Relaxed),
            upstream_retries: self.upstream_retries.load(Ordering::Relaxed),
        }
    }
}

/// What a successful upstream answer told us about the resource; cached so HEAD and later requests
/// can answer without asking again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub total: u64,
    pub content_type: Option<String>,
}

/// Everything the relay needs to serve one token.
pub(super) struct Entry {
    pub upstream_url: String,
    /// Upstream host only, for logs: media URLs carry signatures that do not belong in logs.
    pub host: String,
    pub headers: HeaderMap,
    pub client: reqwest::Client,
    /// The egress's learned request rate and its hold while banned: every upstream request waits on it.
    pub gate: Option<crate::governor::Gate>,
    totals: Arc<Counters>,
    own: Counters,
    max_span: AtomicU64,
    /// Requests ffmpeg made for this URL: a new one while a response waits means ffmpeg has moved on.
    downstream_requests: AtomicU64,
    /// Upstream answers 429: requests that went into a ban.
    throttled: AtomicU64,
    /// The longest `Retry-After` (seconds) a 429 carried.
    retry_after_secs: AtomicU64,
    range_unsupported: AtomicBool,
    /// Thread CPU (ns) spent polling the transfers serving this URL (`cpu::Metered`).
    pub cpu_ns: AtomicU64,
    last_error: Mutex<Option<UpstreamError>>,
    meta: Mutex<Option<Meta>>,
    layout: Mutex<Layout>,
}

/// What has been fetched, and what the file's layout says about which bytes ffmpeg will read next.
#[derive(Debug)]
struct Layout {
    cache: Cache,
    /// `[start, end]` in seconds of the source, when the caller said which window ffmpeg will read.
    window: Option<(f64, f64)>,
    /// The length of the first upstream read from byte 0 ([`first_read`]).
    first_read: u64,
    plan: Plan,
}

impl Default for Layout {
    fn default() -> Self {
        // Nothing known (no [`Registration::expect`]): the fixed header read.
        Layout { cache: Cache::default(), window: None, first_read: HEADER_PIECE, plan: Plan::default() }
    }
}

/// What the caller knows of a file before any of its bytes arrive (from the format's metadata), which
/// sizes the first read so that it holds the whole header in one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Expect {
    /// The source's duration in seconds.
    pub duration: Option<f64>,
    /// Video frames per second, when the format has video.
    pub fps: Option<f64>,
    /// A fragmented (DASH) file: a small `moov` and a `sidx` of a few bytes per fragment, whatever the
    /// duration. Otherwise a progressive file, whose `moov` holds a table entry for every sample.
    pub fragmented: bool,
}

/// How the next upstream piece is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Plan {
    /// The header is being read; scan again once the bytes from 0 reach `need`.
    Scanning { need: u64 },
    /// An MP4 whose header is `[0, header_end)`; `span` holds the bytes the window needs, inclusive.
    Known { header_end: u64, span: Option<(u64, u64)> },
    /// Not an MP4 layout we understand: pieces ramp up by size alone.
    Unplanned,
}

impl Default for Plan {
    fn default() -> Self {
        Plan::Scanning { need: 16 }
    }
}

/// The first piece of a file when nothing sizes it better: enough for a DASH header (ftyp, moov, sidx), and
/// it reveals the moov's size.
const HEADER_PIECE: u64 = 32 * 1024;
/// A progressive `moov` besides its sample tables (headers, sample descriptions, edit lists).
const MOOV_BASE: u64 = 4 * 1024;
/// Sample-table bytes per video frame of a progressive `moov`: `stsz` (4), a chunk offset in `stco` (4)
/// when every frame is a chunk of its own, as ffmpeg's muxer interleaves, and up to one `stsc` run (12) per
/// chunk when the audio frames between video frames alternate (1, 2, 1, ... at 30 fps), and a few for
/// `stss`. The test source's 5-minute 30 fps itag 18 has a 256 KB `moov`: 20.6 per frame once its audio's
/// `stsz` is counted. `ctts` (B-frames) adds 8 more, which the `stsc` share covers at 15 fps.
const MOOV_PER_VIDEO_FRAME: f64 = 23.0;
/// Sample-table bytes per audio frame of a progressive `moov`: its `stsz` entry.
const MOOV_PER_AUDIO_FRAME: f64 = 4.0;
/// A fragmented file's header besides its `sidx`: `ftyp` and a `moov` without samples (under 1 KB at the
/// test source and on YouTube), with room to spare.
const FRAGMENTED_BASE: u64 = 4 * 1024;
/// Bytes of `sidx` per second: one 12-byte reference per fragment, fragments of 2 s or more (YouTube's are
/// about 5 s, the test source's default is one per 2 s keyframe interval).
const SIDX_PER_SEC: f64 = 6.0;
/// Audio frames per second assumed in a progressive file: AAC at 44.1 kHz (1024 samples a frame).
const AUDIO_FRAMES_PER_SEC: f64 = 44.0;
/// Video frames per second assumed when the format does not say.
const DEFAULT_FPS: f64 = 30.0;
/// The smallest piece sent to finish a header whose size is known.
const MIN_PIECE: u64 = 4 * 1024;
/// Pieces outside the header and the window (ffmpeg probing the first fragment, reading the tail for an
/// `mfra`) start this small and double: ffmpeg usually wants a few hundred bytes there.
const PROBE_PIECE: u64 = 16 * 1024;
/// How far past a progressive header ffmpeg may read before it seeks to the window: its first packets and
/// the rest of one 32 KiB I/O buffer fill (measured at the test source: 15-24 KiB past the `moov`, at
/// times past 48 KiB from the start, which cost one more request). A header read reaches this far.
const PROBE_READ: u64 = 32 * 1024;
/// Pieces of files without a plan start this size and double: small first pieces keep what the server
/// sends past the point where ffmpeg hangs up small, large later ones keep long reads fast.
const UNPLANNED_PIECE: u64 = 64 * 1024;
/// Read past a fragmented file's window span in the same request: ffmpeg reading one DASH track reads on past
/// the last fragment it needs before it sees it is done, and without this those bytes cost one more request
/// per track (measured against the test source: exactly one 16 KiB piece after the span, video and audio).
/// Progressive files need none: the interleaved streams pass `-to` inside the span.
const WINDOW_TAIL: u64 = 16 * 1024;

/// The length of the first read from byte 0: the whole header as `expect` predicts it, plus what ffmpeg
/// probes after it. A progressive `moov` grows with the number of samples (a 10-minute 30 fps video has
/// ~500 KB of it), a DASH `sidx` with the number of fragments (22 KB on an hour of 2 s fragments), so one
/// fixed first read either falls short on long videos (one more request) or wastes bytes on short ones.
pub(super) fn first_read(expect: Expect) -> u64 {
    let secs = expect.duration.filter(|s| s.is_finite() && *s > 0.0);
    match (expect.fragmented, secs) {
        (false, Some(secs)) => {
            let fps = expect.fps.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(DEFAULT_FPS);
            let per_sec = fps * MOOV_PER_VIDEO_FRAME + AUDIO_FRAMES_PER_SEC * MOOV_PER_AUDIO_FRAME;
            let tables = (secs * per_sec).min(MAX_FIRST_READ as f64) as u64;
            (MOOV_BASE + tables + PROBE_READ).clamp(HEADER_PIECE, MAX_FIRST_READ)
        }
        // ffmpeg probes the first fragment after the header: a short video's whole header and that probe fit
        // the fixed read; an hour's `sidx` does not.
        (true, Some(secs)) => {
            let sidx = (secs * SIDX_PER_SEC).min(MAX_FIRST_READ as f64) as u64;
            (FRAGMENTED_BASE + sidx + PROBE_READ).clamp(HEADER_PIECE, MAX_FIRST_READ)
        }
        (true, None) => HEADER_PIECE,
        // A progressive file of unknown length: the fixed header read and ffmpeg's probe in one request.
        (false, None) => HEADER_PIECE + PROBE_READ,
    }
}

/// ffmpeg reads on rather than seeks when the target is at most its buffer (32 KiB) plus its short-seek
/// threshold (32 KiB) ahead (`avio_seek`); a window that close to what was delivered is read through on the
/// same connection.
const READ_THROUGH: u64 = 64 * 1024;

/// The most a first read predicts: beyond it, one exact follow-up is cheaper than a wrong guess.
const MAX_FIRST_READ: u64 = 4 << 20;

/// The length of the next upstream piece at `offset` under `plan`, before the caps (request size, the
/// range wanted, the file, the cache). `first` is the length of the read from byte 0; `ramp` counts the
/// unplanned pieces of this response so far.
pub(super) fn planned_len(plan: Plan, first: u64, offset: u64, ramp: &mut u32) -> u64 {
    let doubling = |base: u64, ramp: &mut u32| {
        let len = base.checked_shl((*ramp).min(40)).unwrap_or(u64::MAX);
        *ramp += 1;
        len
    };
    match plan {
        Plan::Scanning { .. } if offset == 0 => first,
        // The rest of the header in one exact piece, and ffmpeg's probe of the first packets with it.
        Plan::Scanning { need } if offset < need => (need - offset).max(MIN_PIECE) + PROBE_READ,
        Plan::Known { header_end, .. } if offset < header_end => header_end - offset,
        Plan::Known { span: Some((a, b)), .. } if (a..=b).contains(&offset) => b - offset + 1,
        // ffmpeg reads on to a window that starts this close instead of seeking: the gap and the window together.
        Plan::Known { span: Some((a, b)), .. } if offset < a && a - offset <= READ_THROUGH => b - offset + 1,
        Plan::Scanning { .. } | Plan::Known { .. } => doubling(PROBE_PIECE, ramp),
        Plan::Unplanned => doubling(UNPLANNED_PIECE, ramp),
    }
}

/// Headers that describe one hop, or that the relay itself must control (the range, and an identity
/// encoding so byte offsets mean the same thing as in the file).
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "range",
    "if-range",
    "accept-encoding",
];

impl Entry {
    pub fn new(url: &str, headers: &[(String, String)], client: reqwest::Client, totals: Arc<Counters>) -> Self {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "<invalid url>".to_string());
        Entry {
            upstream_url: url.to_string(),
            host,
            headers: forwarded_headers(headers),
            client,
            gate: None,
            totals,
            own: Counters::default(),
            max_span: AtomicU64::new(0),
            downstream_requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            retry_after_secs: AtomicU64::new(0),
            range_unsupported: AtomicBool::new(false),
            cpu_ns: AtomicU64::new(0),
            last_error: Mutex::new(None),
            meta: Mutex::new(None),
            layout: Mutex::new(Layout::default()),
        }
    }

    fn layout(&self) -> std::sync::MutexGuard<'_, Layout> {
        self.layout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes already fetched from `offset` on, at most through `end`.
    pub fn cached(&self, offset: u64, end: u64) -> Option<Bytes> {
        self.layout().cache.get(offset, end)
    }

    pub fn remember(&self, offset: u64, chunk: &Bytes) {
        self.layout().cache.put(offset, chunk.clone());
    }

    /// The last byte (inclusive) of the next upstream piece at `offset`: sized by the file's layout, within
    /// the request size, the wanted `end`, the file, and stopping before bytes already cached.
    pub fn piece_end(
        &self,
        offset: u64,
        end: Option<u64>,
        total: Option<u64>,
        ramp: &mut u32,
        request_size: u64,
    ) -> u64 {
        let mut layout = self.layout();
        layout.update_plan();
        let len = planned_len(layout.plan, layout.first_read, offset, ramp).clamp(1, request_size.max(1));
        let mut last = offset.saturating_add(len - 1);
        if let Some(next) = layout.cache.next_start(offset) {
            last = last.min(next - 1);
        }
        if let Some(end) = end {
            last = last.min(end);
        }
        if let Some(total) = total {
            last = last.min(total.saturating_sub(1));
        }
        last.max(offset)
    }
    /// Whether a piece at `offset` lies outside what the plan says ffmpeg reads: past the header (whose read
    /// already holds ffmpeg's probe after it), outside the window. ffmpeg reads ahead into its buffers there
    /// before it seeks away, so such a piece is asked for only once ffmpeg has shown it still wants bytes
    /// (see `transfer.rs`).
    pub fn outside_plan(&self, offset: u64) -> bool {
        // The plan as of the bytes cached so far: right after the header read, no other piece has planned
        // from it yet, and a stale `Scanning` plan would let the next piece go out without waiting.
        let mut layout = self.layout();
        layout.update_plan();
        match layout.plan {
            Plan::Known { header_end, span: Some((a, b)) } => {
                let read_through = offset < a && a - offset <= READ_THROUGH;
                offset >= header_end && !(a..=b).contains(&offset) && !read_through
            }
            _ => false,
        }
    }

    /// Counts one request from ffmpeg; returns how many came before it.
    pub fn note_downstream_request(&self) -> u64 {
        self.downstream_requests.fetch_add(1, Ordering::Relaxed)
    }

    /// How many requests ffmpeg has made for this URL.
    pub fn downstream_requests(&self) -> u64 {
        self.downstream_requests.load(Ordering::Relaxed)
    }

    pub fn note_request(&self, span: u64, retry: bool) {
        for c in [&self.own, &*self.totals] {
            c.upstream_requests.fetch_add(1, Ordering::Relaxed);
            if retry {
                c.upstream_retries.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.max_span.fetch_max(span, Ordering::Relaxed);
    }

    pub fn note_bytes(&self, n: u64) {
        self.own.bytes_fetched.fetch_add(n, Ordering::Relaxed);
        self.totals.bytes_fetched.fetch_add(n, Ordering::Relaxed);
    }

    /// Upstream answered 429: the egress's gate holds its requests from now on, and the clip's other requests
    /// are not sent.
    pub fn note_throttled(&self, retry_after_secs: Option<u64>) {
        if let Some(gate) = &self.gate {
            gate.clip_throttled(std::time::Instant::now(), retry_after_secs.map(std::time::Duration::from_secs));
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        if let Some(secs) = retry_after_secs {
            self.retry_after_secs.fetch_max(secs, Ordering::Relaxed);
        }
    }

    /// Whether upstream has answered 429 to this registration, or to another of its clip's (they share the
    /// clip's gate handle, [`crate::governor::Gate::clip_met`]).
    pub fn was_throttled(&self) -> bool {
        self.throttled.load(Ordering::Relaxed) > 0 || self.gate.as_ref().is_some_and(|g| g.clip_met())
    }

    pub fn note_error(&self, error: UpstreamError) {
        if error == UpstreamError::RangeUnsupported {
            self.range_unsupported.store(true, Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    pub fn meta(&self) -> Option<Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records the resource length; a content type learned earlier survives a later answer without one.
    pub fn set_meta(&self, total: u64, content_type: Option<String>) {
        let mut meta = self.meta.lock().unwrap_or_else(PoisonError::into_inner);
        let content_type = content_type.or_else(|| meta.as_ref().and_then(|m| m.content_type.clone()));
        *meta = Some(Meta { total, content_type });
    }
}

impl Layout {
    /// Scans the header again once enough of it has arrived.
    fn update_plan(&mut self) {
        let Plan::Scanning { need } = self.plan else { return };
        if self.cache.contiguous() < need {
            return;
        }
        let prefix = self.cache.prefix();
        self.plan = match mp4::scan(&prefix) {
            Scan::NeedUpTo(need) => Plan::Scanning { need },
            Scan::Unknown => Plan::Unplanned,
            Scan::Header { end, moov, sidx } => {
                let tail = if sidx.is_some() { WINDOW_TAIL } else { 0 };
                let span = Index::parse(&prefix, moov, sidx)
                    .and_then(|index| self.window.and_then(|(start, stop)| index.window_span(start, stop)))
                    .map(|(a, b)| (a, b.saturating_add(tail)));
                tracing::debug!(header_end = end, ?span, "relay: planned the window's bytes");
                Plan::Known { header_end: end, span }
            }
        };
    }
}

fn forwarded_headers(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let parsed = (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()));
        match parsed {
            (Ok(name), Ok(value)) if !NOT_FORWARDED.contains(&name.as_str()) => {
                map.append(name, value);
            }
            (Ok(_), Ok(_)) => {}
            _ => tracing::debug!(header = %name, "relay: skipping an invalid upstream header"),
        }
    }
    map.insert(reqwest::header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    map
}

/// Token -> entry. Entries are `Arc`s so a request in flight finishes even if its registration is dropped.
#[derive(Default)]
pub(super) struct Registry {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Responses being served: each holds its entry (and the bytes it cached) until it ends.
    serving: AtomicUsize,
}

/// One response being served, counted in [`Registry::serving`] until dropped.
pub(super) struct Serving<'a>(&'a Registry);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Registry {
    pub fn serving(&self) -> Serving<'_> {
        self.serving.fetch_add(1, Ordering::Relaxed);
        Serving(self)
    }

    pub fn responses_in_flight(&self) -> usize {
        self.serving.load(Ordering::Relaxed)
    }

    pub fn get(&self, token: &str) -> Option<Arc<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    /// Stores the entry under a fresh random token and returns the token.
    fn insert(&self, entry: Arc<Entry>) -> String {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // 128 random bits: collisions are practically impossible, but cost only another draw.
            let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            if !entries.contains_key(&token) {
                entries.insert(token.clone(), entry);
                return token;
            }
        }
    }

    fn remove(&self, token: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
    }
}

/// One upstream URL made reachable through the relay. Dropping it unregisters the URL: later requests to
/// it get 404, while a transfer already running finishes.
pub struct Registration {
    token: String,
    url: String,
    entry: Arc<Entry>,
    registry: Arc<Registry>,
}

impl Registration {
    pub(super) fn new(registry: Arc<Registry>, entry: Entry, base: &str) -> Self {
        let entry = Arc::new(entry);
        let token = registry.insert(entry.clone());
        let url = format!("{base}/m/{token}");
        Registration { token, url, entry, registry }
    }

    /// The URL to give ffmpeg: `http://127.0.0.1:PORT/m/<token>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Body bytes read from upstream for this registration.
    pub fn bytes_fetched(&self) -> u64 {
        self.entry.own.bytes_fetched.load(Ordering::Relaxed)
    }

    /// Upstream requests sent for this registration, retries and length probes included.
    pub fn upstream_requests(&self) -> u64 {
        self.entry.own.upstream_requests.load(Ordering::Relaxed)
    }

    /// How many of those requests were retries after a transient failure.
    pub fn upstream_retries(&self) -> u64 {
        self.entry.own.upstream_retries.load(Ordering::Relaxed)
    }

    /// The largest `b - a + 1` of any upstream `Range: bytes=a-b` sent for this registration.
    pub fn max_request_span(&self) -> u64 {
        self.entry.max_span.load(Ordering::Relaxed)
    }

    /// The last upstream failure that reached ffmpeg (an error status passed through, or an aborted
    /// transfer). Failures that a retry recovered from are not recorded.
    pub fn last_upstream_error(&self) -> Option<UpstreamError> {
        self.entry.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A request was held at the egress's gate past its bound and not sent (the clip goes back, uncharged).
    pub fn held(&self) -> bool {
        matches!(self.last_upstream_error(), Some(UpstreamError::Held(_)))
    }

    /// How many upstream requests were answered 429 (requests sent into a ban).
    pub fn throttled_responses(&self) -> u64 {
        self.entry.throttled.load(Ordering::Relaxed)
    }

    /// The longest `Retry-After` an upstream 429 carried (the seconds form; an HTTP date is ignored).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let secs = self.entry.retry_after_secs.load(Ordering::Relaxed);
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
    }

    /// CPU the relay spent serving this URL to ffmpeg: the thread time of its transfers' polls (reading
    /// upstream bodies, writing to ffmpeg). The upstream connections' own tasks are not included.
    pub fn cpu(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.entry.cpu_ns.load(Ordering::Relaxed))
    }

    /// Whether upstream answered 200 to a Range request; the caller should fetch the whole video instead.
    pub fn range_unsupported(&self) -> bool {
        self.entry.range_unsupported.load(Ordering::Relaxed)
    }

    /// The resource length, once any upstream answer has revealed it.
    pub fn total_length(&self) -> Option<u64> {
        self.entry.meta().map(|m| m.total)
    }

    /// Says which window (seconds of the source, as ffmpeg's `-ss`/`-to`) will be read, so that once the
    /// MP4 header is in, the window's bytes are asked for in one piece sized to fit. Call before handing
    /// the URL to ffmpeg.
    pub fn set_window(&self, start: f64, end: f64) {
        self.entry.layout().window = Some((start, end));
    }

    /// Says what the format's metadata tells of the file, so that the first read is sized to hold its
    /// whole header (and ffmpeg's probe after it) in one request. Call before handing the URL to ffmpeg.
    pub fn expect(&self, expect: Expect) {
        self.entry.layout().first_read = first_read(expect);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.token);
    }
}

impl std::fmt::Debug for Registration {
    // Manual so the upstream URL (signed) and cookies never end up in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("url", &self.url)
            .field("upstream_host", &self.entry.host)
            .field("bytes_fetched", &self.bytes_fetched())
            .field("upstream_requests", &self.upstream_requests())
            .finish()
    }
}

#[cfg(test)]
mod tests;
