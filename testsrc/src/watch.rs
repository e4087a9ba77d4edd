//! The watch page `GET /watch?v={id}`: everything an extractor needs about a video in the one response,
//! as YouTube's watch page carries it in its player response (`streamingData`: the progressive `formats`
//! and the `adaptiveFormats`, each with its URL, codecs, size, bitrate and, for DASH, `initRange` and
//! `indexRange`). So yt-dlp makes one request before any media, as it does on YouTube, and `-f`/`-S`
//! choose between the progressive itag 18 and the DASH video-only and audio-only formats.
//!
//! yt-dlp has no extractor for this host, and its generic extractor reads formats from a page without a
//! second request in one shape only: the page is itself a DASH manifest (it parses any response whose
//! document root is `<MPD>`, after reading its first bytes to see it is not a media file). So the page is
//! the on-demand manifest of `/v/{id}.mpd` with absolute base URLs (`/v/{id}/video.mp4`, resolved against
//! the page's URL), plus the progressive file as one more representation:
//!
//! - The DASH representations keep their ids (`133`/`134`, `140`, and the WebM ones), become plain `http`
//!   formats at their base URLs, video-only and audio-only, `container` `mp4_dash`/`m4a_dash`.
//! - The progressive file is representation `18` with both codecs (`avc1...`, `mp4a.40.2`), so yt-dlp
//!   knows its video codec as it does YouTube's itag 18 (an HTML `<source>` loses it), and its frame rate.
//!   It is not fragmented, but yt-dlp names every manifest format's container `mp4_dash`; kinetics-dl
//!   calls a format DASH only when it is also single-stream, YouTube's own rule.
//! - Every base URL carries `yt:contentLength`, which yt-dlp reads into `filesize`, as it reads
//!   `contentLength` on YouTube. yt-dlp 2026.11 reads neither the manifest's `SegmentBase` ranges nor
//!   YouTube's `initRange`/`indexRange`: they are there, but no format carries them.
//! - The title is in `<ProgramInformation>`; yt-dlp names the video after the URL (`watch`) instead.
//!
//! The page never changes with the request's `Range`; `/v/{id}.mpd` stays for tests that hand yt-dlp
//! the manifest itself.

use crate::config::Profile;
use crate::dash::{self, DashMedia, Kind, Manifest, Representation};

/// The representation id, hence yt-dlp's `format_id`, of the progressive file: YouTube's itag for its
/// progressive H.264 + AAC MP4.
pub const PROGRESSIVE_ITAG: &str = "18";

/// The video's title, in the page's `<ProgramInformation>`.
pub fn title(id: &str) -> String {
    format!("kinetics-testsrc video {id}")
}

/// What the page for `id` says: the DASH formats of `media` and the progressive file of
/// `progressive_len` bytes (which shares their codecs: the DASH files are remuxed from it), each at its
/// absolute path on this host followed by `query` (empty, or `?...`: the signature of a signed id).
pub fn watch_manifest(id: &str, profile: &Profile, media: &DashMedia, progressive_len: u64, query: &str) -> Manifest {
    let mut manifest = media.manifest(id, profile);
    for rep in std::iter::once(&mut manifest.video).chain(&mut manifest.audio).chain(&mut manifest.webm) {
        rep.base_url = format!("/v/{}{query}", rep.base_url);
    }
    let mut codecs = media.video.layout.track.codecs.clone();
    let audio = media.audio.as_ref().map(|a| &a.layout.track);
    if let Some(track) = audio {
        codecs = format!("{codecs}, {}", track.codecs);
    }
    manifest.progressive = Some(Representation {
        id: PROGRESSIVE_ITAG.to_owned(),
        base_url: format!("/v/{id}.mp4{query}"),
        codecs,
        bandwidth: dash::bandwidth(progressive_len, profile.duration_secs),
        content_length: progressive_len,
        segment: None,
        kind: Kind::Muxed {
            width: profile.width,
            height: profile.height,
            fps: profile.fps,
            sampling_rate: audio.map(|t| t.sample_rate.unwrap_or(44_100)),
        },
        webm: false,
    });
    manifest.title = Some(title(id));
    manifest
}

/// Renders the page for `id` (a valid id: `[A-Za-z0-9_-]`); see [`watch_manifest`].
pub fn render_watch_page(id: &str, profile: &Profile, media: &DashMedia, progressive_len: u64, query: &str) -> String {
    dash::render_mpd(&watch_manifest(id, profile, media, progressive_len, query))
}
