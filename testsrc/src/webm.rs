//! WebM DASH formats beside the H.264 ones, as YouTube offers VP9 video (itag 243 for 360p...) and Opus
//! audio (itag 251): transcoded from the progressive file (the frame strip and the tag survive, scaled to
//! the WebM height), muxed for DASH with the `Cues` index in front, and described by their real element
//! offsets: the initialization segment runs to the `Cues`, the index is the `Cues`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, ensure, Context};

use crate::config::Profile;
use crate::dash::{Track, TrackFile};
use crate::mp4::{Layout, SegmentBase, TrackInfo};
use crate::video::{ensure_cached, run_ffmpeg};

/// Bump when the WebM encode changes, so files made by older versions are not reused.
pub const WEBM_VERSION: u32 = 1;

/// YouTube's itag for Opus audio in WebM (about 160 kbps).
pub const OPUS_ITAG: &str = "251";

/// YouTube's itag for VP9 video in WebM of this height (`243` is 360p).
pub fn vp9_itag(height: u32) -> &'static str {
    match height {
        0..=144 => "278",
        145..=240 => "242",
        241..=360 => "243",
        361..=480 => "244",
        481..=720 => "247",
        _ => "248",
    }
}

/// The WebM frame size: `webm_height` high, the progressive aspect, both even.
pub fn webm_size(profile: &Profile) -> (u32, u32) {
    let h = profile.webm_height & !1;
    let w = ((f64::from(profile.width) * f64::from(h) / f64::from(profile.height)).round() as u32 + 1) & !1;
    (w, h)
}

/// The cache file name of one WebM track, derived from the progressive file's name.
pub fn cache_file_name(progressive: &str, track: Track, profile: &Profile) -> String {
    let stem = progressive.strip_suffix(".mp4").unwrap_or(progressive);
    format!("{stem}.webm-v{WEBM_VERSION}-{}p.{}", profile.webm_height, track.file_name())
}

/// The ffmpeg command line transcoding one track of the progressive file `src` into DASH WebM.
pub fn encode_args(src: &Path, out: &Path, track: Track, profile: &Profile) -> Vec<String> {
    let mut args: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"].map(String::from).into();
    args.push(src.to_string_lossy().into_owned());
    let gop = profile.gop_frames();
    let rest = match track {
        Track::WebmVideo => {
            let (w, h) = webm_size(profile);
            format!(
                "-map 0:v:0 -vf scale={w}:{h}:flags=neighbor -c:v libvpx-vp9 -deadline realtime -cpu-used 8 \
                 -b:v {}k -g {gop} -keyint_min {gop}",
                profile.video_kbps
            )
        }
        _ => "-map 0:a:0 -c:a libopus -b:a 64k".to_owned(),
    };
    args.extend(rest.split_whitespace().map(str::to_owned));
    args.extend(["-dash", "1", "-cues_to_front", "1", "-f", "webm"].map(String::from));
    args.push(out.to_string_lossy().into_owned());
    args
}

/// The WebM video and (with audio) Opus files of a profile with `webm_height`, made if needed.
pub fn ensure_webm(progressive: &Path, profile: &Profile) -> anyhow::Result<(TrackFile, Option<TrackFile>)> {
    let dir = progressive.parent().context("the progressive video has no parent dir")?;
    let name = progressive.file_name().and_then(|n| n.to_str()).context("the progressive video has no UTF-8 name")?;
    let track = |track: Track| -> anyhow::Result<TrackFile> {
        let path = ensure_cached(dir, &cache_file_name(name, track, profile), |tmp| {
            run_ffmpeg(&encode_args(progressive, tmp, track, profile), tmp)
        })?;
        let len = std::fs::metadata(&path)?.len();
        let segment = read_segment_base(&path)?;
        let track = match track {
            Track::WebmVideo => TrackInfo { codecs: "vp9".into(), sample_rate: None },
            _ => TrackInfo { codecs: "opus".into(), sample_rate: Some(48_000) },
        };
        Ok(TrackFile { path, len, layout: Layout { segment, track } })
    };
    let video = track(Track::WebmVideo)?;
    let audio = if profile.audio { Some(track(Track::WebmAudio)?) } else { None };
    Ok((video, audio))
}

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const CUES: u32 = 0x1C53_BB6B;
const CLUSTER: u32 = 0x1F43_B675;

/// A variable-length integer at `at`: `(value, length)`; `keep_marker` for element ids.
fn vint(bytes: &[u8], at: usize, keep_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = if keep_marker { u64::from(first) } else { u64::from(first) & (0xff >> len) };
    for i in 1..len {
        value = value << 8 | u64::from(*bytes.get(at + i)?);
    }
    Some((value, len))
}

/// The DASH ranges of a WebM file from its first bytes: the initialization segment ends where the
/// `Cues` begin, and the index is the `Cues` element, which must come before the first `Cluster`.
pub fn segment_base(prefix: &[u8]) -> anyhow::Result<SegmentBase> {
    let element = |at: usize| -> anyhow::Result<(u32, usize, u64)> {
        let (id, id_len) = vint(prefix, at, true).context("EBML id cut short")?;
        let (size, size_len) = vint(prefix, at + id_len, false).context("EBML size cut short")?;
        Ok((id as u32, id_len + size_len, size))
    };
    let (id, header, size) = element(0)?;
    ensure!(id == EBML, "not an EBML file");
    let segment_at = header + size as usize;
    let (id, header, _) = element(segment_at)?;
    ensure!(id == SEGMENT, "no Segment after the EBML header");
    let mut at = segment_at + header;
    loop {
        let (id, header, size) = element(at)?;
        match id {
            CUES => {
                let end = at as u64 + header as u64 + size;
                return Ok(SegmentBase { init_last: at as u64 - 1, index_first: at as u64, index_last: end - 1 });
            }
            CLUSTER => bail!("a Cluster before any Cues (not muxed with cues_to_front?)"),
            _ => at += header + size as usize,
        }
    }
}

fn read_segment_base(path: &Path) -> anyhow::Result<SegmentBase> {
    let mut prefix = Vec::new();
    File::open(path)?.take(1 << 20).read_to_end(&mut prefix)?;
    segment_base(&prefix).with_context(|| format!("cannot describe {} for a DASH manifest", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints_table() {
        type Case<'a> = (&'a [u8], bool, Option<(u64, usize)>);
        let cases: [Case; 5] = [
            (&[0x81], false, Some((1, 1))),
            (&[0x40, 0x02], false, Some((2, 2))),
            (&[0x1A, 0x45, 0xDF, 0xA3], true, Some((0x1A45_DFA3, 4))),
            (&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], false, Some(((1 << 56) - 1, 8))),
            (&[0x00], false, None),
        ];
        for (bytes, marker, want) in cases {
            assert_eq!(vint(bytes, 0, marker), want, "{bytes:?}");
        }
    }

    #[test]
    fn sizes_and_itags() {
        let p = Profile { width: 320, height: 180, webm_height: 360, ..Profile::default() };
        assert_eq!(webm_size(&p), (640, 360));
        assert_eq!(vp9_itag(360), "243");
        assert_eq!(cache_file_name("a.mp4", Track::WebmVideo, &p), "a.webm-v1-360p.video.webm");
    }
}
