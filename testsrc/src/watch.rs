//! The watch page `GET /watch?v={id}`: a small HTML5 page offering both forms of a video, so yt-dlp
//! sees the same choice it gets on YouTube, between the progressive itag 18 and the DASH video-only and
//! audio-only formats, and `-f`/`-S` decide.
//!
//! yt-dlp has no extractor for this host, so its generic extractor reads the page. It is HTML, so
//! yt-dlp does not take the URL as a direct media link (which makes it fetch ~300 KB of a progressive
//! file it then hangs up on), and the `html5` embed extractor (`HTML5MediaEmbedIE`, through
//! `InfoExtractor._parse_html5_media_entries`) turns the `<video>` element into formats:
//!
//! - A `<source>` whose `type` is `application/dash+xml` (the MIME type maps to ext `mpd`) is fetched
//!   and parsed as a manifest, with `mpd_id=None`: its formats keep the representation ids (`133`/`134`,
//!   `140`) and point at `/v/{id}/video.mp4` and `/v/{id}/audio.m4a` (the manifest's base URLs are
//!   resolved against the manifest's URL). Relative `src` values are resolved against the page URL.
//! - Any other `<source>` is one plain format. Its `format_id` is the `label` (or `title`) attribute:
//!   without one yt-dlp numbers it by its place in the sorted list (`0`, `1`, ...), so the page sets
//!   `label="18"`. The non-standard `width` and `height` attributes give it a resolution, which
//!   `-S res:...` needs to weigh it against the DASH video. The `codecs` in `type` give it its
//!   `acodec` (`mp4a.40.2`) and its `ext` (`mp4`), but not a `vcodec`: yt-dlp overwrites that with
//!   `None` for every plain `<video>` source, so `-F` shows its video codec as `unknown`. That also
//!   makes it rank below the DASH video for `-S vcodec:h264`, unlike YouTube's itag 18 (`avc1`).
//!
//! The order of the sources does not matter to yt-dlp (it sorts formats itself); the manifest comes
//! first because a browser plays the first source it can.

use std::fmt::Write as _;

use crate::config::Profile;
use crate::dash::DashMedia;

/// The `label`, hence yt-dlp's `format_id`, of the progressive source: YouTube's itag for its
/// progressive H.264 + AAC MP4.
pub const PROGRESSIVE_ITAG: &str = "18";

/// The page title, which yt-dlp takes as the video title.
pub fn title(id: &str) -> String {
    format!("kinetics-testsrc video {id}")
}

/// Renders the page for `id` (a valid id: `[A-Za-z0-9_-]`, nothing to escape). `media` gives the codec
/// strings of the tracks, which the progressive file shares (the DASH files are remuxed from it).
/// `query` (empty, or `?...` with `&` already escaped for HTML) is appended to both media URLs: the
/// signature of a signed id.
pub fn render_watch_page(id: &str, profile: &Profile, media: &DashMedia, query: &str) -> String {
    let (width, height) = (profile.width, profile.height);
    let mut codecs = media.video.layout.track.codecs.clone();
    if let Some(audio) = &media.audio {
        let _ = write!(codecs, ", {}", audio.layout.track.codecs);
    }
    let title = title(id);
    format!(
        "<!DOCTYPE html>\n\
<html lang=\"en\">\n\
<head>\n\
<meta charset=\"utf-8\">\n\
<title>{title}</title>\n\
</head>\n\
<body>\n\
<h1>{title}</h1>\n\
<video controls width=\"{width}\" height=\"{height}\">\n  \
<source src=\"/v/{id}.mpd{query}\" type=\"application/dash+xml\">\n  \
<source src=\"/v/{id}.mp4{query}\" type='video/mp4; codecs=\"{codecs}\"' label=\"{PROGRESSIVE_ITAG}\" \
width=\"{width}\" height=\"{height}\">\n\
</video>\n\
</body>\n\
</html>\n"
    )
}
