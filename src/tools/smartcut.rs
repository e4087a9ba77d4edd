//! `--trim smart`: a frame-accurate cut that re-encodes only the head, from the frame at `time_start` to the
//! next keyframe, and copies the rest of the video stream as it is.
//!
//! The head is encoded with the source's profile and level, no B-frames, and its own parameter-set ids
//! (x264's `sps-id=1`); both parts go through MPEG-TS, so each keyframe carries its parameter sets in band,
//! and the concat demuxer lays them end to end into the MP4. The copied part ends at the last frame before
//! the clip's end: without frame reordering, decode order is display order and the copy can stop at any
//! packet. Where that does not hold (B-frames, another codec or profile, interlacing, no keyframe inside
//! the clip) [`plan`] says why and the caller falls back to the exact cut.
//!
//! AAC audio is copied too: the packets from the one holding `time_start` on, with an edit list that starts
//! playback at the clip's first sample (the first packet's samples before it are skipped by the decoder),
//! so the sound starts where the exact cut's does and ends within one AAC frame (23 ms) of it. Encoding
//! 10 s of AAC costs about as much CPU as the head's video. Other audio codecs are encoded as the exact cut
//! encodes them.

use super::ffmpeg::{secs, Encode, Ffmpeg};
use super::process::StopSignal;
use super::Failure;
use crate::classify::Category;
use serde::Deserialize;
use std::path::Path;

/// What the smart cut will do with one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Timestamp of the clip's first frame (the first whose time is at or after `time_start`).
    pub first: f64,
    /// Frames re-encoded before the keyframe (0 when the clip starts on one).
    pub head_frames: usize,
    /// Timestamp of the keyframe the copy starts at.
    pub keyframe: f64,
    /// Packets copied from the keyframe on.
    pub copied_frames: usize,
    /// x264's name for the source's profile.
    pub profile: &'static str,
    /// The source's `level_idc` (31 is level 3.1).
    pub level: i64,
    /// The window's audio is AAC and is copied as it is, not encoded.
    pub copy_audio: bool,
    /// Where the copied audio is read from: [`AUDIO_PREROLL`] before the clip's first sample when a video
    /// keyframe lies before that (a seek lands on one), else `None`, from the window's start.
    pub audio_seek: Option<f64>,
}

/// The window's streams and its packets, as ffprobe lists them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Layout {
    #[serde(default)]
    pub streams: Vec<StreamInfo>,
    #[serde(default)]
    pub packets: Vec<PacketInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamInfo {
    #[serde(default)]
    pub index: i64,
    /// `video` or `audio`.
    pub codec_type: Option<String>,
    pub codec_name: Option<String>,
    pub profile: Option<String>,
    pub level: Option<i64>,
    pub pix_fmt: Option<String>,
    pub has_b_frames: Option<i64>,
    pub field_order: Option<String>,
    pub avg_frame_rate: Option<String>,
    pub r_frame_rate: Option<String>,
}

impl Layout {
    /// The video stream's frame rate (`avg_frame_rate`, else `r_frame_rate`), as [`Ffmpeg::probe`] gives it:
    /// the window is probed once, for the first frame and for the plan.
    pub fn fps(&self) -> Option<f64> {
        let s = self.stream("video")?;
        [&s.avg_frame_rate, &s.r_frame_rate].into_iter().flatten().find_map(|r| super::ffmpeg::parse_rate(r))
    }

    /// The first stream of a kind (`video`, `audio`): the one the cut maps.
    pub fn stream(&self, kind: &str) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type.as_deref() == Some(kind))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PacketInfo {
    #[serde(default)]
    pub stream_index: i64,
    pub pts_time: Option<String>,
    #[serde(default)]
    pub flags: String,
}

/// Half a millisecond: Matroska keeps milliseconds, so timestamps are compared with this much slack.
const SLACK: f64 = 0.0005;

/// How far before the clip's first sample copied audio is read from, when a seek can land there: more than an
/// AAC frame (23 ms at 44.1 kHz, 64 ms at 16 kHz).
const AUDIO_PREROLL: f64 = 0.1;

