//! The DASH form of each video: a video-only and an audio-only fragmented MP4 and the static manifest
//! describing them.
//!
//! For `-f "bv*+ba/b"` YouTube mostly serves two DASH formats, each one file laid out `ftyp, moov, sidx,
//! moof, mdat, ...` and fetched over plain HTTP; ffmpeg seeks in them through the `sidx` index instead of
//! reading from the start. Here both files are remuxed from the progressive video (no re-encode: well
//! under a second even for an hour), cached next to it under a name derived from its name, and described
//! in an on-demand manifest from their real box offsets and sample entries.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};

use crate::config::Profile;
use crate::mp4::{self, Layout, SegmentBase};
use crate::video::{ensure_cached, run_ffmpeg};

/// Bump when the remux changes, so files made by older versions are not reused. Version 2: the audio
/// track keeps the progressive file's edit list (no AAC priming at its start). Version 3: no `mfra` at
/// the end (YouTube's DASH files end with their last fragment, so ffmpeg, seeing the `sidx` reach the end,
/// does not read the file's last bytes looking for one).
pub const DASH_VERSION: u32 = 3;

/// The representation id of the audio track: YouTube's itag for AAC-LC audio in m4a.
pub const AUDIO_ITAG: &str = "140";

/// One of the two single-track files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
    /// VP9 video in WebM (profiles with `webm_height`).
    WebmVideo,
    /// Opus audio in WebM (profiles with `webm_height` and audio).
    WebmAudio,
}

impl Track {
    /// The last URL segment (`/v/{id}/video.mp4`), also the end of the cache file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Track::Video => "video.mp4",
            Track::Audio => "audio.m4a",
            Track::WebmVideo => "video.webm",
            Track::WebmAudio => "audio.webm",
        }
    }

    /// The URL path of this track of `id` (`/v/{id}/video.mp4`), as the stats log shows it.
    pub fn url_path(self, id: &str) -> String {
        format!("/v/{id}/{}", self.file_name())
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Track::Video => "video/mp4",
            Track::Audio => "audio/mp4",
            Track::WebmVideo => "video/webm",
            Track::WebmAudio => "audio/webm",
        }
    }
}

/// The cache file name of one track, derived from the progressive file's cache name, which already
/// carries every profile parameter: `testsrc-v2-...-aac.mp4` gives `testsrc-v2-...-aac.dash-v3.video.mp4`,
/// and with YouTube-shaped fragments of `fragment_secs` (see [`Profile::dash_fragment_secs`])
/// `testsrc-v2-...-aac.dash-v3-frag5s.video.mp4`.
pub fn cache_file_name(progressive: &str, track: Track, fragment_secs: f64) -> String {
    let stem = progressive.strip_suffix(".mp4").unwrap_or(progressive);
    let frag = if fragment_secs > 0.0 { format!("-frag{fragment_secs}s") } else { String::new() };
    format!("{stem}.dash-v{DASH_VERSION}{frag}.{}", track.file_name())
}

/// How a profile's DASH files are cut into fragments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fragments {
    /// One video fragment per keyframe; audio fragments of this many seconds (the GOP), so with a fixed
    /// keyframe cadence audio and video fragments line up.
    PerKeyframe { audio_secs: f64 },
    /// YouTube's shape: a video fragment starts at the first keyframe at least this many seconds after
    /// the previous fragment's start; audio fragments last exactly this long, so they do not line up.
    Long { secs: f64 },
}

impl Fragments {
    pub fn of(profile: &Profile) -> Fragments {
        if profile.dash_fragment_secs > 0.0 {
            Fragments::Long { secs: profile.dash_fragment_secs }
        } else {
            Fragments::PerKeyframe { audio_secs: profile.gop_secs }
        }
    }

    /// The length named in cache file names: 0 for the per-keyframe layout.
    fn cache_secs(self) -> f64 {
        match self {
            Fragments::PerKeyframe { .. } => 0.0,
            Fragments::Long { secs } => secs,
        }
    }
}

