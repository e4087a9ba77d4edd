//! yt-dlp: resolves a video page into media URLs (and, as a fallback, downloads a whole video).

use super::extractor::{Claim, Pools};
use super::process::{self, StopSignal};
use super::Failure;
use crate::classify::{Category, Disposition};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::process::Command;

pub const INSTALL_HINT: &str =
    "install it with `pip install -U \"yt-dlp[default]\"` (plus `pip install deno` for YouTube)";

/// The `-f` of the usual choice: the DASH video-only + audio-only pair, the audio AAC-LC (`mp4a.40.2`,
/// YouTube's itag 140) where it is offered, else the sort's audio; the best muxed format when there is no
/// pair.
pub const DASH_PAIR_SELECTOR: &str = "bv+ba[acodec^=mp4a.40.2]/bv+ba/b";

/// How yt-dlp is run: the program and everything every call shares.
#[derive(Debug, Clone)]
pub struct YtDlp {
    pub program: PathBuf,
    /// `--max-height`: formats are sorted toward it, never required to exist.
    pub max_height: u32,
    /// Persistent cache (signature functions are cached there).
    pub cache_dir: Option<PathBuf>,
    pub socket_timeout_secs: u32,
    /// Options the user passes through verbatim (`--ytdlp-arg`).
    pub extra_args: Vec<String>,
    /// `--audio-only`: the audio-only format (YouTube's itag 140, AAC in m4a) alone.
    pub audio_only: bool,
    /// `--ytdlp-mode api`: extractions go to long-lived workers running yt-dlp's Python API with the same
    /// arguments (`tools/extractor.rs`); `None` runs the command line for each.
    pub api: Option<Arc<Pools>>,
}

/// Per-egress options: every request of a clip leaves through the same egress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EgressArgs {
    pub source_address: Option<String>,
    pub proxy: Option<String>,
    pub cookies: Option<PathBuf>,
}

/// One media stream to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaStream {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub protocol: String,
    pub format_id: String,
    /// Video frames per second, when yt-dlp knows them.
    pub fps: Option<f64>,
    /// A DASH format (yt-dlp's container `mp4_dash`, `m4a_dash`, `webm_dash`): one fragmented track.
    pub dash: bool,
    /// The source's length in seconds as the format's size and bitrate say it (`filesize` bytes at `tbr`
    /// kbit/s), for sizing the relay's first read when yt-dlp gives no duration (a DASH manifest's formats).
    pub duration_hint: Option<f64>,
}

impl MediaStream {
    /// Only plain HTTP(S) media can be fetched by bounded ranges through the relay.
    pub fn is_rangeable(&self) -> bool {
        matches!(self.protocol.as_str(), "http" | "https" | "")
            && (self.url.starts_with("http://") || self.url.starts_with("https://"))
    }
}

/// What extraction found: one stream (video with audio) or two (video, then audio).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub streams: Vec<MediaStream>,
    pub format_id: String,
    pub duration: Option<f64>,
    pub height: Option<u32>,
    /// The HTTP requests the extraction made, when yt-dlp ran in an API worker, which counts them (the
    /// command line does not say).
    pub extract_requests: Option<u32>,
}

#[derive(Deserialize)]
struct RawInfo {
    format_id: Option<String>,
    url: Option<String>,
    protocol: Option<String>,
    #[serde(default)]
    http_headers: BTreeMap<String, String>,
    cookies: Option<String>,
    requested_formats: Option<Vec<RawFormat>>,
    duration: Option<f64>,
    height: Option<u32>,
    fps: Option<f64>,
    container: Option<String>,
    vcodec: Option<String>,
    acodec: Option<String>,
    filesize: Option<f64>,
    tbr: Option<f64>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_id: Option<String>,
    url: String,
    protocol: Option<String>,
    #[serde(default)]
    http_headers: BTreeMap<String, String>,
    cookies: Option<String>,
    vcodec: Option<String>,
    acodec: Option<String>,
    fps: Option<f64>,
    container: Option<String>,
    filesize: Option<f64>,
    tbr: Option<f64>,
}