/// Plans a smart cut of `[start, start + duration)` (both a millisecond before a frame, from `cut_points`),
/// or says why the window cannot be smart-cut.
pub fn plan(layout: &Layout, start: f64, duration: f64, encode: &Encode) -> Result<Plan, String> {
    if encode.copy || encode.short_side.is_some() || encode.fps.is_some() || encode.max_short_side.is_some() {
        return Err("the clip is scaled or resampled".into());
    }
    let s = layout.stream("video").ok_or("no video stream")?;
    if s.codec_name.as_deref() != Some("h264") {
        return Err(format!("codec {}", s.codec_name.as_deref().unwrap_or("unknown")));
    }
    let profile = match s.profile.as_deref() {
        Some("Constrained Baseline" | "Baseline") => "baseline",
        Some("Main") => "main",
        Some("High") => "high",
        other => return Err(format!("H.264 profile {}", other.unwrap_or("unknown"))),
    };
    if s.pix_fmt.as_deref() != Some("yuv420p") {
        return Err(format!("pixel format {}", s.pix_fmt.as_deref().unwrap_or("unknown")));
    }
    if !matches!(s.field_order.as_deref(), None | Some("progressive" | "unknown")) {
        return Err("interlaced video".into());
    }
    if s.has_b_frames.unwrap_or(0) != 0 {
        return Err("B-frames (frame reordering)".into());
    }
    let level = s.level.filter(|l| *l > 0).ok_or("no H.264 level")?;
    let mut frames = Vec::with_capacity(layout.packets.len());
    for p in layout.packets.iter().filter(|p| p.stream_index == s.index) {
        let pts = p.pts_time.as_deref().and_then(|t| t.parse::<f64>().ok()).ok_or("a packet without a timestamp")?;
        frames.push((pts, p.flags.starts_with('K')));
    }
    if frames.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Err("frames out of order (frame reordering)".into());
    }
    let end = start + duration;
    let in_clip: Vec<(f64, bool)> = frames.iter().copied().filter(|(t, _)| *t >= start && *t < end).collect();
    let first = in_clip.first().map(|f| f.0).ok_or("no frame in the clip")?;
    let seek = first - SLACK - AUDIO_PREROLL;
    let audio_seek = frames.iter().any(|(t, key)| *key && *t <= seek).then_some(seek);
    let at = in_clip.iter().position(|f| f.1).ok_or("no keyframe inside the clip")?;
    let copy_audio = layout.stream("audio").is_some_and(|a| a.codec_name.as_deref() == Some("aac"));
    Ok(Plan {
        first,
        head_frames: at,
        keyframe: in_clip[at].0,
        copied_frames: in_clip.len() - at,
        profile,
        level,
        copy_audio,
        audio_seek,
    })
}

impl Ffmpeg {
    /// The window's streams and every packet's stream, timestamp and flags, listed by ffprobe.
    pub async fn layout(&self, window: &Path, stop: &mut StopSignal) -> Result<Layout, Failure> {
        let mut cmd = tokio::process::Command::new(&self.ffprobe);
        cmd.args(["-v", "error", "-print_format", "json", "-show_entries"]);
        cmd.arg(
            "stream=index,codec_type,codec_name,profile,level,pix_fmt,has_b_frames,field_order,avg_frame_rate,\
             r_frame_rate:packet=stream_index,pts_time,flags",
        );
        cmd.arg(window);
        let o = super::ffmpeg::run(&mut cmd, stop).await?;
        if !o.status.success() {
            return Err(Failure::new(Category::Corrupt, super::headline(&o.stderr, o.status.code()), &o.stderr));
        }
        serde_json::from_slice(&o.stdout)
            .map_err(|e| Failure::new(Category::Corrupt, format!("unreadable ffprobe output: {e}"), ""))
    }

