//! `--trim smart`: a frame-accurate cut that re-encodes only the head, from the frame at `time_start` to the
//! next keyframe, copies the rest of the video stream as it is, and, where the source reorders frames and the
//! copy cannot stop at the clip's last frame, re-encodes a short tail.
//!
//! The head is encoded with the source's profile and level and its own parameter-set ids (x264's `sps-id=1`);
//! all parts go through MPEG-TS, so each keyframe carries its parameter sets in band, and the concat demuxer
//! lays them end to end into the MP4. Without frame reordering, decode order is display order: the head has
//! no B-frames and the copy runs to the clip's last frame. With B-frames (most of YouTube's H.264), decode
//! times run a frame or two behind presentation times, and two things change:
//! - the head is encoded with B-frames that delay its decode times as much as the source's (`-bf` of the
//!   source's reordering, 1 or 2), so that decode times climb across the join; a head of fewer frames than
//!   that cannot be delayed so far by x264, and the copy then starts at the next keyframe;
//! - the copy ends where the packets taken so far, in decode order, hold exactly the frames shown from the
//!   keyframe to one at or before the clip's last (a group of reordered frames closes there); the frames
//!   after it are encoded without B-frames (`sps-id=2`) as the tail.
//!
//! Where the source allows neither (another codec or profile, interlacing, reordering deeper than x264's two
//! frames, an open GOP, no keyframe inside the clip) [`plan`] says why and the caller falls back to the
//! exact cut.
//!
//! AAC audio is copied too: the packets from the one holding `time_start` on, with an edit list that starts
//! playback at the clip's first sample (the first packet's samples before it are skipped by the decoder),
//! so the sound starts where the exact cut's does and ends within one AAC frame (23 ms) of it. Encoding
//! 10 s of AAC costs about as much CPU as the head's video. Only AAC-LC is copied (what the tests check);
//! HE-AAC (SBR, whose decoder delay and doubled frames the copy's timing has not been checked against), AAC
//! whose profile is not known for sure, and other codecs are encoded as the exact cut encodes them.

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
    /// Packets copied from the keyframe on, in decode order: they hold exactly the frames from the keyframe
    /// to the one before [`Plan::tail_first`] (or to the clip's last).
    pub copied_frames: usize,
    /// Timestamp of the first frame after the copied ones, where the tail starts (its encode reads from
    /// here); unused when [`Plan::tail_frames`] is 0.
    pub tail_first: f64,
    /// Frames re-encoded after the copied part, to the clip's last (0 when the copy reaches it).
    pub tail_frames: usize,
    /// The source's frame reordering (`has_b_frames`): how many frames its decode times run behind its
    /// presentation times; the head is encoded with as many, so that decode times climb across the join.
    pub reorder: i64,
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

/// The deepest frame reordering the head can match: x264 delays decode times by at most two frames (with a
/// B-pyramid).
const MAX_REORDER: i64 = 2;

/// How much earlier than asked ffmpeg seeks an input whose video reorders frames, in a container that
/// does not seek on presentation times (Matroska): `3 * AV_TIME_BASE / 23` in `fftools`. The copy's seek
/// adds it back, or it would land on the keyframe before the one it asks for.
const REORDER_SEEK_AHEAD: f64 = 3.0 / 23.0;