/// Seconds of media in `filesize` bytes at `tbr` kbit/s.
fn duration_hint(filesize: Option<f64>, tbr: Option<f64>) -> Option<f64> {
    let secs = filesize? * 8.0 / (tbr? * 1000.0);
    (secs.is_finite() && secs > 0.0).then_some(secs)
}

/// A DASH format is one track of a fragmented file: a `*_dash` container with no video or no audio.
/// YouTube's extractor names only such formats `*_dash`; a DASH manifest names all of its formats so,
/// a muxed progressive file among them too, which is no fragmented file.
fn is_dash(container: Option<&str>, vcodec: Option<&str>, acodec: Option<&str>) -> bool {
    container.is_some_and(|c| c.ends_with("_dash")) && (vcodec == Some("none") || acodec == Some("none"))
}

impl YtDlp {
    /// `program` with the defaults `download` starts from: 360p, a 30 s socket timeout, video and audio, no
    /// cache folder, no extra options, the command line.
    pub fn new(program: impl Into<PathBuf>) -> YtDlp {
        YtDlp {
            program: program.into(),
            max_height: 360,
            cache_dir: None,
            socket_timeout_secs: 30,
            extra_args: vec![],
            audio_only: false,
            api: None,
        }
    }

    /// `-f`/`-S` for "the video's own sound, at most N pixels on the short side, h264/aac, smallest on
    /// ties".
    ///
    /// The audio is AAC-LC where offered ([`DASH_PAIR_SELECTOR`]), not the smallest AAC: yt-dlp ranks
    /// YouTube's HE-AAC (itag 139, 48 kb/s) and AAC-LC (itag 140, 128 kb/s) as the same `aac`, so `+size`
    /// alone takes 139. The smart cut copies AAC-LC as served but encodes HE-AAC (the AAC encode measured
    /// 0.4-1.1 CPU s a clip, more than the rest of its cut), and the exact cut's 128 kb/s AAC made from
    /// 48 kb/s HE-AAC is a second generation of a lower bitrate; 140 costs about 100 KB more a clip.
    ///
    /// `lang` first: a video with dubbed sound offers each format once per audio track, and a sort field
    /// given by the user ranks above yt-dlp's own, so `+size` alone would take whichever language is
    /// smallest; `lang` takes the original track (YouTube's "original", then its default). `quality` before
    /// `+size` puts YouTube's dynamic-range-compressed copies (`140-drc`) after the track as mixed. Video
    /// formats carry neither a language nor, at one height and codec, different qualities.
    ///
    /// `bv+ba` first: YouTube's video-only and audio-only DASH formats are fragmented MP4s with a `sidx`,
    /// so a window costs a few KB of index plus its own fragments, where a progressive file (itag 18)
    /// costs its whole sample table first (1.4 MB for an hour). `bv*+ba` would pick itag 18, which has
    /// audio of its own. `/b` keeps itag 18 as the fallback when the DASH formats are missing (SABR-only
    /// or PO-token-gated videos), and the sort never fails for want of an exact height.
    ///
    /// `itag18`: the egress was refused DASH past its first bytes (no proof-of-origin token), so the muxed
    /// 360p itag 18 comes first (`18/` before [`DASH_PAIR_SELECTOR`]: YouTube's muxed 360p H.264 + AAC, which
    /// needs no token; without an itag 18 the usual choice follows, and the DASH pair may still be served
    /// for a short video).
    ///
    /// `audio_only`: `ba/b`, AAC in m4a first (itag 140: a DASH file with a `sidx` like the video's, so a
    /// window costs its own fragments); a muxed format only when no audio-only one exists, and itag 18 for
    /// an egress refused DASH.
    pub fn format_args(&self, itag18: bool) -> Vec<String> {
        if self.audio_only {
            let selector = if itag18 { "18/ba/b" } else { "ba/b" };
            return vec!["-f".into(), selector.into(), "-S".into(), "acodec:aac,ext:m4a".into()];
        }
        vec![
            "-f".into(),
            if itag18 { format!("18/{DASH_PAIR_SELECTOR}") } else { DASH_PAIR_SELECTOR.into() },
            "-S".into(),
            format!("lang,res:{},vcodec:h264,acodec:aac,quality,ext:mp4:m4a,+size", self.max_height),
        ]
    }