    /// Cuts the clip as `plan` says: head encoded, the rest copied, audio copied (AAC) or encoded.
    #[allow(clippy::too_many_arguments)]
    pub async fn smart_cut(
        &self,
        window: &Path,
        plan: &Plan,
        duration: f64,
        encode: &Encode,
        work: &Path,
        out: &Path,
        stop: &mut StopSignal,
    ) -> Result<(), Failure> {
        // The head and the copied part come from one ffmpeg: the window opened twice (one input seeks to the
        // clip's first frame and is decoded, the other to the keyframe and is copied), one output each. A
        // process start is about 0.05-0.09 CPU s here, a tenth of a smart cut's own work.
        let mut list = String::new();
        let mut cmd = self.command();
        cmd.args(["-loglevel", "error"]);
        let head = work.join("head.ts");
        if plan.head_frames > 0 {
            cmd.args(["-seek_timestamp", "1"]).args(super::ffmpeg::DECODE_ONE_THREAD);
            cmd.arg("-ss").arg(exact(plan.first - SLACK)).arg("-i").arg(window);
        }
        cmd.args(["-seek_timestamp", "1", "-ss"]).arg(exact(plan.keyframe)).arg("-i").arg(window);
        if plan.head_frames > 0 {
            cmd.args(["-map", "0:v:0", "-frames:v"]).arg(plan.head_frames.to_string());
            cmd.args(["-c:v", "libx264", "-preset"]).arg(if encode.preset.is_empty() {
                "veryfast"
            } else {
                &encode.preset
            });
            cmd.arg("-crf").arg(if encode.crf == 0 { "23".to_string() } else { encode.crf.to_string() });
            cmd.arg("-profile:v").arg(plan.profile).arg("-level:v").arg(plan.level.to_string());
            // No B-frames: decode order is display order, as in the copied part; parameter-set ids of its
            // own so that the copied part's cannot be mistaken for the head's.
            cmd.args(["-bf", "0", "-x264-params", "sps-id=1", "-pix_fmt", "yuv420p", "-threads", "1"]);
            cmd.args(["-an", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "mpegts"]).arg(&head);
            list += &format!("file '{}'\nduration {}\n", head.display(), exact(plan.keyframe - plan.first));
        }
        let body = work.join("body.ts");
        let copied = if plan.head_frames > 0 { "1:v:0" } else { "0:v:0" };
        cmd.args(["-map", copied, "-frames:v"]).arg(plan.copied_frames.to_string());
        cmd.args(["-c", "copy", "-fflags", "+bitexact", "-f", "mpegts"]).arg(&body);
        check(&mut cmd, stop).await?;
        list += &format!("file '{}'\n", body.display());
        let list_path = work.join("parts.txt");
        std::fs::write(&list_path, list).map_err(|e| {
            Failure::new(Category::Environment, format!("failed to write {}: {e}", list_path.display()), "")
        })?;

        let mut cmd = self.command();
        cmd.args(["-loglevel", "error", "-f", "concat", "-safe", "0", "-i"]).arg(&list_path);
        if !encode.no_audio {
            let from = plan.first - SLACK;
            cmd.args(["-seek_timestamp", "1"]);
            if !plan.copy_audio {
                cmd.arg("-ss").arg(exact(from));
            } else {
                // A seek lands on a video keyframe, and Matroska's drops every packet before it, also the
                // audio packet that holds the clip's first sample when the clip starts on that keyframe: read
                // from before the keyframe (or from the window's start) and shift the timestamps so that the
                // clip's first sample is at 0. The packets before it get negative times, which the MP4's edit
                // list skips.
                let seek = plan.audio_seek.unwrap_or(0.0);
                if plan.audio_seek.is_some() {
                    cmd.arg("-ss").arg(exact(seek));
                }
                cmd.arg("-itsoffset").arg(format!("-{}", exact(from - seek)));
            }
            cmd.arg("-i").arg(window);
        }
        cmd.args(["-map", "0:v:0", "-c:v", "copy"]);
        if !encode.no_audio {
            cmd.args(["-map", "1:a:0?"]);
            match plan.copy_audio {
                true => cmd.args(["-c:a", "copy"]),
                false => cmd.args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-flags:a", "+bitexact"]),
            };
        }
        cmd.arg("-t").arg(secs(duration));
        cmd.args(["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-movflags", "+faststart"]);
        cmd.args(["-f", "mp4"]).arg(out);
        check(&mut cmd, stop).await
    }
}

/// Seconds to the microsecond, for timestamps taken from the window itself.
fn exact(t: f64) -> String {
    format!("{:.6}", t.max(0.0))
}

