//! kinetics-testsrc: a local stand-in for YouTube used by kinetics-dl's tests, demo and benchmarks.
//!
//! It serves synthetic videos with HTTP Range support, scripted failures per id, a global bandwidth cap,
//! YouTube-like throttling of open-ended ranges and per-IP 429 bans. Each id has a watch page and is
//! served in two forms:
//!
//! - `http://ADDR/watch?v={id}`: the watch page, which, like YouTube's player response, lists every format
//!   with its URL, codecs, size and (for DASH) index ranges, so yt-dlp needs no second request: it is an
//!   on-demand DASH manifest (`application/dash+xml`), the one shape yt-dlp's generic extractor reads formats
//!   from in one request, naming the DASH files below and the progressive file as format `18`, so
//!   `-f`/`-S` choose between them as on YouTube; see [`watch`].
//! - `http://ADDR/v/{id}.mp4`: one progressive MP4 with video and audio, like YouTube's itag 18.
//! - `http://ADDR/v/{id}.mpd`: a static on-demand DASH manifest (`application/dash+xml`) naming a
//!   video-only `http://ADDR/v/{id}/video.mp4` and, when the profile has audio, an audio-only
//!   `http://ADDR/v/{id}/audio.m4a`, both fragmented MP4 laid out `ftyp, moov, sidx, moof, mdat, ...`
//!   like YouTube's DASH formats (which is what `-f "bv*+ba/b"` usually picks). yt-dlp's generic
//!   extractor turns the manifest into two plain `http` formats (`133`/`134`... for video by height,
//!   `140` for audio) and ffmpeg seeks in them through the `sidx`.
//!
//! Every frame shows its own number in a strip across the top, so a test can check which frames a clip
//! contains with [`clip_frame_numbers`]. The server runs on its own thread and runtime, so it works from
//! plain synchronous tests:
//!
//! ```no_run
//! use kinetics_testsrc::{spawn, Behaviour, Config};
//! let config = Config::for_tests().with_behaviour("gone", Behaviour::Status(410));
//! let server = spawn(config, "127.0.0.1:0".parse().unwrap()).unwrap();
//! let url = server.video_url("abc"); // http://127.0.0.1:PORT/v/abc.mp4
//! # let _ = url;
//! assert_eq!(server.stats().total_requests, 0);
//! ```
//!
//! YouTube's rough edges are switched on per video, so tests pick the world they need:
//! - per profile ([`Profile`]): `bframes` (composition offsets, an edit list), `irregular_keyframes`
//!   (forced at irregular times up to 9.6 s apart, scene cuts on), `tag` (a second strip telling videos
//!   apart: [`clip_tags`]), `dash_fragment_secs` (~5 s DASH fragments with unaligned audio), `open_gop`
//!   (x264's open GOPs);
//! - per id ([`ScenarioEntry`]): `signed` (media URLs bound to the client IP that fetched the page, with an
//!   expiry, 403 otherwise), `redirect` (a 302 before each media body), and the behaviours, among them
//!   `stall:FRACTION[:COUNT]` (a body that stops without closing) and `garble:FRACTION` (512 bytes of each
//!   media file damaged from that place on, lengths and headers intact);
//! - server-wide: the open-range throttle, on by default (it touches only files with more than 10 MB left).
//!
//! Counting rules worth knowing when writing tests:
//! - Every request for `/v/{id}.mp4` counts, whatever its method or range: yt-dlp's generic extractor
//!   makes one GET before ffmpeg's range requests, and that GET uses up one `fail_then_ok` failure
//!   and one slot of the per-IP window. `/_stats` is never counted; `/files/...` counts in the totals
//!   but not for the per-IP throttle.
//! - The same holds for the watch page and the DASH resources: `/watch?v={id}`, `/v/{id}.mpd`,
//!   `/v/{id}/video.mp4` and `/v/{id}/audio.m4a` each count as a video request of the id, and all five
//!   resources of an id share one `fail_then_ok` count (yt-dlp's first GET, of the page, the manifest
//!   or `/v/{id}.mp4`, whichever URL it was given, takes the first failure). `status:N`, `fail_then_ok`
//!   and `html` answer every resource alike (so yt-dlp fails on the page with `HTTP Error N`, or finds
//!   no video on it); `truncate`, `slow` and `no_range` shape the media bodies only, the page and the
//!   manifest are always served whole. From a watch URL yt-dlp makes one request before any media, the
//!   page (from `/v/{id}.mpd` one, the manifest). A `/watch` request without a valid `v` is a 404 that
//!   counts for the per-IP throttle but for no id. The log keeps the path without its query (`/watch`)
//!   and the id each request counted for: see [`Stats::log_for_page`].
//! - The open-range throttle looks at what is served: a 200 full body or a `bytes=a-` range with more
//!   than `threshold` bytes left. Bounded `a-b` and suffix `-n` ranges are never throttled.
//! - `bytes_sent` counts bytes handed to the kernel. Send buffers are kept small, but a client that
//!   hangs up may still not have read the last ~200 KiB counted for it. A client can finish reading a
//!   body before the server counts its last chunk: use [`TestServer::wait_idle`] before asserting.

pub mod behaviour;
pub mod config;
pub mod dash;
mod files;
pub mod frames;
mod http;
pub mod mp4;
pub mod range;
mod respond;
mod server;
pub mod stats;
mod throttle;
pub mod tone;
pub mod video;
pub mod watch;
pub mod webm;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;