/// The ffmpeg command line (without the program name) remuxing one track of `src` into a fragmented MP4
/// with one global `sidx`. Video fragments start at keyframes; audio, where every frame is a keyframe,
/// is cut by duration (see [`Fragments`]).
pub fn remux_args(src: &Path, out: &Path, track: Track, fragments: Fragments) -> Vec<String> {
    let mut args: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"].map(String::from).into();
    args.push(src.to_string_lossy().into_owned());
    let micros = |secs: f64| (secs * 1e6).round() as u64;
    let rest = match (track, fragments) {
        // WebM tracks are encoded, not remuxed (see `webm::encode_args`); treat them as their MP4 kin.
        (Track::Video | Track::WebmVideo, Fragments::PerKeyframe { .. }) => {
            "-map 0:v:0 -c copy -movflags +frag_keyframe+empty_moov+global_sidx+default_base_moof+skip_trailer".to_owned()
        }
        (Track::Video | Track::WebmVideo, Fragments::Long { secs }) => format!(
            "-map 0:v:0 -c copy -min_frag_duration {} -movflags +frag_keyframe+empty_moov+global_sidx+default_base_moof+skip_trailer",
            micros(secs)
        ),
        (Track::Audio | Track::WebmAudio, Fragments::PerKeyframe { audio_secs: secs } | Fragments::Long { secs }) => {
            format!(
                "-map 0:a:0 -c copy -frag_duration {} -movflags +empty_moov+global_sidx+default_base_moof+skip_trailer",
                micros(secs)
            )
        }
    };
    args.extend(rest.split_whitespace().map(str::to_owned));
    args.extend(["-f".to_owned(), "mp4".to_owned(), out.to_string_lossy().into_owned()]);
    args
}

/// One remuxed single-track file and what the manifest says about it.
#[derive(Debug, Clone)]
pub struct TrackFile {
    pub path: PathBuf,
    pub len: u64,
    pub layout: Layout,
}

/// The DASH files of one profile: always video, audio when the profile has it.
#[derive(Debug, Clone)]
pub struct DashMedia {
    pub video: TrackFile,
    pub audio: Option<TrackFile>,
    /// VP9 video and Opus audio in WebM, for profiles with `webm_height`.
    pub webm_video: Option<TrackFile>,
    pub webm_audio: Option<TrackFile>,
}

/// Returns the DASH files made from the cached progressive video at `progressive` (encoded for
/// `profile`), remuxing them first if no process has done so yet, and reads their layout.
pub fn ensure_dash(progressive: &Path, profile: &Profile) -> anyhow::Result<DashMedia> {
    let dir = progressive.parent().context("the progressive video has no parent dir")?;
    let name = progressive.file_name().and_then(|n| n.to_str()).context("the progressive video has no UTF-8 name")?;
    let track = |track: Track| -> anyhow::Result<TrackFile> {
        let fragments = Fragments::of(profile);
        let path = ensure_cached(dir, &cache_file_name(name, track, fragments.cache_secs()), |tmp| {
            if track == Track::Video && profile.bframes == 0 {
                return run_ffmpeg(&remux_args(progressive, tmp, track, fragments), tmp);
            }
            // B-frames: the remux starts the video one composition offset late; an edit list fixes it.
            // Audio: the remux keeps the encoder's priming samples (1024 for AAC) but not the progressive
            // file's edit list that skips them, so its sound would come 23 ms late; the same fix.
            let raw = tmp.with_extension("raw");
            let shift = |raw: &Path| match track {
                Track::Audio => priming_secs(progressive),
                _ => first_pts_secs(raw),
            };
            let result = run_ffmpeg(&remux_args(progressive, &raw, track, fragments), &raw)
                .and_then(|()| shift(&raw))
                .and_then(|shift| mp4::insert_edit_list(&raw, tmp, shift));
            let _ = std::fs::remove_file(&raw);
            result
        })?;
        let len = std::fs::metadata(&path)?.len();
        let layout = mp4::read_layout(&path)?;
        let is_audio = layout.track.sample_rate.is_some();
        ensure!(is_audio == (track == Track::Audio), "{} holds the wrong kind of track", path.display());
        Ok(TrackFile { path, len, layout })
    };
    let video = track(Track::Video)?;
    let audio = if profile.audio { Some(track(Track::Audio)?) } else { None };
    let (webm_video, webm_audio) = match profile.webm_height {
        0 => (None, None),
        _ => {
            let (video, audio) = crate::webm::ensure_webm(progressive, profile)?;
            (Some(video), audio)
        }
    };
    Ok(DashMedia { video, audio, webm_video, webm_audio })
}

/// When the first frame of a file's video is shown, from ffprobe.
fn first_pts_secs(path: &Path) -> anyhow::Result<f64> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .context("failed to run ffprobe")?;
    ensure!(output.status.success(), "ffprobe failed on {}", path.display());
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().with_context(|| format!("no start time for {}: {text:?}", path.display()))
}

