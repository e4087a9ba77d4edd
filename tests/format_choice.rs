//! The format choice, checked with the real yt-dlp against YouTube-shaped format lists (`--load-info-json`
//! replays an extraction offline): DASH video-only + audio-only when YouTube offers them, itag 18 when
//! it is all there is, never a failure for want of an exact height.

use std::path::Path;
use std::process::Command;

use kinetics_dl::tools::ytdlp::YtDlp;
use serde_json::{json, Value};

/// One format as yt-dlp's YouTube extractor reports it (the fields the sort reads). Its `quality` is the
/// extractor's rank of YouTube's `quality`/`audioQuality` name: `tiny` 0, `audio_quality_low` 2 and
/// `_medium` 3, `small` (240p) 5, `medium` (360p) 6, `large` (480p) 7, `hd720` 8.
fn format(id: &str, ext: &str, size: Option<(u32, u32)>, vcodec: &str, acodec: &str, kbps: f64) -> Value {
    let quality = match size.map(|(w, h)| w.min(h)) {
        None if kbps < 64.0 => 2,
        None => 3,
        Some(..=144) => 0,
        Some(..=240) => 5,
        Some(..=360) => 6,
        Some(..=480) => 7,
        Some(_) => 8,
    };
    let mut f = json!({
        "quality": quality,
        "format_id": id,
        "ext": ext,
        "url": format!("https://rr1---sn-example.googlevideo.com/videoplayback?itag={id}"),
        "protocol": "https",
        "vcodec": vcodec,
        "acodec": acodec,
        "tbr": kbps,
        "filesize": filesize(kbps),
    });
    if let Some((w, h)) = size {
        f["width"] = json!(w);
        f["height"] = json!(h);
        f["fps"] = json!(30);
    }
    if acodec != "none" {
        f["asr"] = json!(if acodec.starts_with("mp4a") { 44100 } else { 48000 });
        f["audio_channels"] = json!(2);
    }
    f
}

/// The bytes of a 5-minute format at `kbps`.
fn filesize(kbps: f64) -> u64 {
    (kbps * 1000.0 / 8.0 * 300.0) as u64
}

/// The formats YouTube offered for a typical 5-minute video in 2026 (itags, codecs, typical bitrates).
fn youtube_formats() -> Vec<Value> {
    vec![
        format("139", "m4a", None, "none", "mp4a.40.5", 49.0),
        format("140", "m4a", None, "none", "mp4a.40.2", 129.0),
        format("249", "webm", None, "none", "opus", 53.0),
        format("251", "webm", None, "none", "opus", 135.0),
        format("160", "mp4", Some((256, 144)), "avc1.4d400c", "none", 80.0),
        format("278", "webm", Some((256, 144)), "vp9", "none", 70.0),
        format("133", "mp4", Some((426, 240)), "avc1.4d4015", "none", 180.0),
        format("242", "webm", Some((426, 240)), "vp9", "none", 150.0),
        format("134", "mp4", Some((640, 360)), "avc1.4d401e", "none", 350.0),
        format("243", "webm", Some((640, 360)), "vp9", "none", 280.0),
        format("396", "mp4", Some((640, 360)), "av01.0.01M.08", "none", 250.0),
        format("18", "mp4", Some((640, 360)), "avc1.42001E", "mp4a.40.2", 500.0),
        format("135", "mp4", Some((854, 480)), "avc1.4d401f", "none", 650.0),
        format("244", "webm", Some((854, 480)), "vp9", "none", 500.0),
        format("136", "mp4", Some((1280, 720)), "avc1.4d401f", "none", 1300.0),
    ]
}

/// What yt-dlp picks from `formats` with our `-f`/`-S` for `--max-height max_height`.
fn pick(dir: &Path, formats: Vec<Value>, max_height: u32, itag18: bool) -> String {
    pick_for(dir, formats, max_height, itag18, false)
}

