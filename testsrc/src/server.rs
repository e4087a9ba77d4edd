//! The accept loop, the per-connection request loop, and routing to videos, static files and stats.
//!
//! Each id has five resources: the watch page `/watch?v={id}` listing every format of the other two forms, the
//! progressive `/v/{id}.mp4`, the DASH manifest `/v/{id}.mpd`, and the two DASH tracks it points at,
//! `/v/{id}/video.mp4` and `/v/{id}/audio.m4a`. All five are "video requests": each counts for the
//! per-IP throttle and the id's stats and goes through the id's scripted behaviour.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::behaviour::Behaviour;
use crate::config::Config;
use crate::dash::{self, DashMedia, Track};
use crate::files;
use crate::http::{self, HeadError, Request};
use crate::respond::{self, Reply};
use crate::stats::Recorder;
use crate::throttle::{Bucket, IpTracker, Verdict};
use crate::video;
use crate::watch;

/// How long a new connection may take to send its first request head.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle keep-alive connection is kept.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(15);

/// A file served for video ids.
#[derive(Debug, Clone)]
pub(crate) struct Media {
    pub path: PathBuf,
    pub len: u64,
}

/// Everything served for the ids of one profile.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub progressive: Media,
    pub dash: DashMedia,
}

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    /// Keyed by profile name; `None` is the default profile.
    pub media: BTreeMap<Option<String>, Prepared>,
    pub recorder: Recorder,
    pub bucket: Option<Bucket>,
    pub static_root: Option<PathBuf>,
    fail_counts: Mutex<HashMap<String, u32>>,
    ips: Mutex<IpTracker>,
    /// Random per server: signatures of one server are worthless to another.
    sign_key: RandomState,
}

impl Shared {
    /// Validates the config and encodes (or finds in the cache) every video it can serve, in both forms.
    /// The DASH files are made here rather than on first request: a remux takes well under a second
    /// once per cache, reading a cached layout takes microseconds, and request handlers never block.
    pub fn new(config: Config) -> anyhow::Result<Shared> {
        config.validate()?;
        let mut media = BTreeMap::new();
        for (name, profile) in config.used_profiles() {
            let path = video::ensure_video(&config.cache_dir, profile)?;
            let len = std::fs::metadata(&path)?.len();
            let dash = dash::ensure_dash(&path, profile)?;
            media.insert(name.map(str::to_owned), Prepared { progressive: Media { path, len }, dash });
        }
        let static_root = match &config.static_dir {
            Some(dir) => {
                Some(dir.canonicalize().with_context(|| format!("static dir {} is not readable", dir.display()))?)
            }
            None => None,
        };
        Ok(Shared {
            bucket: (config.bandwidth > 0).then(|| Bucket::new(config.bandwidth)),
            ips: Mutex::new(IpTracker::new(config.ip_throttle.clone())),
            config,
            media,
            recorder: Recorder::default(),
            static_root,
            fail_counts: Mutex::new(HashMap::new()),
            sign_key: RandomState::new(),
        })
    }

    /// The files served for `id`.
    pub fn media_for(&self, id: &str) -> &Prepared {
        let profile = self.config.scenario.get(id).and_then(|e| e.profile.clone());
        self.media.get(&profile).or_else(|| self.media.get(&None)).expect("default profile is always encoded")
    }

    /// Counts a request for `id` and says whether `fail_then_ok` should still fail it. All of an id's
    /// resources share one count, so the first requests fail whichever resource they ask for.
    pub(crate) fn should_fail(&self, id: &str, count: u32) -> bool {
        let mut counts = self.fail_counts.lock().unwrap_or_else(|e| e.into_inner());
        let seen = counts.entry(id.to_owned()).or_default();
        *seen += 1;
        *seen <= count
    }
}

impl Shared {
    /// The query of a media URL of `id` handed to `ip`, valid until `expire` (Unix seconds).
    fn signed_query(&self, id: &str, ip: IpAddr, expire: u64) -> String {
        let sig = self.sign_key.hash_one((id, ip.to_string(), expire));
        format!("ip={ip}&expire={expire}&sig={sig:016x}")
    }