/// How long the audio of the progressive file at `path` plays before its start: the encoder's priming
/// samples, which its edit list skips (the first packet's time is minus their duration).
fn priming_secs(path: &Path) -> anyhow::Result<f64> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#1"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output()
        .context("failed to run ffprobe")?;
    ensure!(output.status.success(), "ffprobe failed on {}", path.display());
    let text = String::from_utf8_lossy(&output.stdout);
    // `-0.023220,` (ffprobe may add a separator and blank lines).
    let value = text.split(|c: char| c == ',' || c.is_whitespace()).find(|v| !v.is_empty()).unwrap_or_default();
    let first: f64 = value.parse().with_context(|| format!("no audio packet in {}: {text:?}", path.display()))?;
    Ok((-first).max(0.0))
}

impl DashMedia {
    /// The track served at `/v/{id}/{file_name}`; `None` for audio of a silent profile.
    pub fn track(&self, track: Track) -> Option<&TrackFile> {
        match track {
            Track::Video => Some(&self.video),
            Track::Audio => self.audio.as_ref(),
            Track::WebmVideo => self.webm_video.as_ref(),
            Track::WebmAudio => self.webm_audio.as_ref(),
        }
    }

    /// The manifest served at `/v/{id}.mpd`. Base URLs are relative to it, so they resolve to
    /// `/v/{id}/video.mp4` and `/v/{id}/audio.m4a` on whatever address the client used.
    pub fn manifest(&self, id: &str, profile: &Profile) -> Manifest {
        let duration_secs = profile.duration_secs;
        let representation = |t: &TrackFile, track: Track, id_attr: &str, kind| Representation {
            id: id_attr.to_owned(),
            base_url: format!("{id}/{}", track.file_name()),
            codecs: t.layout.track.codecs.clone(),
            bandwidth: bandwidth(t.len, duration_secs),
            content_length: t.len,
            segment: Some(t.layout.segment),
            kind,
            webm: matches!(track, Track::WebmVideo | Track::WebmAudio),
        };
        let mut webm: Vec<Representation> = Vec::new();
        if let Some(v) = &self.webm_video {
            let (width, height) = crate::webm::webm_size(profile);
            let kind = Kind::Video { width, height, fps: profile.fps };
            webm.push(representation(v, Track::WebmVideo, crate::webm::vp9_itag(height), kind));
        }
        if let Some(a) = &self.webm_audio {
            let kind = Kind::Audio { sampling_rate: 48_000 };
            webm.push(representation(a, Track::WebmAudio, crate::webm::OPUS_ITAG, kind));
        }
        let (width, height, fps) = (profile.width, profile.height, profile.fps);
        Manifest {
            duration_secs,
            video: representation(&self.video, Track::Video, video_itag(height), Kind::Video { width, height, fps }),
            audio: self.audio.as_ref().map(|a| {
                // `ensure_dash` checked that the audio file has an audio sample entry, hence a rate.
                let sampling_rate = a.layout.track.sample_rate.unwrap_or(44_100);
                representation(a, Track::Audio, AUDIO_ITAG, Kind::Audio { sampling_rate })
            }),
            webm,
            progressive: None,
            title: None,
        }
    }
}

/// YouTube's itag for H.264 DASH video of this height, so format ids look familiar (`134` is 360p).
pub fn video_itag(height: u32) -> &'static str {
    match height {
        0..=144 => "160",
        145..=240 => "133",
        241..=360 => "134",
        361..=480 => "135",
        481..=720 => "136",
        721..=1080 => "137",
        1081..=1440 => "264",
        _ => "266",
    }
}

/// Average bits per second of a file of `len` bytes playing for `secs`.
pub(crate) fn bandwidth(len: u64, secs: f64) -> u64 {
    ((len as f64 * 8.0 / secs.max(0.001)).round() as u64).max(1)
}

/// Everything an on-demand manifest says, kept apart from the files so rendering is a pure function.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub duration_secs: f64,
    pub video: Representation,
    pub audio: Option<Representation>,
    /// WebM formats (VP9, Opus), each in its own adaptation set after the MP4 ones.
    pub webm: Vec<Representation>,
    /// The progressive file (video and audio in one, itag 18), last: the watch page lists it beside the
    /// DASH formats, as YouTube's player response lists `formats` beside `adaptiveFormats`.
    pub progressive: Option<Representation>,
    /// The video's title (`<ProgramInformation><Title>`).
    pub title: Option<String>,
}