/// How far past its keyframe the copy's seek asks, for a source reordering `reorder` frames deep: nothing
/// without reordering, else [`REORDER_SEEK_AHEAD`] (and the slack of a millisecond timestamp) so that the
/// seek lands on the keyframe itself.
fn copy_seek_ahead(reorder: i64) -> f64 {
    if reorder > 0 {
        REORDER_SEEK_AHEAD + SLACK
    } else {
        0.0
    }
}

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
    let reorder = s.has_b_frames.unwrap_or(0);
    if reorder > MAX_REORDER {
        return Err(format!("frames reordered {reorder} deep (the head's encoder goes to {MAX_REORDER})"));
    }
    if reorder > 0 && profile == "baseline" {
        return Err("frame reordering in a Baseline stream".into());
    }
    let level = s.level.filter(|l| *l > 0).ok_or("no H.264 level")?;
    // The video's packets in the file's order, which is decode order: each frame's time and keyframe flag.
    let mut frames = Vec::with_capacity(layout.packets.len());
    for p in layout.packets.iter().filter(|p| p.stream_index == s.index) {
        let pts = p.pts_time.as_deref().and_then(|t| t.parse::<f64>().ok()).ok_or("a packet without a timestamp")?;
        frames.push((pts, p.flags.starts_with('K')));
    }
    if reorder == 0 && frames.windows(2).any(|w| w[1].0 <= w[0].0) {
        return Err("frames out of order (frame reordering)".into());
    }
    // The same frames in display order.
    let mut shown: Vec<f64> = frames.iter().map(|f| f.0).collect();
    shown.sort_by(f64::total_cmp);
    if shown.windows(2).any(|w| w[1] - w[0] < SLACK) {
        return Err("two frames at one time".into());
    }
    let end = start + duration;
    let in_clip = &shown[shown.partition_point(|t| *t < start)..shown.partition_point(|t| *t < end)];
    let (&first, &last) = in_clip.first().zip(in_clip.last()).ok_or("no frame in the clip")?;
    let seek = first - SLACK - AUDIO_PREROLL;
    let audio_seek = frames.iter().any(|(t, key)| *key && *t <= seek).then_some(seek);
    // The copy starts at the first keyframe inside the clip, unless the head before it is too short to
    // reorder as deeply as the source (x264 delays the decode times of fewer frames less): then at the next.
    // With reordering the copy's seek asks for a time past its keyframe (REORDER_SEEK_AHEAD), so no other
    // keyframe may lie that close after it: an ffmpeg that sought where it is asked would land there.
    let ahead = copy_seek_ahead(reorder);
    let lone = |t: f64| !frames.iter().any(|(u, key)| *key && *u > t && *u <= t + ahead);
    let keys = frames.iter().enumerate().filter(|(_, (t, key))| *key && *t >= first && *t <= last && lone(*t));
    let (at, head_frames) = keys
        .map(|(at, (t, _))| (at, in_clip.partition_point(|x| x < t)))
        .filter(|(_, head)| *head == 0 || *head as i64 > reorder)
        .min_by_key(|(_, head)| *head)
        .ok_or(if reorder > 0 {
            "no keyframe inside the clip after its first frames"
        } else {
            "no keyframe inside the clip"
        })?;
    // The copy: the longest run of packets from the keyframe on, in decode order, that holds exactly the
    // frames shown from the keyframe to one at or before the clip's last: it decodes from the keyframe alone
    // and shows no frame past the clip's end. Without reordering that is every packet to the clip's last
    // frame; with B-frames it ends where a group of reordered frames does, and the frames after it are the
    // tail, encoded.
    let (mut copied_frames, mut taken, mut highest) = (0, 0, head_frames);
    for &(t, _) in &frames[at..] {
        if t < in_clip[head_frames] {
            return Err("an open GOP (a frame shown before the keyframe is decoded after it)".into());
        }
        if t > last {
            break;
        }
        taken += 1;
        highest = highest.max(in_clip.partition_point(|x| *x < t));
        if highest + 1 - head_frames == taken {
            copied_frames = taken;
        }
    }
    let tail_at = head_frames + copied_frames;
    let copy_audio = layout
        .stream("audio")
        .is_some_and(|a| a.codec_name.as_deref() == Some("aac") && a.profile.as_deref() == Some("LC"));
    Ok(Plan {
        first,
        head_frames,
        keyframe: in_clip[head_frames],
        copied_frames,
        tail_first: in_clip.get(tail_at).copied().unwrap_or(last),
        tail_frames: in_clip.len() - tail_at,
        reorder,
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
        let encoded = |cmd: &mut tokio::process::Command, frames: usize, bframes: i64, sps_id: u8, out: &Path| {
            cmd.arg("-frames:v").arg(frames.to_string());
            cmd.args(["-c:v", "libx264", "-preset"]).arg(if encode.preset.is_empty() {
                "veryfast"
            } else {
                &encode.preset
            });
            cmd.arg("-crf").arg(if encode.crf == 0 { "23".to_string() } else { encode.crf.to_string() });
            cmd.arg("-profile:v").arg(plan.profile).arg("-level:v").arg(plan.level.to_string());
            // Parameter-set ids of its own so that the copied part's cannot be mistaken for this part's.
            cmd.arg("-bf").arg(bframes.to_string()).arg("-x264-params").arg(format!("sps-id={sps_id}"));
            cmd.args(["-pix_fmt", "yuv420p", "-threads", "1"]);
            cmd.args(["-an", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "mpegts"]).arg(out);
        };
        // The inputs: the window opened once for each part (one seeks to the clip's first frame and is
        // decoded, one to the keyframe and is copied, one to the tail's first frame and is decoded).
        let mut input = 0;
        let mut open = |cmd: &mut tokio::process::Command, at: f64, decoded: bool| {
            cmd.args(["-seek_timestamp", "1"]);
            if decoded {
                cmd.args(super::ffmpeg::DECODE_ONE_THREAD);
            }
            cmd.arg("-ss").arg(exact(at)).arg("-i").arg(window);
            input += 1;
            format!("{}:v:0", input - 1)
        };
        let head_input = (plan.head_frames > 0).then(|| open(&mut cmd, plan.first - SLACK, true));
        // A seek into a reordered stream lands that much earlier (REORDER_SEEK_AHEAD); the copy must start on
        // its keyframe, and `plan` saw that no other keyframe follows it so closely.
        let body_input = open(&mut cmd, plan.keyframe + copy_seek_ahead(plan.reorder), false);
        let tail_input = (plan.tail_frames > 0).then(|| open(&mut cmd, plan.tail_first - SLACK, true));
        let head = work.join("head.ts");
        if let Some(input) = head_input {
            // As many frames reordered as the source, or none when it has none: the head's decode times then
            // run as far behind its presentation times as the copied part's, and climb across the join.
            cmd.args(["-map", &input]);
            encoded(&mut cmd, plan.head_frames, plan.reorder, 1, &head);
            list += &format!("file '{}'\nduration {}\n", head.display(), exact(plan.keyframe - plan.first));
        }
        let body = work.join("body.ts");
        cmd.args(["-map", &body_input, "-frames:v"]).arg(plan.copied_frames.to_string());
        cmd.args(["-c", "copy", "-fflags", "+bitexact", "-f", "mpegts"]).arg(&body);
        let tail = work.join("tail.ts");
        if let Some(input) = tail_input {
            // No reordering: its decode times start at its first frame's time, after every copied one's.
            cmd.args(["-map", &input]);
            encoded(&mut cmd, plan.tail_frames, 0, 2, &tail);
        }
        check(&mut cmd, stop).await?;
        list += &format!("file '{}'\n", body.display());
        if plan.tail_frames > 0 {
            list += &format!("duration {}\nfile '{}'\n", exact(plan.tail_first - plan.keyframe), tail.display());
        }
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

/// Runs one of the smart cut's ffmpeg commands (at `-loglevel error`): one that complains decoded damaged
/// source packets for an encoded part, or met them in a copy, and fails the clip as the exact cut does.
async fn check(cmd: &mut tokio::process::Command, stop: &mut StopSignal) -> Result<(), Failure> {
    let o = super::ffmpeg::run(cmd, stop).await?;
    if !o.status.success() {
        return Err(Failure::from_stderr(&o.stderr, o.status.code()));
    }
    super::ffmpeg::undamaged_source(&o.stderr)
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

    /// [`gop2s`] with x264's B-pyramid (`-bf 2`), in decode order: the order of one GOP of the test source's
    /// B-frame profile, as its Matroska window lists it (frame numbers from a keyframe), in every GOP.
    fn gop2s_bframes() -> Vec<(f64, bool)> {
        const GOP: [u32; 30] = [
            0, 2, 1, 4, 3, 7, 5, 6, 9, 8, 11, 10, 14, 12, 13, 17, 15, 16, 20, 18, 19, 23, 21, 22, 24, 27, 25, 26, 29,
            28,
        ];
        (3..10)
            .flat_map(|g| GOP.map(|n| (((f64::from(g * 30 + n) / 15.0) * 1000.0).round() / 1000.0, n == 0)))
            .collect()
    }

    #[test]
    fn plans_head_copy_and_tail_on_reordered_frames() {
        let e = Encode::default();
        let l = layout("High", 2, &gop2s_bframes());
        let at = |frame: u32| f64::from(frame) / 15.0 - SLACK;
        let summary = |p: &Plan| (p.head_frames, p.keyframe, p.copied_frames, p.tail_first, p.tail_frames, p.reorder);
        // Frames 109-258: 11 encoded; copied from the keyframe at 120 (8 s) to 257, where the group 255-257
        // closes (258 is decoded after 260, past the clip); 258 encoded as the tail.
        let p = plan(&l, at(109), 10.0, &e).unwrap();
        assert_eq!(p.first, 7.267);
        assert_eq!(summary(&p), (11, 8.0, 138, 17.2, 1, 2));
        // Frames 105-254: the copy ends at 254 (the group 252-254 closes there), no tail.
        let p = plan(&l, at(105), 10.0, &e).unwrap();
        assert_eq!(summary(&p), (15, 8.0, 135, 16.933, 0, 2));
        // Frames 118-267: a head of 2 frames cannot reorder 2 deep, so the copy starts at the next keyframe
        // (150, 10 s) and runs to the clip's last frame (the group 265-267 closes there).
        let p = plan(&l, at(118), 10.0, &e).unwrap();
        assert_eq!(summary(&p), (32, 10.0, 118, 17.8, 0, 2));
        // On a keyframe, frames 120-269: nothing before the copy.
        let p = plan(&l, at(120), 10.0, &e).unwrap();
        assert_eq!(summary(&p), (0, 8.0, 150, 17.933, 0, 2));
        // An open GOP: frames shown before a keyframe decoded after it.
        let mut open = gop2s_bframes();
        let k = open.iter().position(|f| f.0 == 8.0).unwrap();
        open.swap(k, k - 1);
        open[k].1 = false;
        open[k - 1].1 = true;
        let why = plan(&layout("High", 2, &open), at(109), 10.0, &e).unwrap_err();
        assert!(why.contains("open GOP"), "{why}");
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

    /// The window's audio: copied when it is AAC-LC, encoded otherwise; its packets, interleaved with the
    /// video's, are not frames of the clip.
    #[test]
    fn copies_aac_audio_and_plans_on_the_video_packets_alone() {
        let e = Encode::default();
        let start = 109.0 / 15.0 - SLACK;
        let mut l = layout("High", 0, &gop2s());
        assert!(!plan(&l, start, 10.0, &e).unwrap().copy_audio, "no audio stream");
        // The audio stream first, as some muxers order them, with packets every 23 ms that overlap the video's.
        let audio = |codec: &str, profile: Option<&str>| StreamInfo {
            index: 1,
            codec_type: Some("audio".into()),
            codec_name: Some(codec.into()),
            profile: profile.map(String::from),
            ..StreamInfo::default()
        };
        l.streams.insert(0, audio("aac", Some("LC")));
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
        for (codec, profile) in [("opus", None), ("aac", Some("HE-AAC")), ("aac", Some("HE-AACv2")), ("aac", None)] {
            l.streams[0] = audio(codec, profile);
            assert!(!plan(&l, start, 10.0, &e).unwrap().copy_audio, "{codec} {profile:?} is encoded");
        }
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
            (layout("High", 3, &gop2s_bframes()), e.clone(), "reordered 3 deep"),
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
        // A keyframe 3 frames (0.2 s) after the one at 8 s is fine; one 1 frame after it (a scene cut) is
        // within the copy's seek ahead, so the copy starts at that second keyframe.
        for (after, keyframe) in [(3, 8.0), (1, 8.067)] {
            let mut frames = gop2s_bframes();
            let cut = frames.iter().position(|f| f.0 == (f64::from(120 + after) / 15.0 * 1000.0).round() / 1000.0);
            frames[cut.unwrap()].1 = true;
            let p = plan(&layout("High", 2, &frames), 109.0 / 15.0 - SLACK, 10.0, &e).unwrap();
            assert_eq!(p.keyframe, keyframe, "a keyframe {after} frames after the one at 8 s");
        }
        // Frames 119-141, reordered two deep: the one keyframe (120) leaves a head of one frame.
        let why = plan(&layout("High", 2, &gop2s_bframes()), 119.0 / 15.0 - SLACK, 1.5, &e).unwrap_err();
        assert_eq!(why, "no keyframe inside the clip after its first frames");
        let why = plan(&layout("Baseline", 1, &gop2s_bframes()), s, 10.0, &e).unwrap_err();
        assert_eq!(why, "frame reordering in a Baseline stream");
        let mut vp9 = layout("Main", 0, &gop2s());
        vp9.streams[0].codec_name = Some("vp9".into());
        assert_eq!(plan(&vp9, s, 10.0, &e).unwrap_err(), "codec vp9");
    }
}