    /// Why a request for a signed id's media is refused, if it is.
    fn signature_problem(&self, req: &Request, id: &str, peer: IpAddr) -> Option<&'static str> {
        let (Some(ip), Some(expire), Some(sig)) =
            (req.query_param("ip"), req.query_param("expire"), req.query_param("sig"))
        else {
            return Some("unsigned media URL");
        };
        let Ok(expire) = expire.parse::<u64>() else { return Some("bad expiry") };
        let wanted = self.signed_query(id, ip.parse().unwrap_or(peer), expire);
        if !wanted.ends_with(&format!("&sig={sig}")) || !wanted.starts_with(&format!("ip={ip}&")) {
            Some("bad signature")
        } else if ip != peer.to_string() {
            Some("URL signed for another IP")
        } else if expire < unix_secs() {
            Some("URL expired")
        } else {
            None
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Which of an id's resources a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `/watch?v={id}`: the page listing every format (the manifest and the progressive file).
    Page,
    /// `/v/{id}.mp4`: one progressive file with video and audio, like YouTube's itag 18.
    Progressive,
    /// `/v/{id}.mpd`: the DASH manifest naming the two tracks.
    Manifest,
    /// `/v/{id}/video.mp4` or `/v/{id}/audio.m4a`.
    Dash(Track),
}

/// Splits the path after `/v/` into a valid id and the resource; `None` for anything else.
pub(crate) fn parse_video_path(rest: &str) -> Option<(&str, Resource)> {
    let (id, resource) = match rest.split_once('/') {
        Some((id, "video.mp4")) => (id, Resource::Dash(Track::Video)),
        Some((id, "audio.m4a")) => (id, Resource::Dash(Track::Audio)),
        Some((id, "video.webm")) => (id, Resource::Dash(Track::WebmVideo)),
        Some((id, "audio.webm")) => (id, Resource::Dash(Track::WebmAudio)),
        Some(_) => return None,
        None => match (rest.strip_suffix(".mp4"), rest.strip_suffix(".mpd")) {
            (Some(id), _) => (id, Resource::Progressive),
            (_, Some(id)) => (id, Resource::Manifest),
            _ => return None,
        },
    };
    valid_id(id).then_some((id, resource))
}

/// The id a `/watch` request asks for: the first `v` query parameter, if it is a valid id as given
/// (not percent-decoded: an encoded character could only decode to one outside the id alphabet or to
/// one that needs no encoding).
pub(crate) fn parse_watch_query(req: &Request) -> Option<(&str, Resource)> {
    req.query_param("v").filter(|id| valid_id(id)).map(|id| (id, Resource::Page))
}

/// Video ids look like YouTube's: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Accepts connections until `shutdown` fires (or its sender is dropped).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(connection(stream, peer, shared.clone()));
                }
                // Out of descriptors or a connection reset before accept: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut idle = FIRST_REQUEST_TIMEOUT;
    loop {
        let req = match read_request(&mut stream, &mut buf, idle).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                let status = if e == HeadError::TooLarge { 431 } else { 400 };
                let reply = Reply::text(status, "bad request\n").close();
                let _ = respond::send(&mut stream, reply, None, peer, &shared).await;
                return linger_close(stream).await;
            }
        };
        let reply = route(&req, peer, &shared);
        match respond::send(&mut stream, reply, Some(&req), peer, &shared).await {
            Ok(true) => idle = KEEP_ALIVE_TIMEOUT,
            Ok(false) => return linger_close(stream).await,
            // The client hung up mid-response: nothing to tell anyone.
            Err(_) => return,
        }
    }
}

/// Reads one request head into `buf`; `Ok(None)` when the client closed or went idle.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, idle: Duration) -> Result<Option<Request>, HeadError> {
    loop {
        if let Some((req, used)) = http::parse_head(buf)? {
            buf.drain(..used);
            return Ok(Some(req));
        }
        let mut chunk = [0u8; 4096];
        match timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Ok(None),
        }
    }
}

/// Half-closes, then drains what the client still sends, so unread request bytes do not turn our
/// close into a reset that could destroy the response before the client reads it.
async fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 4096];
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}