    /// The arguments every call shares, before the call's own: what the command line gets after the
    /// program's name, and what an API worker parses with yt-dlp's own option parser.
    fn args(&self, egress: &EgressArgs, itag18: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            ["--ignore-config", "--no-playlist", "--no-progress", "--newline", "--color", "never"]
                .map(Into::into)
                .into();
        args.extend(["--socket-timeout".into(), self.socket_timeout_secs.to_string().into()]);
        if let Some(dir) = &self.cache_dir {
            args.extend(["--cache-dir".into(), dir.into()]);
        }
        if let Some(addr) = &egress.source_address {
            args.extend(["--source-address".into(), addr.into()]);
        }
        if let Some(proxy) = &egress.proxy {
            args.extend(["--proxy".into(), proxy.into()]);
        }
        if let Some(cookies) = &egress.cookies {
            args.extend(["--cookies".into(), cookies.into()]);
        }
        args.extend(self.format_args(itag18).into_iter().map(Into::into));
        args.extend(self.extra_args.iter().map(Into::into));
        args
    }

    /// `yt-dlp ARGS --dump-json -- URL`, by the command line or in an API worker of the egress: the exit
    /// code, stdout and stderr.
    async fn dump_json<'s>(
        &'s self,
        url: &str,
        egress: &EgressArgs,
        itag18: bool,
        claim: Option<&mut Claim<'s>>,
        stop: &mut StopSignal,
    ) -> Result<(Option<i32>, Vec<u8>, String, Option<u32>), Failure> {
        let mut args = self.args(egress, itag18);
        args.push("--dump-json".into());
        if let Some(pools) = &self.api {
            let argv: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let answer = pools.run(&pool_key(egress), &argv, url, claim, stop).await?;
            return Ok((Some(answer.code), answer.stdout, answer.stderr, answer.requests));
        }
        let mut cmd = Command::new(&self.program);
        // The URL goes after `--` so that nothing in it can ever be read as an option.
        cmd.args(args).arg("--").arg(url);
        let out = run(&mut cmd, stop).await?;
        Ok((out.status.code(), out.stdout, out.stderr, None))
    }

    /// Resolves `url` into media streams without downloading them.
    /// `itag18`: ask for the muxed itag 18 first (see [`YtDlp::format_args`]).
    pub async fn extract(
        &self,
        url: &str,
        egress: &EgressArgs,
        itag18: bool,
        stop: &mut StopSignal,
    ) -> Result<MediaInfo, Failure> {
        self.extract_in(url, egress, itag18, None, stop).await
    }

    /// In API mode, a claim on a worker of `egress` for an extraction about to be asked for (`Ok(None)` by
    /// the command line; [`Pools::reserve`]): the caller may look again at its egress after the wait for a
    /// worker, before the extraction goes.
    pub async fn reserve(
        &self,
        url: &str,
        egress: &EgressArgs,
        stop: &mut StopSignal,
    ) -> Result<Option<Claim<'_>>, Failure> {
        match &self.api {
            None => Ok(None),
            Some(pools) => match pools.reserve(&pool_key(egress), url, stop).await {
                Some(claim) => Ok(Some(claim)),
                None => Err(Failure::new(Category::Other, "cancelled", "")),
            },
        }
    }

    /// [`YtDlp::extract`] in the worker of a `claim` from [`YtDlp::reserve`], which keeps the worker (from
    /// other clips) until it drops.
    pub async fn extract_in<'s>(
        &'s self,
        url: &str,
        egress: &EgressArgs,
        itag18: bool,
        claim: Option<&mut Claim<'s>>,
        stop: &mut StopSignal,
    ) -> Result<MediaInfo, Failure> {
        let (code, stdout, stderr, requests) = self.dump_json(url, egress, itag18, claim, stop).await?;
        if code != Some(0) {
            return Err(Failure::from_stderr(&stderr, code));
        }
        // Without a JS runtime yt-dlp still succeeds, with formats silently missing: that is the machine's
        // fault, not the video's, and it would repeat for every clip. A 429 that yt-dlp turned into a
        // warning (`Failed to download MPD manifest: HTTP Error 429`) also leaves formats out (it falls back
        // to itag 18): the egress is throttled, and the breaker must hear of it.
        let category = crate::classify::classify(&stderr, None);
        if matches!(category.disposition(), Disposition::Environment | Disposition::Throttle) {
            // The message is the warning that told, not whatever yt-dlp printed last.
            let told = stderr.lines().map(str::trim).find(|l| crate::classify::classify(l, None) == category);
            let message = told.map_or_else(|| super::headline(&stderr, None), str::to_owned);
            return Err(Failure::new(category, message, &stderr));
        }
        let info = parse_info(&stdout)
            .map_err(|e| Failure::new(Category::Other, format!("unreadable yt-dlp output: {e}"), &stderr))?;
        Ok(MediaInfo { extract_requests: requests, ..info })
    }

    /// Downloads the whole video into `dir` (the fallback when a format cannot be fetched by range), by the
    /// command line or in an API worker of the egress (as a one-off: the worker does not keep a YoutubeDL for
    /// this clip's own output options); either way the same arguments, and the same reading of the outcome.
    pub async fn download_whole(
        &self,
        url: &str,
        egress: &EgressArgs,
        itag18: bool,
        dir: &Path,
        stop: &mut StopSignal,
    ) -> Result<PathBuf, Failure> {
        let list = dir.join("filepath.txt");
        let mut args = self.args(egress, itag18);
        args.extend(["--merge-output-format".into(), "mkv".into(), "-P".into(), dir.into()]);
        args.extend(["-o".into(), "whole.%(ext)s".into(), "--print-to-file".into(), "after_move:filepath".into()]);
        args.push(list.clone().into());
        let (code, stderr) = match &self.api {
            Some(pools) => {
                let argv: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
                let answer = pools.run_once(&pool_key(egress), &argv, url, stop).await?;
                (Some(answer.code), answer.stderr)
            }
            None => {
                let mut cmd = Command::new(&self.program);
                cmd.args(args).arg("--").arg(url);
                let out = run(&mut cmd, stop).await?;
                (out.status.code(), out.stderr)
            }
        };
        if code != Some(0) {
            return Err(Failure::from_stderr(&stderr, code));
        }
        let path = std::fs::read_to_string(&list).unwrap_or_default();
        let path = PathBuf::from(path.lines().next().unwrap_or("").trim());
        if path.as_os_str().is_empty() || !path.starts_with(dir) || !path.is_file() {
            return Err(Failure::new(Category::Other, "yt-dlp reported no downloaded file", &stderr));
        }
        Ok(path)
    }

    /// `yt-dlp --version`, for the journal and `doctor`.
    pub async fn version(&self, stop: &mut StopSignal) -> Result<String, Failure> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--version");
        let out = run(&mut cmd, stop).await?;
        if !out.status.success() {
            return Err(Failure::new(Category::Environment, "`yt-dlp --version` failed", &out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The API workers' pool of an egress: one for each distinct source address, proxy and cookies.
fn pool_key(egress: &EgressArgs) -> String {
    format!("{egress:?}")
}

async fn run(cmd: &mut Command, stop: &mut StopSignal) -> Result<process::Output, Failure> {
    process::run(cmd, INSTALL_HINT, stop).await.map_err(|e| match e {
        process::RunError::Cancelled { .. } => Failure::new(Category::Other, "cancelled", ""),
        other => Failure::new(Category::Environment, other.to_string(), ""),
    })
}

/// Reads `--dump-json` output into the streams to fetch.
pub fn parse_info(stdout: &[u8]) -> Result<MediaInfo, serde_json::Error> {
    let raw: RawInfo = serde_json::from_slice(stdout)?;
    // yt-dlp keeps the cookies it would send for a format (from `--cookies`) out of `http_headers`, in
    // a `cookies` field; the relay must send them too, as yt-dlp's own downloader would.
    let headers = |h: BTreeMap<String, String>, cookies: Option<String>| {
        let mut headers: Vec<(String, String)> = h.into_iter().collect();
        let has_cookie = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("cookie"));
        if let Some(cookie) = cookies.as_deref().and_then(cookie_header).filter(|_| !has_cookie) {
            headers.push(("Cookie".to_owned(), cookie));
        }
        headers
    };
    let streams = match raw.requested_formats {
        Some(mut formats) if !formats.is_empty() => {
            // Video first, then audio: the fetch maps input 0 to video and input 1 to audio.
            formats.sort_by_key(|f| matches!(f.vcodec.as_deref(), Some("none")));
            formats
                .into_iter()
                .map(|f| MediaStream {
                    url: f.url,
                    headers: headers(f.http_headers, f.cookies),
                    protocol: f.protocol.unwrap_or_default(),
                    format_id: f.format_id.unwrap_or_default(),
                    fps: f.fps,
                    dash: is_dash(f.container.as_deref(), f.vcodec.as_deref(), f.acodec.as_deref()),
                    duration_hint: duration_hint(f.filesize, f.tbr),
                })
                .collect()
        }
        _ => vec![MediaStream {
            url: raw.url.clone().unwrap_or_default(),
            headers: headers(raw.http_headers, raw.cookies),
            protocol: raw.protocol.clone().unwrap_or_default(),
            format_id: raw.format_id.clone().unwrap_or_default(),
            fps: raw.fps,
            dash: is_dash(raw.container.as_deref(), raw.vcodec.as_deref(), raw.acodec.as_deref()),
            duration_hint: duration_hint(raw.filesize, raw.tbr),
        }],
    };
    Ok(MediaInfo {
        streams,
        format_id: raw.format_id.unwrap_or_default(),
        duration: raw.duration,
        height: raw.height,
        extract_requests: None,
    })
}

/// The `Cookie` header for yt-dlp's `cookies` field of a format, which lists each cookie as `name=value`
/// followed by its attributes (`name=value; Domain=d; Path=/; Expires=T; other=v; Domain=d; ...`).
pub fn cookie_header(field: &str) -> Option<String> {
    const ATTRIBUTES: [&str; 7] = ["domain", "path", "expires", "max-age", "secure", "httponly", "samesite"];
    let pairs: Vec<&str> = field
        .split(';')
        .map(str::trim)
        .filter(|part| {
            let name = part.split('=').next().unwrap_or_default().trim();
            !part.is_empty() && part.contains('=') && !ATTRIBUTES.iter().any(|a| name.eq_ignore_ascii_case(a))
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_fields_become_cookie_headers() {
        let cases = [
            (
                "kdl=from-the-cookie-file; Domain=127.0.0.1; Path=/; Expires=2147483647; second=b; Domain=127.0.0.1; \
                 Path=/; Expires=2147483647",
                Some("kdl=from-the-cookie-file; second=b"),
            ),
            ("SID=abc; Domain=.youtube.com; Path=/; Secure; Expires=1800000000", Some("SID=abc")),
            ("a=1=2; HttpOnly; path=/", Some("a=1=2")),
            ("", None),
            ("Domain=x; Path=/", None),
        ];
        for (field, want) in cases {
            assert_eq!(cookie_header(field).as_deref(), want, "{field}");
        }
        let json = br#"{"format_id":"18","url":"http://h/v.mp4","protocol":"http","http_headers":{"User-Agent":"UA"},
            "cookies":"k=v; Domain=h; Path=/"}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.streams[0].headers, [("User-Agent".into(), "UA".into()), ("Cookie".into(), "k=v".into())]);
    }

    #[test]
    fn direct_link_is_one_stream() {
        let json = br#"{"id":"abcdefghijk","format_id":"mp4","url":"http://127.0.0.1:8765/v/abcdefghijk.mp4",
            "protocol":"http","http_headers":{"User-Agent":"UA"},"direct":true}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.streams.len(), 1);
        assert_eq!(info.streams[0].url, "http://127.0.0.1:8765/v/abcdefghijk.mp4");
        assert_eq!(info.streams[0].headers, vec![("User-Agent".to_string(), "UA".to_string())]);
        assert!(info.streams[0].is_rangeable());
        assert!(!info.streams[0].dash);
    }

    /// A DASH manifest's formats (the test source's watch page) carry no duration, but their size and bitrate
    /// say it: what the relay sizes its first read from. yt-dlp's `tbr` is kbit/s.
    #[test]
    fn formats_without_a_duration_give_one_from_their_size_and_bitrate() {
        let json = br#"{"format_id":"18","url":"http://h/v/x.mp4","protocol":"http","vcodec":"avc1.42001e",
            "acodec":"mp4a.40.2","container":"mp4_dash","filesize":29031571,"tbr":774.175}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.duration, None);
        let hint = info.streams[0].duration_hint.expect("a duration from the size and bitrate");
        assert!((hint - 300.0).abs() < 0.01, "{hint}");
        // Either missing, or zero: no hint.
        for (filesize, tbr) in [(Some(1e6), None), (None, Some(700.0)), (Some(1e6), Some(0.0))] {
            assert_eq!(duration_hint(filesize, tbr), None, "{filesize:?} {tbr:?}");
        }
    }

    #[test]
    fn merged_formats_put_video_first() {
        let json = br#"{"format_id":"140+134","duration":300.0,"height":360,"requested_formats":[
            {"format_id":"140","url":"https://a/audio","protocol":"https","vcodec":"none","http_headers":{},
             "container":"m4a_dash","fps":null},
            {"format_id":"134","url":"https://a/video","protocol":"https","vcodec":"avc1.4d401e","acodec":"none",
             "http_headers":{},"container":"mp4_dash","fps":30}]}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.streams[0].format_id, "134");
        assert_eq!(info.streams[1].format_id, "140");
        assert!(info.streams.iter().all(|s| s.dash));
        assert_eq!((info.streams[0].fps, info.streams[1].fps), (Some(30.0), None));
        assert_eq!(info.duration, Some(300.0));
    }

    /// What yt-dlp 2026.11 reports for YouTube's formats and for the test source's watch page (a DASH
    /// manifest, where every format's container is `*_dash`, the muxed itag 18 too).
    #[test]
    fn dash_means_a_single_track_of_a_dash_container() {
        let cases = [
            ("YouTube 134", r#""container":"mp4_dash","vcodec":"avc1.4d401e","acodec":"none""#, true),
            ("YouTube 140", r#""container":"m4a_dash","vcodec":"none","acodec":"mp4a.40.2""#, true),
            ("YouTube 251", r#""container":"webm_dash","vcodec":"none","acodec":"opus""#, true),
            ("YouTube 18", r#""vcodec":"avc1.42001E","acodec":"mp4a.40.2""#, false),
            ("test source 18", r#""container":"mp4_dash","vcodec":"avc1.64000d","acodec":"mp4a.40.2""#, false),
            ("test source 133", r#""container":"mp4_dash","vcodec":"avc1.64000d","acodec":"none""#, true),
            ("direct link", r#""vcodec":null"#, false),
        ];
        for (what, fields, dash) in cases {
            let json = format!(r#"{{"format_id":"x","url":"http://h/v","protocol":"http",{fields}}}"#);
            assert_eq!(parse_info(json.as_bytes()).unwrap().streams[0].dash, dash, "{what}");
        }
    }

    #[test]
    fn hls_is_not_rangeable() {
        let s = MediaStream {
            url: "https://a/index.m3u8".into(),
            headers: vec![],
            protocol: "m3u8_native".into(),
            format_id: "95".into(),
            fps: None,
            dash: false,
            duration_hint: None,
        };
        assert!(!s.is_rangeable());
    }
}