/// [`pick`], for audio-only clips when `audio_only`.
fn pick_for(dir: &Path, formats: Vec<Value>, max_height: u32, itag18: bool, audio_only: bool) -> String {
    let info = json!({
        "id": "dQw4w9WgXcQ",
        "title": "format choice",
        "extractor": "youtube",
        "extractor_key": "Youtube",
        "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "duration": 300,
        "formats": formats,
        "_type": "video",
    });
    let path = dir.join(format!("info-{}.json", fastrand::u64(..)));
    std::fs::write(&path, info.to_string()).unwrap();
    let ytdlp = YtDlp { max_height, audio_only, ..YtDlp::new("yt-dlp") };
    let out = Command::new("yt-dlp")
        .args(["--ignore-config", "--no-warnings", "--simulate", "--print", "format_id", "--load-info-json"])
        .arg(&path)
        .args(ytdlp.format_args(itag18))
        .output()
        .expect("yt-dlp runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "yt-dlp failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn without(ids: &[&str]) -> Vec<Value> {
    youtube_formats().into_iter().filter(|f| !ids.contains(&f["format_id"].as_str().unwrap())).collect()
}

fn only(ids: &[&str]) -> Vec<Value> {
    youtube_formats().into_iter().filter(|f| ids.contains(&f["format_id"].as_str().unwrap())).collect()
}

#[test]
fn dash_pair_when_offered_itag_18_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let portrait: Vec<Value> = youtube_formats()
        .into_iter()
        .map(|mut f| {
            if let (Some(w), Some(h)) = (f["width"].as_u64(), f["height"].as_u64()) {
                f["width"] = json!(h);
                f["height"] = json!(w);
            }
            f
        })
        .collect();
    // (name, formats, --max-height, the egress is refused DASH, the choice)
    let cases: Vec<(&str, Vec<Value>, u32, bool, &str)> = vec![
        // 360p h264 video-only + the AAC-LC audio (not the smaller HE-AAC 139, which yt-dlp ranks the same
        // `aac`), never itag 18 (its audio would come twice).
        ("everything YouTube offers", youtube_formats(), 360, false, "134+140"),
        ("a larger cap", youtube_formats(), 480, false, "135+140"),
        // No AAC-LC: the sort's audio, the smallest AAC.
        ("no AAC-LC audio-only", without(&["140"]), 360, false, "134+139"),
        // No AAC at all: Opus, YouTube's better mix of it (251, `audio_quality_medium`; 249 is `low`).
        ("no AAC audio-only", without(&["139", "140"]), 360, false, "134+251"),
        // No h264 at 360p: the height wins over the codec.
        ("no 360p h264 video-only", without(&["134"]), 360, false, "243+140"),
        // DASH gone (SABR-only or PO-token-gated): itag 18 alone.
        ("only itag 18", only(&["18"]), 360, false, "18"),
        ("itag 18 and audio-only", only(&["18", "139", "140"]), 360, false, "18"),
        // Nothing at or below the cap: the closest above, no failure.
        ("only 720p", only(&["136", "140"]), 360, false, "136+140"),
        // The cap applies to the short side.
        ("portrait video", portrait.clone(), 360, false, "134+140"),
        // An egress refused DASH past its first bytes: itag 18 whenever offered, whatever the cap.
        ("refused DASH: everything", youtube_formats(), 360, true, "18"),
        ("refused DASH: a larger cap", youtube_formats(), 480, true, "18"),
        ("refused DASH: portrait", portrait, 360, true, "18"),
        // No itag 18: the usual choice rather than none.
        ("refused DASH, no itag 18", without(&["18"]), 360, true, "134+140"),
        ("refused DASH, no itag 18 nor AAC-LC", without(&["18", "140"]), 360, true, "134+139"),
    ];
    for (name, formats, max_height, itag18, want) in cases {
        assert_eq!(pick(dir.path(), formats, max_height, itag18), want, "{name}");
    }
}

/// A copy of `format` for another audio track or a dynamic-range-compressed mix, as yt-dlp's YouTube
/// extractor reports it: its own format id, language and its preference (10 the original, -1 a dub), the
/// quality of YouTube's `audioQuality` (`medium` is 3, a DRC copy half a step below), and its own size.
fn track(f: &Value, id: &str, language: &str, preference: i64, quality: f64, kbps: f64) -> Value {
    let mut f = f.clone();
    f["format_id"] = json!(id);
    f["language"] = json!(language);
    f["language_preference"] = json!(preference);
    f["quality"] = json!(quality);
    f["tbr"] = json!(kbps);
    f["filesize"] = json!(filesize(kbps));
    f
}

/// Every audio-only format of `formats` once per audio track, and a DRC copy of the original: each copy
/// smaller than the original mix.
fn with_tracks(formats: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for f in formats {
        let id = f["format_id"].as_str().unwrap().to_string();
        if f["vcodec"] != "none" {
            out.push(f);
            continue;
        }
        let (kbps, q) = (f["tbr"].as_f64().unwrap(), f["quality"].as_f64().unwrap());
        out.push(track(&f, &format!("{id}-0"), "de", -1, q, kbps - 2.0));
        out.push(track(&f, &format!("{id}-1"), "ja", -1, q, kbps - 1.0));
        out.push(track(&f, &format!("{id}-2"), "en", 10, q, kbps));
        out.push(track(&f, &format!("{id}-drc"), "en", 10, q - 0.5, kbps - 3.0));
    }
    out
}

/// A video with dubbed sound and DRC copies: every audio format once per track, each smaller than the
/// original's (a dub or a DRC mix may be a few bytes smaller); the choice is the original track as mixed,
/// in AAC-LC, whatever the sizes.
#[test]
fn the_original_sound_track_whatever_the_sizes() {
    let dir = tempfile::tempdir().unwrap();
    // (name, formats, the egress is refused DASH, the choice)
    let cases: Vec<(&str, Vec<Value>, bool, &str)> = vec![
        ("dubbed", with_tracks(youtube_formats()), false, "134+140-2"),
        ("dubbed, no AAC-LC", with_tracks(without(&["140"])), false, "134+139-2"),
        ("dubbed, no AAC", with_tracks(without(&["139", "140"])), false, "134+251-2"),
        ("dubbed, refused DASH, no itag 18", with_tracks(without(&["18"])), true, "134+140-2"),
    ];
    for (name, formats, itag18, want) in cases {
        assert_eq!(pick(dir.path(), formats, 360, itag18), want, "{name}");
    }
}

/// `--audio-only`: the audio-only AAC in m4a (itag 140, a DASH file with an index, as YouTube serves it),
/// never a video format while an audio-only one exists; a muxed format only when nothing else is there.
#[test]
fn audio_only_takes_the_aac_audio_only_format() {
    let dir = tempfile::tempdir().unwrap();
    // (name, formats, the egress is refused DASH, the choice)
    let cases: Vec<(&str, Vec<Value>, bool, &str)> = vec![
        ("everything YouTube offers", youtube_formats(), false, "140"),
        ("only the small AAC", without(&["140"]), false, "139"),
        ("no AAC audio-only", without(&["139", "140"]), false, "251"),
        ("only itag 18", only(&["18"]), false, "18"),
        ("video-only and itag 18", only(&["134", "18"]), false, "18"),
        ("refused DASH", youtube_formats(), true, "18"),
        ("refused DASH, no itag 18", without(&["18"]), true, "140"),
        // Dubbed sound: the original track as mixed (yt-dlp's own `lang` and `quality` after ours).
        ("dubbed", with_tracks(youtube_formats()), false, "140-2"),
        ("dubbed, no AAC-LC", with_tracks(without(&["140"])), false, "139-2"),
    ];
    for (name, formats, itag18, want) in cases {
        assert_eq!(pick_for(dir.path(), formats, 360, itag18, true), want, "{name}");
    }
}