fn route(req: &Request, peer: SocketAddr, shared: &Shared) -> Reply {
    if req.method != "GET" && req.method != "HEAD" {
        return Reply::text(405, "only GET and HEAD\n").header("Allow", "GET, HEAD").close();
    }
    let reply = if req.path == "/_stats" {
        Reply::json(&shared.recorder.snapshot()).internal()
    } else if req.path == "/watch" {
        video(req, parse_watch_query(req), peer, shared)
    } else if let Some(rest) = req.path.strip_prefix("/v/") {
        video(req, parse_video_path(rest), peer, shared)
    } else if let Some(rest) = req.path.strip_prefix("/files/") {
        files::reply(req, rest, shared)
    } else {
        Reply::text(404, "not found\n")
    };
    if req.has_body() {
        reply.close()
    } else {
        reply
    }
}

/// Answers a video request: `target` is the id and resource asked for, `None` when the path or query
/// names no valid id (still counted for the per-IP throttle, like any request for a video).
fn video(req: &Request, target: Option<(&str, Resource)>, peer: SocketAddr, shared: &Shared) -> Reply {
    let id = target.map(|(id, _)| id);
    let verdict = shared.ips.lock().unwrap_or_else(|e| e.into_inner()).check(peer.ip(), Instant::now());
    if let Verdict::Banned { remaining } = verdict {
        shared.recorder.banned(peer.ip(), remaining);
        let reply = Reply::text(429, "too many requests\n").for_id(id);
        if shared.config.ip_throttle.unsaid {
            return reply;
        }
        let retry_after = remaining.as_secs_f64().ceil().max(1.0) as u64;
        return reply.header("Retry-After", retry_after.to_string());
    }
    let Some((id, resource)) = target else {
        return Reply::text(404, "no such video\n");
    };
    let entry = shared.config.entry_for(id);
    let media = matches!(resource, Resource::Progressive | Resource::Dash(_));
    if entry.redirect && media && req.query_param("hop").is_none() {
        let query = if req.query.is_empty() { "hop=1".to_owned() } else { format!("{}&hop=1", req.query) };
        return Reply::text(302, "moved\n").header("Location", format!("{}?{query}", req.path)).for_id(Some(id));
    }
    if entry.signed && resource != Resource::Page {
        if let Some(problem) = shared.signature_problem(req, id, peer.ip()) {
            return Reply::text(403, &format!("forbidden: {problem}\n")).for_id(Some(id));
        }
    }
    let behaviour = entry.behaviour;
    let reply = match behaviour {
        Behaviour::Status(status) => scripted_status(status),
        Behaviour::FailThenOk { status, count } if shared.should_fail(id, count) => scripted_status(status),
        Behaviour::Html => Reply::html(HTML_PAGE),
        _ => resource_reply(req, id, resource, behaviour, peer, shared),
    };
    reply.for_id(Some(id))
}

/// The normal answer for one of an id's resources. Truncation, slowness and ignoring Range shape media
/// bodies only: the page and the manifest are small and always served whole.
fn resource_reply(
    req: &Request,
    id: &str,
    resource: Resource,
    behaviour: Behaviour,
    peer: SocketAddr,
    shared: &Shared,
) -> Reply {
    let media = shared.media_for(id);
    // A signed id's page and manifest hand out URLs signed for the client that asked.
    let signed = shared.config.entry_for(id).signed.then(|| {
        let expire = (unix_secs() as f64 + shared.config.url_ttl_secs).max(0.0) as u64;
        format!("?{}", shared.signed_query(id, peer.ip(), expire))
    });
    let query = signed.as_deref().unwrap_or_default();
    match resource {
        Resource::Page => Reply::mpd(watch::render_watch_page(
            id,
            shared.config.profile_for(id),
            &media.dash,
            media.progressive.len,
            query,
        )),
        Resource::Progressive => {
            let file = &media.progressive;
            respond::media(req, (&file.path, file.len), "video/mp4", (id, behaviour), shared)
        }
        Resource::Manifest => {
            let mut manifest = media.dash.manifest(id, shared.config.profile_for(id));
            for rep in std::iter::once(&mut manifest.video).chain(&mut manifest.audio) {
                rep.base_url.push_str(query);
            }
            Reply::mpd(dash::render_mpd(&manifest))
        }
        Resource::Dash(track) => match media.dash.track(track) {
            Some(file) if refused_without_token(req, file.len, peer, shared) => {
                Reply::text(403, "forbidden: this format needs a proof-of-origin token past its first bytes\n")
            }
            Some(file) => respond::media(req, (&file.path, file.len), track.content_type(), (id, behaviour), shared),
            None => Reply::text(404, "this video has no such track\n"),
        },
    }
}