async fn check(cmd: &mut tokio::process::Command, stop: &mut StopSignal) -> Result<(), Failure> {
    let o = super::ffmpeg::run(cmd, stop).await?;
    if !o.status.success() {
        return Err(Failure::from_stderr(&o.stderr, o.status.code()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(profile: &str, b: i64, packets: &[(f64, bool)]) -> Layout {
        Layout {
            streams: vec![StreamInfo {
                index: 0,
                codec_type: Some("video".into()),
                codec_name: Some("h264".into()),
                profile: Some(profile.into()),
                level: Some(30),
                pix_fmt: Some("yuv420p".into()),
                has_b_frames: Some(b),
                field_order: Some("progressive".into()),
                avg_frame_rate: Some("15/1".into()),
                r_frame_rate: Some("15/1".into()),
            }],
            packets: packets
                .iter()
                .map(|(t, k)| PacketInfo {
                    stream_index: 0,
                    pts_time: Some(format!("{t:.6}")),
                    flags: if *k { "K_" } else { "__" }.into(),
                })
                .collect(),
        }
    }

    /// 15 fps, a keyframe every 2 s, from 6 s to 20 s, timestamps rounded to the millisecond.
    fn gop2s() -> Vec<(f64, bool)> {
        (90..300).map(|n| (((n as f64 / 15.0) * 1000.0).round() / 1000.0, n % 30 == 0)).collect()
    }

    #[test]
    fn plans_head_and_copy_on_real_timestamps() {
        let e = Encode::default();
        // Frame 109 (7.267 s) to frame 258: 11 frames re-encoded, the rest copied from the keyframe at 8 s.
        let p = plan(&layout("High", 0, &gop2s()), 109.0 / 15.0 - SLACK, 10.0, &e).unwrap();
        assert_eq!((p.first, p.head_frames, p.keyframe, p.copied_frames), (7.267, 11, 8.0, 139));
        assert_eq!((p.profile, p.level), ("high", 30));
        // On a keyframe: nothing to encode.
        let p = plan(&layout("Constrained Baseline", 0, &gop2s()), 8.0 - SLACK, 10.0, &e).unwrap();
        assert_eq!((p.head_frames, p.copied_frames, p.profile), (0, 150, "baseline"));
    }

    /// The window's audio: copied when it is AAC, encoded otherwise; its packets, interleaved with the
    /// video's, are not frames of the clip.
    #[test]
    fn copies_aac_audio_and_plans_on_the_video_packets_alone() {
        let e = Encode::default();
        let start = 109.0 / 15.0 - SLACK;
        let mut l = layout("High", 0, &gop2s());
        assert!(!plan(&l, start, 10.0, &e).unwrap().copy_audio, "no audio stream");
        // The audio stream first, as some muxers order them, with packets every 23 ms that overlap the video's.
        let audio = |codec: &str| StreamInfo {
            index: 1,
            codec_type: Some("audio".into()),
            codec_name: Some(codec.into()),
            ..StreamInfo::default()
        };
        l.streams.insert(0, audio("aac"));
        let video = l.packets.clone();
        l.packets.clear();
        for (n, v) in video.into_iter().enumerate() {
            l.packets.push(v);
            let t = 6.0 + n as f64 * 1024.0 / 44100.0 * 3.0;
            l.packets.push(PacketInfo { stream_index: 1, pts_time: Some(format!("{t:.6}")), flags: "K_".into() });
        }
        let p = plan(&l, start, 10.0, &e).unwrap();
        assert_eq!((p.first, p.head_frames, p.keyframe, p.copied_frames, p.copy_audio), (7.267, 11, 8.0, 139, true));
        assert_eq!(p.audio_seek.map(|t| (t * 1e4).round()), Some(71665.0), "the keyframe at 6 s is before it");
        // A window that starts on the clip's first keyframe: the audio is read from its start.
        let from_8s: Vec<(f64, bool)> = gop2s().into_iter().filter(|(t, _)| *t >= 8.0).collect();
        let on_key = plan(&layout("High", 0, &from_8s), 8.0 - SLACK, 10.0, &e).unwrap();
        assert_eq!((on_key.head_frames, on_key.audio_seek), (0, None));
        l.streams[0] = audio("opus");
        assert!(!plan(&l, start, 10.0, &e).unwrap().copy_audio, "Opus is encoded");
        assert_eq!(l.fps(), Some(15.0), "the video stream's rate");
    }

    #[test]
    fn frame_rate_from_the_layout() {
        let mut l = layout("High", 0, &gop2s());
        assert_eq!(l.fps(), Some(15.0));
        l.streams[0].avg_frame_rate = Some("0/0".into());
        l.streams[0].r_frame_rate = Some("30000/1001".into());
        assert_eq!(l.fps().map(|r| (r * 1000.0).round()), Some(29970.0));
        assert_eq!(Layout::default().fps(), None);
    }

    #[test]
    fn says_why_it_cannot() {
        let e = Encode::default();
        let s = 109.0 / 15.0 - SLACK;
        let cases: [(Layout, Encode, &str); 6] = [
            (layout("High", 2, &gop2s()), e.clone(), "B-frames"),
            (layout("High 10", 0, &gop2s()), e.clone(), "profile High 10"),
            (layout("Main", 0, &gop2s()), Encode { short_side: Some(256), ..e.clone() }, "scaled"),
            (layout("Main", 0, &gop2s()), Encode { fps: Some(10.0), ..e.clone() }, "resampled"),
            (layout("Main", 0, &[(7.0, true), (7.5, false), (7.4, false)]), e.clone(), "out of order"),
            (layout("Main", 0, &[(7.0, true), (7.5, false), (8.0, false)]), e.clone(), "no keyframe"),
        ];
        for (l, enc, want) in cases {
            let why = plan(&l, s, 10.0, &enc).unwrap_err();
            assert!(why.contains(want), "{why} does not say {want}");
        }
        let mut vp9 = layout("Main", 0, &gop2s());
        vp9.streams[0].codec_name = Some("vp9".into());
        assert_eq!(plan(&vp9, s, 10.0, &e).unwrap_err(), "codec vp9");
    }
}