pub use behaviour::{Behaviour, ScenarioEntry};
pub use config::{Config, DashToken, IpThrottle, OpenRangeThrottle, Profile};
pub use dash::{DashMedia, Track, TrackFile};
pub use frames::{
    clip_frame_numbers, clip_frame_sequence, clip_tags, decode_frame_number, decode_tag, frame_number_at, probe_size,
};
pub use server::valid_id;
pub use stats::{IdStats, IpStats, LogEntry, Stats};

/// A running server; dropping it stops the server and waits for its thread.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Encodes (or takes from the cache) every video the config can serve, binds `listen`, and starts
/// serving on a background thread. Returns once the server accepts connections.
pub fn spawn(config: Config, listen: SocketAddr) -> anyhow::Result<TestServer> {
    let shared = Arc::new(server::Shared::new(config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kinetics-testsrc-worker")
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    let listener = {
        let _guard = runtime.enter();
        bind(listen).with_context(|| format!("failed to listen on {listen}"))?
    };
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let serving = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("kinetics-testsrc {addr}"))
        .spawn(move || {
            runtime.block_on(server::serve(listener, serving, shutdown_rx));
            // Connections still trickling bytes are cut off; their clients see a reset or EOF.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .context("failed to start the server thread")?;
    Ok(TestServer { addr, shared, shutdown: Some(shutdown_tx), thread: Some(thread) })
}

/// Size of the kernel send buffer of every connection (accepted sockets inherit it from the listener).
/// Small on purpose: bytes written into a large buffer count as sent even when the client hangs up
/// before reading them, which would inflate the byte counts benchmarks rely on.
const SEND_BUFFER: u32 = 128 * 1024;

fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.bind(listen)?;
    socket.listen(1024)
}

impl TestServer {
    /// `http://ADDR`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v/{youtube_id}.mp4`, with the placeholder left in for kinetics-dl to fill.
    pub fn url_template(&self) -> String {
        format!("http://{}/v/{{youtube_id}}.mp4", self.addr)
    }

    /// The media URL for one id.
    pub fn video_url(&self, id: &str) -> String {
        format!("http://{}/v/{id}.mp4", self.addr)
    }

    /// The same counters `GET /_stats` returns.
    pub fn stats(&self) -> Stats {
        self.shared.recorder.snapshot()
    }

    /// Waits until no response is being written, so counters include every body a client has read,
    /// then returns the stats; `None` if responses are still in flight after `limit` (e.g. a throttled
    /// download still running).
    pub fn wait_idle(&self, limit: Duration) -> Option<Stats> {
        let deadline = Instant::now() + limit;
        loop {
            let stats = self.stats();
            if stats.in_flight == 0 {
                return Some(stats);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The profile of the video served for `id` (fps turns frame numbers into seconds).
    pub fn profile_for(&self, id: &str) -> &Profile {
        self.shared.config.profile_for(id)
    }

    /// Frames per second of the video served for `id`.
    pub fn fps_for(&self, id: &str) -> u32 {
        self.profile_for(id).fps
    }

    /// The cached file served for `id`, to compare bytes or probe it directly.
    pub fn video_path(&self, id: &str) -> &Path {
        &self.shared.media_for(id).progressive.path
    }

    /// Size in bytes of the file served for `id`.
    pub fn video_len(&self, id: &str) -> u64 {
        self.shared.media_for(id).progressive.len
    }

    /// `http://ADDR/v/{id}.mpd`: the DASH manifest for one id, to hand to yt-dlp.
    pub fn mpd_url(&self, id: &str) -> String {
        format!("http://{}/v/{id}.mpd", self.addr)
    }

    /// `http://ADDR/v/{youtube_id}.mpd`, with the placeholder left in for kinetics-dl to fill.
    pub fn mpd_url_template(&self) -> String {
        format!("http://{}/v/{{youtube_id}}.mpd", self.addr)
    }

    /// `http://ADDR/watch?v={id}`: the watch page for one id, to hand to yt-dlp as if it were YouTube.
    pub fn watch_url(&self, id: &str) -> String {
        format!("http://{}/watch?v={id}", self.addr)
    }

    /// `http://ADDR/watch?v={youtube_id}`, with the placeholder left in for kinetics-dl to fill.
    pub fn watch_url_template(&self) -> String {
        format!("http://{}/watch?v={{youtube_id}}", self.addr)
    }

    /// The page served at `/watch?v={id}`, without asking the server.
    pub fn watch_page_text(&self, id: &str) -> String {
        watch::render_watch_page(id, self.profile_for(id), self.dash_media(id), self.video_len(id), "")
    }

    /// `http://ADDR/v/{id}/video.mp4` or `.../audio.m4a`: where the manifest's base URLs resolve.
    pub fn dash_url(&self, id: &str, track: Track) -> String {
        format!("http://{}{}", self.addr, track.url_path(id))
    }

    /// The cached DASH files served for `id` (paths, sizes, the ranges the manifest names).
    pub fn dash_media(&self, id: &str) -> &DashMedia {
        &self.shared.media_for(id).dash
    }

    /// The manifest served at `/v/{id}.mpd`, without asking the server.
    pub fn mpd_text(&self, id: &str) -> String {
        dash::render_mpd(&self.dash_media(id).manifest(id, self.profile_for(id)))
    }

    /// Stops the server and waits for it (the same as dropping it).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