/// Whether the DASH token rule ([`crate::config::DashToken`]) refuses this request for a file of `len` bytes.
fn refused_without_token(req: &Request, len: u64, peer: SocketAddr, shared: &Shared) -> bool {
    let start = crate::range::resolve_header(req.header("range"), len).start();
    shared.config.dash_token.refuses(&peer.ip().to_string(), start)
}

/// A scripted error (or odd success) with its reason phrase as body; 204 and 304 must not have one.
fn scripted_status(status: u16) -> Reply {
    let body = if matches!(status, 204 | 304) { String::new() } else { format!("{}\n", http::reason(status)) };
    Reply::text(status, &body)
}

const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Video unavailable</title></head>\n\
<body><h1>Video unavailable</h1><p>This page has no playable media.</p></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_table() {
        let long = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases = [
            ("dQw4w9WgXcQ", true),
            ("-_aZ09", true),
            (long.as_str(), true),
            (too_long.as_str(), false),
            ("", false),
            ("a.b", false),
            ("a/b", false),
            ("..", false),
            ("é", false),
            ("a%20b", false),
        ];
        for (id, want) in cases {
            assert_eq!(valid_id(id), want, "{id:?}");
        }
    }

    #[test]
    fn watch_query_table() {
        let target = |query: &str| {
            let raw = format!("GET /watch?{query} HTTP/1.1\r\n\r\n");
            let req = http::parse_head(raw.as_bytes()).unwrap().unwrap().0;
            parse_watch_query(&req).map(|(id, resource)| (id.to_owned(), resource))
        };
        let long = format!("v={}", "a".repeat(65));
        let cases: &[(&str, Option<&str>)] = &[
            ("v=dQw4w9WgXcQ", Some("dQw4w9WgXcQ")),
            ("feature=share&v=a-_9&t=5", Some("a-_9")),
            ("v=abc&v=xyz", Some("abc")),
            ("v=", None),
            ("v=a.b", None),
            ("v=a%2Db", None),
            ("v=abc/x", None),
            ("list=v", None),
            (&long, None),
        ];
        for &(query, want) in cases {
            assert_eq!(target(query), want.map(|id| (id.to_owned(), Resource::Page)), "{query:?}");
        }
    }

    #[test]
    fn video_path_table() {
        use Resource::*;
        let long = format!("{}.mpd", "a".repeat(65));
        let cases: &[(&str, Option<(&str, Resource)>)] = &[
            ("abc.mp4", Some(("abc", Progressive))),
            ("abc.mpd", Some(("abc", Manifest))),
            ("abc/video.mp4", Some(("abc", Dash(Track::Video)))),
            ("abc/audio.m4a", Some(("abc", Dash(Track::Audio)))),
            ("a-_9/video.mp4", Some(("a-_9", Dash(Track::Video)))),
            ("video.mp4", Some(("video", Progressive))),
            ("abc", None),
            ("abc.webm", None),
            (".mpd", None),
            ("a.b.mpd", None),
            (&long, None),
            ("abc/video.m4a", None),
            ("abc/audio.mp4", None),
            ("abc/video.mp4/x", None),
            ("abc.mpd/video.mp4", None),
            ("abc//video.mp4", None),
            ("/video.mp4", None),
            ("../video.mp4", None),
            ("a%2fb/video.mp4", None),
            ("abc/", None),
        ];
        for (rest, want) in cases {
            assert_eq!(parse_video_path(rest), *want, "{rest:?}");
        }
    }
}