/// One `<Representation>`: a single-track file reachable at `base_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    pub id: String,
    pub base_url: String,
    pub codecs: String,
    /// Bits per second; yt-dlp turns it into `tbr`.
    pub bandwidth: u64,
    /// The file's size in bytes, as YouTube's manifests give it (`yt:contentLength` on the base URL, which
    /// yt-dlp reads into `filesize`) and its player response does (`contentLength`).
    pub content_length: u64,
    /// Where a fragmented file's header and index are (YouTube's `initRange` and `indexRange`); `None`
    /// for the progressive file, which has neither.
    pub segment: Option<SegmentBase>,
    pub kind: Kind,
    /// In WebM (`video/webm`, `audio/webm`) rather than MP4.
    pub webm: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video {
        width: u32,
        height: u32,
        fps: u32,
    },
    Audio {
        sampling_rate: u32,
    },
    /// Video and audio in one file (the progressive itag 18); `sampling_rate` is `None` without audio.
    Muxed {
        width: u32,
        height: u32,
        fps: u32,
        sampling_rate: Option<u32>,
    },
}

/// Renders a static on-demand MPD with one adaptation set per representation, in the shape yt-dlp's
/// generic extractor turns into direct `http` formats.
pub fn render_mpd(m: &Manifest) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:yt=\"{YT_NAMESPACE}\" type=\"static\" \
         mediaPresentationDuration=\"{}\" minBufferTime=\"PT2S\" profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\">",
        iso_duration(m.duration_secs)
    );
    if let Some(title) = &m.title {
        let _ = writeln!(out, "  <ProgramInformation><Title>{}</Title></ProgramInformation>", escape(title));
    }
    out.push_str("  <Period>\n");
    for rep in std::iter::once(&m.video).chain(&m.audio).chain(&m.webm).chain(&m.progressive) {
        let (mime, attrs) = match rep.kind {
            Kind::Video { width, height, fps } => {
                ("video", format!("width=\"{width}\" height=\"{height}\" frameRate=\"{fps}\""))
            }
            Kind::Audio { sampling_rate } => ("audio", format!("audioSamplingRate=\"{sampling_rate}\"")),
            Kind::Muxed { width, height, fps, sampling_rate } => {
                let mut attrs = format!("width=\"{width}\" height=\"{height}\" frameRate=\"{fps}\"");
                if let Some(rate) = sampling_rate {
                    let _ = write!(attrs, " audioSamplingRate=\"{rate}\"");
                }
                ("video", attrs)
            }
        };
        let mime = match (mime, rep.webm) {
            (kind, true) => format!("{kind}/webm"),
            (kind, false) => format!("{kind}/mp4"),
        };
        let (id, codecs, bandwidth, base_url) =
            (escape(&rep.id), escape(&rep.codecs), rep.bandwidth, escape(&rep.base_url));
        let aligned = if rep.segment.is_some() { " subsegmentAlignment=\"true\"" } else { "" };
        let _ = writeln!(out, "    <AdaptationSet mimeType=\"{mime}\"{aligned}>");
        let _ =
            writeln!(out, "      <Representation id=\"{id}\" codecs=\"{codecs}\" {attrs} bandwidth=\"{bandwidth}\">");
        let _ = writeln!(out, "        <BaseURL yt:contentLength=\"{}\">{base_url}</BaseURL>", rep.content_length);
        if let Some(s) = rep.segment {
            let _ = writeln!(
                out,
                "        <SegmentBase indexRange=\"{}-{}\"><Initialization range=\"0-{}\"/></SegmentBase>",
                s.index_first, s.index_last, s.init_last
            );
        }
        out.push_str("      </Representation>\n    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// The namespace of YouTube's manifest extensions (`yt:contentLength`), which yt-dlp looks for.
pub const YT_NAMESPACE: &str = "http://youtube.com/yt/2012/10/10";

/// An ISO 8601 duration in seconds with at most millisecond precision: `PT30S`, `PT12.5S`.
pub fn iso_duration(secs: f64) -> String {
    let text = format!("{:.3}", secs.max(0.0));
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("PT{text}S")
}

/// Escapes text for XML content and double-quoted attributes.
fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(base_url: &str) -> Representation {
        Representation {
            id: "134".into(),
            base_url: base_url.into(),
            codecs: "avc1.64001e".into(),
            bandwidth: 400_000,
            content_length: 1_800_000,
            segment: Some(SegmentBase { init_last: 796, index_first: 797, index_last: 22436 }),
            kind: Kind::Video { width: 640, height: 360, fps: 15 },
            webm: false,
        }
    }

    fn audio(base_url: &str) -> Representation {
        Representation {
            id: "140".into(),
            base_url: base_url.into(),
            codecs: "mp4a.40.2".into(),
            bandwidth: 64_000,
            content_length: 288_000,
            segment: Some(SegmentBase { init_last: 728, index_first: 729, index_last: 22164 }),
            kind: Kind::Audio { sampling_rate: 44_100 },
            webm: false,
        }
    }

    #[test]
    fn renders_the_manifest_yt_dlp_accepts() {
        let manifest = Manifest {
            duration_secs: 3600.0,
            video: video("long/video.mp4"),
            audio: Some(audio("long/audio.m4a")),
            webm: vec![],
            progressive: None,
            title: None,
        };
        let want = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:yt="http://youtube.com/yt/2012/10/10" type="static" mediaPresentationDuration="PT3600S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
  <Period>
    <AdaptationSet mimeType="video/mp4" subsegmentAlignment="true">
      <Representation id="134" codecs="avc1.64001e" width="640" height="360" frameRate="15" bandwidth="400000">
        <BaseURL yt:contentLength="1800000">long/video.mp4</BaseURL>
        <SegmentBase indexRange="797-22436"><Initialization range="0-796"/></SegmentBase>
      </Representation>
    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4" subsegmentAlignment="true">
      <Representation id="140" codecs="mp4a.40.2" audioSamplingRate="44100" bandwidth="64000">
        <BaseURL yt:contentLength="288000">long/audio.m4a</BaseURL>
        <SegmentBase indexRange="729-22164"><Initialization range="0-728"/></SegmentBase>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#;
        assert_eq!(render_mpd(&manifest), want);
    }

    #[test]
    fn render_table() {
        let silent = Manifest {
            duration_secs: 12.5,
            video: video("abc/video.mp4"),
            audio: None,
            webm: vec![],
            progressive: None,
            title: None,
        };
        let both = Manifest { audio: Some(audio("abc/audio.m4a")), ..silent.clone() };
        let odd = Manifest { video: video("a&b<c>/\"video\".mp4"), ..silent.clone() };
        let muxed = Representation {
            id: "18".into(),
            base_url: "/v/abc.mp4?sig=1&ip=2".into(),
            codecs: "avc1.64001e, mp4a.40.2".into(),
            content_length: 2_000_000,
            segment: None,
            kind: Kind::Muxed { width: 640, height: 360, fps: 15, sampling_rate: Some(44_100) },
            ..video("")
        };
        let page = Manifest { progressive: Some(muxed), title: Some("a <b>".into()), ..both.clone() };
        let cases: &[(&str, &Manifest, &[&str], &[&str])] = &[
            (
                "silent",
                &silent,
                &["mediaPresentationDuration=\"PT12.5S\"", "\"1800000\">abc/video.mp4</BaseURL>"],
                &["audio/mp4", ">abc/audio", "<ProgramInformation>"],
            ),
            (
                "both",
                &both,
                &[
                    "mimeType=\"video/mp4\"",
                    "mimeType=\"audio/mp4\"",
                    "audioSamplingRate=\"44100\"",
                    "<BaseURL yt:contentLength=\"288000\">abc/audio.m4a</BaseURL>",
                ],
                &[],
            ),
            ("escaped", &odd, &["<BaseURL yt:contentLength=\"1800000\">a&amp;b&lt;c&gt;/&quot;video&quot;.mp4</BaseURL>"], &["a&b"]),
            (
                "with the progressive file",
                &page,
                &[
                    "<ProgramInformation><Title>a &lt;b&gt;</Title></ProgramInformation>",
                    "    <AdaptationSet mimeType=\"video/mp4\">\n      <Representation id=\"18\" \
                     codecs=\"avc1.64001e, mp4a.40.2\" width=\"640\" height=\"360\" frameRate=\"15\" \
                     audioSamplingRate=\"44100\" bandwidth=\"400000\">\n        \
                     <BaseURL yt:contentLength=\"2000000\">/v/abc.mp4?sig=1&amp;ip=2</BaseURL>\n      </Representation>",
                ],
                &[],
            ),
        ];
        for (name, manifest, has, lacks) in cases {
            let text = render_mpd(manifest);
            for want in *has {
                assert!(text.contains(want), "{name}: {want} missing from\n{text}");
            }
            for unwanted in *lacks {
                assert!(!text.contains(unwanted), "{name}: {unwanted} in\n{text}");
            }
            let reps = 1 + usize::from(manifest.audio.is_some()) + usize::from(manifest.progressive.is_some());
            assert_eq!(text.matches("<Representation ").count(), reps, "{name}");
            assert_eq!(text.matches("<SegmentBase ").count(), 1 + usize::from(manifest.audio.is_some()), "{name}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (30.0, "PT30S"),
            (3600.0, "PT3600S"),
            (12.5, "PT12.5S"),
            (2.25, "PT2.25S"),
            (0.1234, "PT0.123S"),
            (0.0, "PT0S"),
        ];
        for (secs, want) in cases {
            assert_eq!(iso_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn cache_names_derive_from_the_progressive_name() {
        let cases = [
            (
                "testsrc-v1-320x180-15fps-30s-gop2s-500k-aac.mp4",
                Track::Video,
                "testsrc-v1-320x180-15fps-30s-gop2s-500k-aac.dash-v3.video.mp4",
            ),
            (
                "testsrc-v1-320x180-15fps-30s-gop2s-500k-aac.mp4",
                Track::Audio,
                "testsrc-v1-320x180-15fps-30s-gop2s-500k-aac.dash-v3.audio.m4a",
            ),
            ("odd-name", Track::Video, "odd-name.dash-v3.video.mp4"),
        ];
        for (progressive, track, want) in cases {
            assert_eq!(cache_file_name(progressive, track, 0.0), want);
        }
        assert_eq!(cache_file_name("a.mp4", Track::Audio, 5.0), "a.dash-v3-frag5s.audio.m4a");
        let video = crate::video::cache_file_name(&Profile::default());
        assert_ne!(cache_file_name(&video, Track::Video, 0.0), video, "never the progressive file itself");
    }

    #[test]
    fn remux_copies_one_track_with_a_global_index() {
        let (src, out) = (Path::new("/c/in.mp4"), Path::new("/c/out.tmp-1"));
        for (track, map, fragments) in [(Track::Video, "0:v:0", None), (Track::Audio, "0:a:0", Some("1500000"))] {
            let args = remux_args(src, out, track, Fragments::PerKeyframe { audio_secs: 1.5 });
            let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].as_str());
            assert_eq!(after("-i"), Some("/c/in.mp4"), "{track:?}");
            assert_eq!(after("-map"), Some(map), "{track:?}");
            assert_eq!(after("-c"), Some("copy"), "{track:?}: remux, never re-encode");
            assert_eq!(after("-frag_duration"), fragments, "{track:?}");
            assert_eq!(after("-f"), Some("mp4"), "{track:?}: the temporary name has no extension to guess from");
            let flags = after("-movflags").unwrap();
            for flag in ["+empty_moov", "+global_sidx", "+default_base_moof", "+skip_trailer"] {
                assert!(flags.contains(flag), "{track:?}: {flags}");
            }
            assert_eq!(flags.contains("+frag_keyframe"), track == Track::Video, "{track:?}: {flags}");
            assert_eq!(args.last().map(String::as_str), Some("/c/out.tmp-1"));
        }
        // YouTube-shaped: video fragments at the first keyframe 5 s on, audio every 5 s.
        for (track, flag) in [(Track::Video, "-min_frag_duration"), (Track::Audio, "-frag_duration")] {
            let args = remux_args(src, out, track, Fragments::Long { secs: 5.0 });
            let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].as_str());
            assert_eq!(after(flag), Some("5000000"), "{track:?}");
        }
    }

    #[test]
    fn itags_follow_youtube() {
        for (height, want) in [
            (144, "160"),
            (180, "133"),
            (240, "133"),
            (360, "134"),
            (480, "135"),
            (720, "136"),
            (1080, "137"),
            (2160, "266"),
        ] {
            assert_eq!(video_itag(height), want, "{height}");
        }
    }

    #[test]
    fn bandwidth_is_bits_per_second() {
        assert_eq!(bandwidth(1_000_000, 8.0), 1_000_000);
        assert_eq!(bandwidth(3, 2.0), 12);
        assert_eq!(bandwidth(0, 30.0), 1);
    }
}
