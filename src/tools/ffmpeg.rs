//! ffmpeg and ffprobe: fetch a clip's padded window by stream copy, cut it frame-accurately, verify it.

use super::process::{self, StopSignal};
use super::Failure;
use crate::classify::Category;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::process::Command;

pub const INSTALL_HINT: &str = "install it with `apt-get install ffmpeg`";

/// Seconds fetched after the clip's end, so the last frame and the audio tail are complete (a few frames;
/// B-frames may need packets a little past the end in decode order).
pub const END_PAD: f64 = 0.3;
/// How far a clip's duration may stray from what was asked or recorded: a frame or two of rounding at
/// each end. The one tolerance of every check (a fresh cut, a mirror clip, `verify`).
pub const DURATION_TOLERANCE_S: f64 = 0.35;

#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Default for Ffmpeg {
    fn default() -> Self {
        Ffmpeg { ffmpeg: "ffmpeg".into(), ffprobe: "ffprobe".into() }
    }
}

/// How the final clip is encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encode {
    /// Stream-copy keyframe cut instead of a frame-accurate re-encode.
    pub copy: bool,
    pub short_side: Option<u32>,
    /// Scale down (never up) so the short side is at most this; for mirror clips, whose resolution was not
    /// chosen by format selection. Ignored when `short_side` is set.
    pub max_short_side: Option<u32>,
    pub fps: Option<f64>,
    /// `--trim smart`: re-encode only up to the first keyframe, copy the rest (`tools/smartcut.rs`).
    pub smart: bool,
    pub no_audio: bool,
    pub crf: u8,
    pub preset: String,
    /// `--audio-only`: the clip is the audio stream alone, in this format.
    pub audio_only: Option<AudioOut>,
}

/// An audio-only clip's format (`--audio-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// Lossless FLAC.
    #[default]
    Flac,
    /// 16-bit PCM in WAV.
    Wav,
    /// AAC in MP4 (`.m4a`), 128 kb/s.
    M4a,
}

impl AudioFormat {
    /// The clip file's extension.
    pub fn ext(self) -> &'static str {
        match self {
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
            AudioFormat::M4a => "m4a",
        }
    }

    /// The encoder and muxer arguments, fixed so the same input gives the same bytes.
    fn codec_args(self) -> &'static [&'static str] {
        match self {
            AudioFormat::Flac => &["-c:a", "flac", "-f", "flac"],
            AudioFormat::Wav => &["-c:a", "pcm_s16le", "-f", "wav"],
            AudioFormat::M4a => &["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "ipod"],
        }
    }
}

/// `--audio-only` with its `--audio-format`, `--sample-rate` and `--channels` (`None`: the source's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AudioOut {
    pub format: AudioFormat,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

/// The clip file's extension: `mp4`, or the audio format's.
pub fn clip_ext(encode: &Encode) -> &'static str {
    encode.audio_only.map_or("mp4", |a| a.format.ext())
}

impl Encode {
    /// The `--trim` asked for: `copy`, `smart` or `exact`.
    pub fn trim_name(&self) -> &'static str {
        match (self.copy, self.smart) {
            (true, _) => "copy",
            (false, true) => "smart",
            (false, false) => "exact",
        }
    }
}

/// What `fetch_window` learned about the source.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// The source's duration as its container declares it, when ffmpeg printed one.
    pub source_duration: Option<f64>,
}

/// What ffprobe says about a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    pub has_video: bool,
    pub has_audio: bool,
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub vcodec: Option<String>,
    /// The video stream's frame rate (`avg_frame_rate`, else `r_frame_rate`).
    pub fps: Option<f64>,
}

impl Ffmpeg {
    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-nostats", "-y"]);
        cmd
    }

    /// Fetches `[start, end + END_PAD]` of the inputs (video first, optional audio second) by stream copy
    /// into a Matroska file that keeps the source's timestamps (`-copyts`), so the cut can seek on them.
    /// `audio_only`: the audio stream alone, into MPEG-TS, whose 90 kHz clock keeps every audio frame's
    /// time to a fraction of a sample (Matroska rounds to the millisecond) and whose times may be negative
    /// (an AAC track's priming frame starts before 0), so the cut is exact to the sample.
    pub async fn fetch_window(
        &self,
        inputs: &[String],
        start: f64,
        end: f64,
        audio_only: bool,
        out: &Path,
        stop: &mut StopSignal,
    ) -> Result<Window, Failure> {
        let mut cmd = self.command();
        // `info` keeps the "Duration:" line of the input; the relay makes the input side quiet anyway.
        cmd.args(["-loglevel", "info"]);
        for url in inputs {
            // The header already holds what `-c copy` needs; probing only reads (the relay fetches) the
            // first packets of the file, far from the window.
            cmd.args(["-rw_timeout", "60000000", "-probesize", "32", "-recv_buffer_size", "16384"]);
            cmd.arg("-ss").arg(secs(start)).arg("-to").arg(secs(end + END_PAD));
            cmd.arg("-i").arg(url);
        }
        if audio_only {
            cmd.args(["-map", if inputs.len() > 1 { "1:a:0" } else { "0:a:0" }]);
            cmd.args(["-c", "copy", "-copyts", "-avoid_negative_ts", "disabled", "-muxdelay", "0", "-muxpreload", "0"]);
            cmd.args(["-f", "mpegts"]).arg(out);
        } else {
            cmd.args(["-map", "0:v:0"]);
            cmd.args(["-map", if inputs.len() > 1 { "1:a:0?" } else { "0:a:0?" }]);
            cmd.args(WINDOW_MUX).arg(out);
        }
        let out_ = run(&mut cmd, stop).await?;
        if !out_.status.success() {
            return Err(Failure::from_stderr(&out_.stderr, out_.status.code()));
        }
        Ok(Window { source_duration: parse_duration_line(&out_.stderr) })
    }

    /// Cuts `[start, start + duration)` out of a window (or a whole video) whose timestamps are the
    /// source's: the seek and duration callers give (`cut_points` for frame-exact windows), encoded once to
    /// H.264 + AAC with `+faststart`. An encode also gives the packets it wrote ([`Packets`], for
    /// [`Ffmpeg::check_packets`]): the same ffmpeg run hands them to a second output, through the `tee`
    /// muxer, so the clip's bytes are those of the MP4 written alone. A keyframe copy (`--trim copy`) and an
    /// audio-only clip give none.
    pub async fn cut(
        &self,
        input: &Path,
        start: f64,
        duration: f64,
        encode: &Encode,
        out: &Path,
        stop: &mut StopSignal,
    ) -> Result<Option<Packets>, Failure> {
        let mut cmd = self.command();
        cmd.args(["-loglevel", "error", "-seek_timestamp", "1"]);
        if let Some(audio) = encode.audio_only {
            // Decoded and trimmed to the sample at `start` (ffmpeg's accurate seek), then encoded once.
            cmd.arg("-ss").arg(precise_secs(start)).arg("-i").arg(input).arg("-t").arg(precise_secs(duration));
            cmd.args(["-map", "0:a:0", "-vn", "-sn", "-dn"]);
            if let Some(rate) = audio.sample_rate {
                cmd.arg("-ar").arg(rate.to_string());
            }
            if let Some(channels) = audio.channels {
                cmd.arg("-ac").arg(channels.to_string());
            }
            cmd.args(audio.format.codec_args());
            cmd.args(["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]);
            cmd.arg(out);
            let o = run(&mut cmd, stop).await?;
            if !o.status.success() {
                return Err(Failure::from_stderr(&o.stderr, o.status.code()));
            }
            undamaged_source(&o.stderr)?;
            return Ok(None);
        }
        cmd.args(DECODE_ONE_THREAD);
        cmd.arg("-ss").arg(secs(start)).arg("-i").arg(input).arg("-t").arg(secs(duration));
        cmd.args(["-map", "0:v:0"]);
        if !encode.no_audio {
            cmd.args(["-map", "0:a:0?"]);
        }
        cmd.args(encode_args(encode));
        cmd.args(["-map_metadata", "-1", "-map_chapters", "-1"]);
        if encode.copy {
            cmd.args(["-movflags", "+faststart", "-f", "mp4"]).arg(out);
        } else {
            cmd.args(["-f", "tee"]).arg(tee_outputs(out));
        }
        let o = run(&mut cmd, stop).await?;
        if !o.status.success() {
            return Err(Failure::from_stderr(&o.stderr, o.status.code()));
        }
        undamaged_source(&o.stderr)?;
        if encode.copy {
            return Ok(None);
        }
        // Nothing at all on stdout (an `--ffmpeg` wrapper that keeps it) is no record: the clip is decoded.
        let written = Packets::parse(&String::from_utf8_lossy(&o.stdout));
        if written.config.is_empty() && written.is_empty() {
            tracing::info!("the encode gave no packets on stdout: its clip is checked by a decode");
            return Ok(None);
        }
        Ok(Some(written))
    }

    /// A finished encode read back without decoding it: ffmpeg reads every packet of the file (`-c copy`)
    /// and hashes each as the encode's second output did ([`PACKETS_CANONICAL`]). The clip passes when the
    /// file holds exactly the packets the encoder wrote (the same count, each of the same size and SHA-256,
    /// and each stream's codec configuration), and ffmpeg reads it without a complaint; the streams and the
    /// duration come from the same run's description of its input, as in [`Ffmpeg::check_clip`]. Any damage
    /// that makes a decode complain changes a packet, so this check rejects every file that one rejects, and
    /// also the damage a decoder conceals (`tests/clip_check.rs`); it is for clips whose every packet came
    /// from this encoder (an exact cut), not for packets copied from a source, which only a decode judges.
    pub async fn check_packets(
        &self,
        path: &Path,
        written: &Packets,
        stop: &mut StopSignal,
    ) -> Result<ClipCheck, Failure> {
        let mut cmd = self.command();
        cmd.args(["-loglevel", "repeat+level+info", "-i"]).arg(path);
        cmd.args(["-map", "0", "-c", "copy", "-bsf:v", PACKETS_CANONICAL, "-f", "framehash", "pipe:1"]);
        let o = run(&mut cmd, stop).await?;
        let check = clip_read(&o, "reading the clip")?;
        let back = Packets::parse(&String::from_utf8_lossy(&o.stdout));
        if let Some(difference) = written.difference(&back) {
            let message = format!("the clip is not what its encoder wrote: {difference}");
            return Err(Failure::new(Category::Corrupt, message, ""));
        }
        Ok(check)
    }

    /// Reads streams and duration with ffprobe.
    pub async fn probe(&self, path: &Path, stop: &mut StopSignal) -> Result<Probe, Failure> {
        let mut cmd = Command::new(&self.ffprobe);
        cmd.args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"]).arg(path);
        let o = run(&mut cmd, stop).await?;
        if !o.status.success() {
            return Err(Failure::new(Category::Corrupt, super::headline(&o.stderr, o.status.code()), &o.stderr));
        }
        parse_probe(&o.stdout)
            .map_err(|e| Failure::new(Category::Corrupt, format!("unreadable ffprobe output: {e}"), ""))
    }

    /// A finished clip, read once: decodes the whole file as [`Ffmpeg::decode_check`] does (the same ffmpeg
    /// command, so every complaint that fails that check fails this one) and takes the streams and the
    /// duration from the same run's description of its input, instead of running ffprobe first. Only the
    /// log level differs: `level+info` tags each line, so the input's description (info) and the
    /// complaints (error and worse, or any line without a tag) are told apart. The duration is the
    /// container's, to the hundredth of a second.
    pub async fn check_clip(&self, path: &Path, stop: &mut StopSignal) -> Result<ClipCheck, Failure> {
        let mut cmd = self.command();
        cmd.args(["-loglevel", "repeat+level+info"]).args(CHECK_DECODE);
        cmd.arg("-i").arg(path).args(["-f", "null", "-"]);
        let o = run(&mut cmd, stop).await?;
        clip_read(&o, "decoding")
    }

    /// Decodes the whole file; any decoder complaint means the clip is not usable.
    pub async fn decode_check(&self, path: &Path, stop: &mut StopSignal) -> Result<(), Failure> {
        let mut cmd = self.command();
        cmd.args(["-loglevel", "error"]).args(CHECK_DECODE).arg("-i").arg(path).args(["-f", "null", "-"]);
        let o = run(&mut cmd, stop).await?;
        if !o.status.success() || !o.stderr.trim().is_empty() {
            return Err(Failure::new(
                Category::Corrupt,
                format!("decoding failed: {}", super::headline(&o.stderr, o.status.code())),
                &o.stderr,
            ));
        }
        Ok(())
    }

    /// `ffmpeg -version`'s first line.
    pub async fn version(&self, stop: &mut StopSignal) -> Result<String, Failure> {
        version_line(&self.ffmpeg, stop).await
    }

    /// `ffprobe -version`'s first line.
    pub async fn probe_version(&self, stop: &mut StopSignal) -> Result<String, Failure> {
        version_line(&self.ffprobe, stop).await
    }
}

async fn version_line(program: &Path, stop: &mut StopSignal) -> Result<String, Failure> {
    {
        let mut cmd = Command::new(program);
        cmd.arg("-version");
        let o = run(&mut cmd, stop).await?;
        if !o.status.success() {
            let msg = format!("`{} -version` failed; {INSTALL_HINT}", program.display());
            return Err(Failure::new(Category::Environment, msg, &o.stderr));
        }
        // "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) ..." -> "ffmpeg 5.1.9-0+deb12u1"
        let text = String::from_utf8_lossy(&o.stdout);
        let words: Vec<&str> = text.lines().next().unwrap_or("").split_whitespace().collect();
        Ok(match words.as_slice() {
            [name, "version", v, ..] => format!("{name} {v}"),
            _ => words.join(" "),
        })
    }
}

/// Fails a cut that exited 0 but complained, at `-loglevel error` (where ffmpeg prints nothing else): its decoder
/// met damaged packets in the source and concealed them, so the clip holds pictures or sound the source
/// does not. The clip's own check cannot see that (an encoder's packets are sound whatever it was given),
/// so the cut fails as `corrupt`, as a decode check of copied packets fails on the same complaints.
///
/// A decode that starts at a keyframe which is not an IDR picture (an open GOP) cannot reference what the
/// frames shown before that keyframe but decoded after it need, and says so ([`OPEN_GOP_START`]); those frames
/// come before the clip's start (the window begins at the keyframe at or before it), so those lines alone are
/// no damage.
pub(super) fn undamaged_source(stderr: &str) -> Result<(), Failure> {
    let complaint = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !OPEN_GOP_START.iter().any(|benign| l.contains(benign)));
    match complaint {
        None => Ok(()),
        Some(first) => {
            let message = format!("the source is damaged: decoding it, ffmpeg said \"{}\"", without_address(first));
            Err(Failure::new(Category::Corrupt, message, stderr))
        }
    }
}

/// What H.264's decoder says of the pictures it cannot reference when it starts at a keyframe that is not an
/// IDR picture (x264's `open-gop`: ffmpeg 5.1 prints the first for every such start, the others for other
/// reference structures).
const OPEN_GOP_START: [&str; 5] = [
    "mmco: unref short failure",
    "mmco: unref long failure",
    "reference picture missing during reorder",
    "Missing reference picture",
    "co located POCs unavailable",
];

/// A log line without the addresses of its contexts (`[h264 @ 0x55d4c3a0b2c0] ...` → `[h264] ...`), which
/// change from run to run.
fn without_address(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        rest = after.trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// A whole read of a clip at `-loglevel repeat+level+info` ([`read_clip_log`]): the input's description, or
/// the clip's failure (`"{doing} failed: ..."`) when ffmpeg failed or complained.
fn clip_read(o: &process::Output, doing: &str) -> Result<ClipCheck, Failure> {
    let read = read_clip_log(&o.stderr);
    if o.status.success() && read.complaints.is_empty() {
        return Ok(read.check);
    }
    let complaints = read.complaints.join("\n");
    let message = format!("{doing} failed: {}", super::headline(&complaints, o.status.code()));
    Err(Failure::new(Category::Corrupt, message, &complaints))
}

/// How a window of video is written: its packets copied into Matroska with the source's timestamps.
pub const WINDOW_MUX: [&str; 5] = ["-c", "copy", "-copyts", "-f", "matroska"];

/// Input options that decode on one thread. Clips are cut and checked side by side (`--encode-jobs`, one a
/// core), so a decoder's frame threads add CPU of their own (about a third of a 360p clip's decode) without
/// adding throughput; and a decoder's output is the same at any thread count, so the clips stay
/// byte-identical.
pub const DECODE_ONE_THREAD: [&str; 2] = ["-threads", "1"];

/// Input options of a decode that only checks a file (its frames go to `-f null`): one thread, and no
/// deblocking. The loop filter only smooths the pixels of frames already decoded and reports nothing, while
/// every complaint comes from reading the bitstream, which is decoded in full (`tests/clip_check.rs`: every
/// corrupt file is still rejected); it is about a tenth of a 360p H.264 clip's decode here.
pub const CHECK_DECODE: [&str; 4] = ["-threads", "1", "-skip_loop_filter", "all"];

/// The bitstream filters that make an H.264 stream's packets the same whatever container holds them: Annex B
/// start codes (MP4 keeps lengths instead), and no parameter sets among the packets (`h264_mp4toannexb`
/// repeats them before each keyframe; they are compared as the stream's codec configuration). The encoder's
/// packets are Annex B already and need only the second filter ([`PACKETS_UNITS`]), which writes every
/// packet's units again with the same start codes on both sides.
pub const PACKETS_CANONICAL: &str = "h264_mp4toannexb,filter_units=remove_types=7-8";
const PACKETS_UNITS: &str = "filter_units=remove_types=7-8";

/// The `tee` muxer's outputs of an encode: the clip, an MP4 with `+faststart` at `out`, and the packets'
/// `framehash` ([`PACKETS_CANONICAL`]) on stdout. `out` is escaped for the tee's syntax (`\`, `'`, `|`, `[`
/// and `]` would otherwise be read as its own), so any path names the file it names.
fn tee_outputs(out: &Path) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut spec = b"[f=mp4:movflags=+faststart]".to_vec();
    for &b in out.as_os_str().as_bytes() {
        if matches!(b, b'\\' | b'\'' | b'|' | b'[' | b']') {
            spec.push(b'\\');
        }
        spec.push(b);
    }
    // The one stream filter that applies to this output's video; the muxer hashes with SHA-256.
    spec.extend_from_slice(format!("|[f=framehash:bsfs/v={PACKETS_UNITS}]pipe:1").as_bytes());
    std::ffi::OsString::from_vec(spec)
}

/// What an encode wrote, packet by packet, told apart from the container that holds it: each stream's codec
/// configuration, and every packet's stream, size and SHA-256, in order (ffmpeg's `framehash` of the packets
/// as [`PACKETS_CANONICAL`] makes them). Timestamps are left out: each output writes them in its own time
/// base (the encoder's 1/30 s, the MP4 track's 1/15360 s), and the check's duration covers them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packets {
    /// `(stream, size, hash)`: the codec configuration of each stream that has one, then every packet.
    config: Vec<(u32, u64, String)>,
    packets: Vec<(u32, u64, String)>,
}

impl Packets {
    /// Reads `framehash` output (version 2): `#extradata S, size, hash` lines and packet lines
    /// `S, dts, pts, duration, size, hash[, side data...]`. Other lines (`#tb`, `#software`, ...) describe
    /// the output, not the packets, and are skipped; so is anything unreadable, which can only make the
    /// comparison fail.
    pub fn parse(text: &str) -> Packets {
        let entry =
            |stream: &str, size: &str, hash: &str| Some((stream.parse().ok()?, size.parse().ok()?, hash.to_string()));
        let mut p = Packets::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#extradata ") {
                if let [stream, size, hash] = rest.split(',').map(str::trim).collect::<Vec<_>>()[..] {
                    p.config.extend(entry(stream, size, hash));
                }
            } else if !line.starts_with('#') {
                if let [stream, _dts, _pts, _duration, size, hash, ..] =
                    line.split(',').map(str::trim).collect::<Vec<_>>()[..]
                {
                    p.packets.extend(entry(stream, size, hash));
                }
            }
        }
        // Each stream's packets in their order; how a muxer and a demuxer interleave the streams is theirs.
        Packets::new(p.config, p.packets)
    }

    /// Packets from their parts, as [`Packets::parse`] keeps them: `(stream, size, hex SHA-256)`.
    pub fn new(config: Vec<(u32, u64, String)>, mut packets: Vec<(u32, u64, String)>) -> Packets {
        packets.sort_by_key(|&(stream, ..)| stream);
        Packets { config, packets }
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// One stream's packets, `(size, hash)`, in order.
    fn stream(&self, stream: u32) -> Vec<(u64, &str)> {
        self.packets.iter().filter(|e| e.0 == stream).map(|e| (e.1, e.2.as_str())).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// How `read` (the file read back) differs from `self` (what was written), in words; `None` when it
    /// does not.
    pub fn difference(&self, read: &Packets) -> Option<String> {
        if self.config != read.config {
            let streams = |p: &Packets| p.config.iter().map(|c| c.0.to_string()).collect::<Vec<_>>().join(", ");
            return Some(format!(
                "the codec configuration differs (written for streams [{}], read for [{}])",
                streams(self),
                streams(read)
            ));
        }
        let short = |h: &str| h.chars().take(12).collect::<String>();
        let streams: std::collections::BTreeSet<u32> = self.packets.iter().chain(&read.packets).map(|p| p.0).collect();
        for stream in streams {
            let (w, r) = (self.stream(stream), read.stream(stream));
            if let Some(i) = w.iter().zip(&r).position(|(w, r)| w != r) {
                let ((ws, wh), (rs, rh)) = (w[i], r[i]);
                return Some(format!(
                    "stream {stream}'s packet {} of {} differs ({ws} bytes, sha256 {}... written; {rs} bytes, sha256 \
                     {}... read)",
                    i + 1,
                    w.len(),
                    short(wh),
                    short(rh)
                ));
            }
            if w.len() != r.len() {
                return Some(format!("stream {stream}: {} packets written, {} read back", w.len(), r.len()));
            }
        }
        None
    }
}

/// The encoder arguments, fixed so that the same input and settings give byte-identical clips.
pub fn encode_args(e: &Encode) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if e.copy {
        args.extend(["-c", "copy", "-avoid_negative_ts", "make_zero"].map(String::from));
        return args;
    }
    let mut filters = Vec::new();
    if let (None, Some(n)) = (e.short_side, e.max_short_side) {
        filters.push(format!("scale=w='if(gt(iw,ih),-2,min(iw,{n}))':h='if(gt(iw,ih),min(ih,{n}),-2)'"));
    }
    if let Some(n) = e.short_side {
        // Scale so the shorter side is n; -2 keeps the other side even, as H.264 needs.
        filters.push(format!("scale=w='if(gt(iw,ih),-2,{n})':h='if(gt(iw,ih),{n},-2)'"));
    }
    if let Some(fps) = e.fps {
        filters.push(format!("fps={fps}"));
    }
    if !filters.is_empty() {
        args.push("-vf".into());
        args.push(filters.join(","));
    }
    args.extend(["-c:v", "libx264", "-preset"].map(String::from));
    args.push(if e.preset.is_empty() { "veryfast".into() } else { e.preset.clone() });
    args.push("-crf".into());
    args.push(if e.crf == 0 { "23".into() } else { e.crf.to_string() });
    // One thread each: encodes run side by side, and single-threaded x264 is deterministic.
    args.extend(["-pix_fmt", "yuv420p", "-threads", "1", "-filter_threads", "1"].map(String::from));
    if e.no_audio {
        args.push("-an".into());
    } else {
        args.extend(["-c:a", "aac", "-b:a", "128k", "-ac", "2"].map(String::from));
    }
    // `global_header`: the parameter sets go into the stream's configuration (MP4's `avcC`), not into the
    // first packet. The MP4 muxer asks for it when it is the output; the `tee` muxer does not, and must get
    // the same bitstream.
    args.extend(
        ["-fflags", "+bitexact", "-flags:v", "+bitexact+global_header", "-flags:a", "+bitexact"].map(String::from),
    );
    args
}

pub(super) async fn run(cmd: &mut Command, stop: &mut StopSignal) -> Result<process::Output, Failure> {
    process::run(cmd, INSTALL_HINT, stop).await.map_err(|e| match e {
        process::RunError::Cancelled { .. } => Failure::new(Category::Other, "cancelled", ""),
        other => Failure::new(Category::Environment, other.to_string(), ""),
    })
}

/// Seconds as ffmpeg reads them, exact to the millisecond.
pub fn secs(t: f64) -> String {
    format!("{:.3}", t.max(0.0))
}

/// Seconds to the microsecond, for audio: a sample at 48 kHz lasts 21 µs.
pub fn precise_secs(t: f64) -> String {
    format!("{:.6}", t.max(0.0))
}

/// `30000/1001` or `15` as frames per second; `0/0` is unknown.
pub(super) fn parse_rate(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/').unwrap_or((r, "1"));
    let v = n.trim().parse::<f64>().ok()? / d.trim().parse::<f64>().ok()?;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// The frames a frame-accurate cut keeps of a constant-rate stream, as `first..end` frame numbers: those
/// whose time `t = n / fps` satisfies `start <= t < end` (the rule of ffmpeg's `trim` filter and of the
/// reference Kinetics downloader's `-ss start -t duration` cut). A window that holds no frame time (shorter
/// than a frame, between two frames) keeps the one frame on screen at `start`. `None` when the rate is
/// unknown. Times are compared a millionth of a frame loose, so a time written to the millisecond that is
/// a frame's time (3.2 s at 15 fps) counts as that frame's.
pub fn frames_in_window(start: f64, end: f64, fps: f64) -> Option<std::ops::Range<u64>> {
    if !(fps.is_finite() && fps > 0.0 && start.is_finite() && end.is_finite()) {
        return None;
    }
    let at = |t: f64| (t.max(0.0) * fps - 1e-6).ceil().max(0.0) as u64;
    let (first, last) = (at(start), at(end));
    if last > first {
        return Some(first..last);
    }
    let on_screen = (start.max(0.0) * fps + 1e-6).floor() as u64;
    Some(on_screen..on_screen + 1)
}

/// Where to seek and how long to cut (both whole milliseconds, as `secs` writes them) so that a cut keeps
/// exactly the frames `frames`: each bound sits one millisecond before its frame's time rounded to the
/// millisecond, so the frame is in whether its container keeps its time exactly or rounded to the
/// millisecond (Matroska), and the frame before it is out (a frame lasts far more than 2 ms). The first
/// frame lands a millisecond or so after the seek point, which the encoder's time base (one frame) rounds to
/// zero: no frame is repeated.
pub fn cut_points(frames: &std::ops::Range<u64>, fps: f64) -> (f64, f64) {
    let ms = |n: u64| ((n as f64 * 1000.0 / fps).round() as i64 - 1).max(0);
    let (from, to) = (ms(frames.start), ms(frames.end));
    (from as f64 / 1000.0, (to - from) as f64 / 1000.0)
}

/// What [`Ffmpeg::check_clip`] learns about a clip that decoded without a complaint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipCheck {
    pub has_video: bool,
    pub has_audio: bool,
    /// The container's duration (`Duration:` of the input's description), when it has one.
    pub duration: Option<f64>,
}

/// ffmpeg's `-loglevel repeat+level+info` output of a decode, taken apart.
#[derive(Debug, Default, PartialEq)]
pub struct ClipLog {
    pub check: ClipCheck,
    /// Lines logged as error, fatal or panic, and lines without a level (never expected: counted against
    /// the clip rather than ignored), without their tags.
    pub complaints: Vec<String>,
}

/// Reads a decode's tagged log: `[info]   Duration: ...` and `[info]   Stream #0:0...: Video: ...` of the
/// input's description (up to `Stream mapping:` or `Output #0`), and every complaint.
pub fn read_clip_log(stderr: &str) -> ClipLog {
    let mut log = ClipLog::default();
    let mut input = false;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        // `[level] text`, after up to two contexts (`[parent @ 0x...] [ctx @ 0x...] `).
        let mut rest = line;
        while let Some((ctx, after)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            if !ctx.contains(" @ ") {
                break;
            }
            rest = after;
        }
        let Some((level, text)) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            log.complaints.push(line.trim().to_string());
            continue;
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        match level {
            "error" | "fatal" | "panic" => log.complaints.push(text.trim().to_string()),
            "info" => {
                let t = text.trim_start();
                if t.starts_with("Input #0") {
                    input = true;
                } else if t.starts_with("Stream mapping:") || t.starts_with("Output #") {
                    input = false;
                } else if input && t.starts_with("Duration:") {
                    log.check.duration = parse_duration_line(t);
                } else if input && t.starts_with("Stream #0:") {
                    log.check.has_video |= t.contains(": Video: ");
                    log.check.has_audio |= t.contains(": Audio: ");
                }
            }
            "warning" | "verbose" | "debug" | "trace" => {}
            _ => log.complaints.push(line.trim().to_string()),
        }
    }
    log
}

/// The first input's `Duration: HH:MM:SS.ss` line, if ffmpeg knew it.
pub fn parse_duration_line(stderr: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.trim_start().starts_with("Duration:"))?;
    let value = line.trim_start().strip_prefix("Duration:")?.trim().split(',').next()?.trim();
    let mut parts = value.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let total = h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    total.is_finite().then_some(total)
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawFormat {
    duration: Option<String>,
}

pub fn parse_probe(json: &[u8]) -> Result<Probe, serde_json::Error> {
    let raw: RawProbe = serde_json::from_slice(json)?;
    let video = raw.streams.iter().find(|s| s.codec_type.as_deref() == Some("video"));
    Ok(Probe {
        has_video: video.is_some(),
        has_audio: raw.streams.iter().any(|s| s.codec_type.as_deref() == Some("audio")),
        duration: raw.format.and_then(|f| f.duration).and_then(|d| d.parse().ok()),
        width: video.and_then(|v| v.width),
        height: video.and_then(|v| v.height),
        vcodec: video.and_then(|v| v.codec_name.clone()),
        fps: video.and_then(|v| [&v.avg_frame_rate, &v.r_frame_rate].into_iter().flatten().find_map(|r| parse_rate(r))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_line_table() {
        let cases = [
            ("  Duration: 00:00:40.00, start: 0.000000, bitrate: 95 kb/s", Some(40.0)),
            ("  Duration: 01:02:03.50, start: 0.000000", Some(3723.5)),
            ("  Duration: N/A, start: 0.000000, bitrate: N/A", None),
            ("no such line", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration_line(text), want, "{text}");
        }
    }

    #[test]
    fn frames_in_window_table() {
        let ntsc = 30000.0 / 1001.0;
        // (start, end, fps, first frame, frames): windows as the datasets publish them.
        let cases: [(f64, f64, f64, u64, u64); 16] = [
            // Kinetics: whole seconds; on 29.97 fps videos they fall between frames.
            (1.0, 11.0, 30.0, 30, 300),
            (4.0, 14.0, ntsc, 120, 300), // frame 119 is at 3.9706 s, frame 120 at 4.0040 s
            (136.0, 146.0, ntsc, 4076, 300), // frame 4075 at 135.9692 s, frame 4076 at 136.0025 s
            (15.0, 25.0, 25.0, 375, 250),
            // Kinetics-style sub-second rows, at the test source's 15 fps.
            (21.47, 31.47, 15.0, 323, 150), // frame 322 (21.4667 s) starts before the window
            (21.49, 31.49, 15.0, 323, 150),
            (17.4, 27.4, 15.0, 261, 150), // a frame's time, written to the millisecond
            // ActivityNet / HACS Segments: floats with two or more decimals.
            (40.15, 44.9, 15.0, 603, 71), // 602.25 .. 673.5 in frames: 603..=673
            (3.2, 9.73, 15.0, 48, 98),    // 48 .. 145.95: 48..=145
            (21.0, 27.5, 15.0, 315, 98),  // 315 .. 412.5: 315..=412
            (0.01, 123.42364, ntsc, 1, 3699),
            (0.0, 0.5, 15.0, 0, 8),
            // VGGSound and AudioSet: 10 s from a whole or .5 start.
            (12.5, 22.5, 15.0, 188, 150), // 187.5 .. 337.5: 188..=337
            (30.0, 40.0, 24.0, 720, 240),
            // Shorter than a frame: the frame at start, or the one on screen when no frame time is inside.
            (40.15, 40.19, 15.0, 602, 1),
            (2.0, 2.01, 15.0, 30, 1),
        ];
        for (start, end, fps, first, n) in cases {
            let got = frames_in_window(start, end, fps).unwrap();
            assert_eq!((got.start, got.end - got.start), (first, n), "{start}..{end} at {fps}");
            // The rule itself, frame by frame, away from the one-frame fallback.
            if n > 1 {
                let inside = (0..first + n + 10).filter(|&k| start <= k as f64 / fps + 1e-9 && (k as f64) / fps < end);
                assert_eq!(inside.collect::<Vec<_>>(), got.clone().collect::<Vec<_>>(), "{start}..{end} at {fps}");
            }
        }
        assert_eq!(frames_in_window(3.0, 13.0, 0.0), None);
        assert_eq!(frames_in_window(3.0, 13.0, f64::NAN), None);
        assert_eq!(parse_rate("30000/1001").map(|r| (r * 1000.0).round()), Some(29970.0));
        assert_eq!(parse_rate("0/0"), None);
    }

    #[test]
    fn cut_points_select_exactly_the_window_frames() {
        let ntsc = 30000.0 / 1001.0;
        // (frames, fps, seek, duration) in whole milliseconds.
        let cases = [
            (603..674, 15.0, 40.199, 4.733),
            (323..473, 15.0, 21.532, 10.0),
            (0..8, 15.0, 0.0, 0.532),
            (120..420, ntsc, 4.003, 10.01),
        ];
        for (frames, fps, seek, duration) in cases {
            let (s, d) = cut_points(&frames, fps);
            assert!((s - seek).abs() < 1e-9 && (d - duration).abs() < 1e-9, "{frames:?} at {fps}: {s} {d}");
            // Every frame in the range is at or after the seek point and before its end, whether the
            // container keeps its time exactly or rounded to the millisecond; its neighbours are outside.
            for k in frames.start.saturating_sub(2)..frames.end + 2 {
                for t in [k as f64 / fps, (k as f64 * 1000.0 / fps).round() / 1000.0] {
                    let kept = t >= s && t < s + d;
                    assert_eq!(kept, frames.contains(&k), "frame {k} at {t} for {frames:?} at {fps}");
                }
            }
        }
    }

    #[test]
    fn clip_log_table() {
        // Real `ffmpeg -loglevel repeat+level+info -i clip.mp4 -f null -` output (ffmpeg 5.1), shortened.
        let good = "[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'clip.mp4':
[info]   Metadata:
[info]     major_brand     : isom
[info]   Duration: 00:00:10.00, start: 0.000000, bitrate: 778 kb/s
[info]   Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 640x360, 30 fps
[info]     Metadata:
[info]       handler_name    : VideoHandler
[info]   Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s (default)
[info] Stream mapping:
[info]   Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
[info] Output #0, null, to 'pipe:':
[info]   Duration: 00:00:99.00
[info]   Stream #0:0(und): Video: wrapped_avframe, yuv420p(progressive), 640x360, q=2-31, 200 kb/s, 30 fps
[info] frame=  300 fps=0.0 q=-0.0 Lsize=N/A time=00:00:10.00 bitrate=N/A speed=20.2x
[info] video:138kB audio:1724kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
";
        let log = read_clip_log(good);
        assert_eq!(log.check, ClipCheck { has_video: true, has_audio: true, duration: Some(10.0) });
        assert!(log.complaints.is_empty(), "{:?}", log.complaints);

        let truncated = "[info]   Duration: 00:00:09.97, start: 0.000000, bitrate: 389 kb/s
[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55f0d4265940] [warning] Packet corrupt (stream = 0, dts = 74752).
[NULL @ 0x55f0d4266e40] [error] Invalid NAL unit size (2916 > 1277).
[warning] trunc.mp4: corrupt input packet in stream 0
[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55f0d4265940] [error] stream 1, offset 0x77266: partial file
";
        let log = read_clip_log(truncated);
        assert_eq!(log.complaints, ["Invalid NAL unit size (2916 > 1277).", "stream 1, offset 0x77266: partial file"]);
        assert_eq!(log.check.duration, None, "no Input #0 line: not the input's description");

        let flipped = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55f0] [aac @ 0x563743756880] [error] invalid band type
[error] Error while decoding stream #0:1: Invalid data found when processing input
[h264 @ 0x5637437ca500] [info] concealing 126 DC, 126 AC, 126 MV errors in P frame
";
        assert_eq!(
            read_clip_log(flipped).complaints,
            ["invalid band type", "Error while decoding stream #0:1: Invalid data found when processing input"]
        );
        // Audio only; a fatal line; a line without a level counts against the clip.
        let odd = "[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'a.m4a':
[info]   Duration: 00:00:05.00, start: 0.000000, bitrate: 130 kb/s
[info]   Stream #0:0[0x1](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s
[fatal] clip.mp4: Invalid data found when processing input
something unexpected
";
        let log = read_clip_log(odd);
        assert_eq!(log.check, ClipCheck { has_video: false, has_audio: true, duration: Some(5.0) });
        assert_eq!(log.complaints, ["clip.mp4: Invalid data found when processing input", "something unexpected"]);
    }

    #[test]
    fn probe_json_is_read() {
        let json = br#"{"streams":[{"codec_type":"video","codec_name":"h264","width":320,"height":180},
            {"codec_type":"audio","codec_name":"aac"}],"format":{"duration":"10.000000"}}"#;
        let p = parse_probe(json).unwrap();
        assert!(p.has_video && p.has_audio);
        assert_eq!(p.duration, Some(10.0));
        assert_eq!((p.width, p.height), (Some(320), Some(180)));
    }

    #[test]
    fn encode_args_follow_options() {
        let e = Encode { short_side: Some(256), fps: Some(30.0), no_audio: true, ..Default::default() };
        let args = encode_args(&e).join(" ");
        assert!(args.contains("scale=w='if(gt(iw,ih),-2,256)'"), "{args}");
        assert!(args.contains("fps=30"));
        assert!(args.contains("-an"));
        assert!(args.contains("-crf 23") && args.contains("-preset veryfast"));
        let capped = encode_args(&Encode { max_short_side: Some(360), ..Default::default() }).join(" ");
        assert!(capped.contains("min(ih,360)"), "{capped}");
        let copy = encode_args(&Encode { copy: true, ..Default::default() }).join(" ");
        assert!(copy.starts_with("-c copy"));
        // The parameter sets in the stream's configuration, as the MP4 muxer asks, also through `tee`.
        assert!(capped.contains("-flags:v +bitexact+global_header"), "{capped}");
    }

    /// `framehash` of the same encode from both sides, as ffmpeg 5.1 prints them: the encoder's output
    /// through `tee` (time base 1/30, x264's quality side data on each video packet) and the MP4 read back
    /// (time base 1/15360, the audio's skip side data, `#software`).
    const WRITTEN: &str = "\
#format: frame checksums
#version: 2
#hash: SHA256
#extradata 0,                              38, ffa06d51ab4c354b000639974e253850cde6e10f6eb34daa9820c2ba0b2f11cf
#extradata 1,                               5, 03823224971f2d9dbb76d83a08f766351447f08b3739cd2fc36182f306ae3e02
#tb 0: 1/30
#media_type 0: video
#codec_id 0: h264
#tb 1: 1/44100
#stream#, dts,        pts, duration,     size, hash
0,         -2,          0,        1,     7247, ec92465f19a39fc5ad90a0ca0c9a659bb0aea76415749d00014456eaaba3878f, S=1,        8, 62c9ed30259bf218b0aadf1a9aeba5af6094cc62d9892d8c7765029d0fcc89d2
0,         -1,          3,        1,     3883, ee02510d9cab81865a206523b8439d33bc3b6662dab1d93a5c847925de432721, S=1,        8, a7b1c03e3ad8903132b07bc9274a43a0c0d6eae22965cf8efdb2aee5ae926fa6
1,      -1024,      -1024,     1024,      309, 7f571c0044b236b6977e3319c22dea74bca5fdc28b944418b08ca5d62d742913
0,          0,          1,        1,     2077, b0f1ecf793a8e290c68d369f828f34776874a5c17f28b9f347c0244771e1f9e3, S=1,        8, 3731bb681576c14e0c2cb44cc4700c3ffefaa7b3eac53d03ef1e5be8e735033b
1,          0,          0,     1024,      397, 05c7bc5b683dbb5899c04158208972f5f4fdf7a14c0da35a04fd9a01706bf085
";
    const READ: &str = "\
#format: frame checksums
#version: 2
#hash: SHA256
#extradata 0,                              38, ffa06d51ab4c354b000639974e253850cde6e10f6eb34daa9820c2ba0b2f11cf
#extradata 1,                               5, 03823224971f2d9dbb76d83a08f766351447f08b3739cd2fc36182f306ae3e02
#software: Lavf59.27.100
#tb 0: 1/15360
#media_type 0: video
#stream#, dts,        pts, duration,     size, hash
0,      -1024,          0,      512,     7247, ec92465f19a39fc5ad90a0ca0c9a659bb0aea76415749d00014456eaaba3878f
1,      -1024,      -1024,     1024,      309, 7f571c0044b236b6977e3319c22dea74bca5fdc28b944418b08ca5d62d742913, S=1,       10, 6ee9cd8afbb30ce00ef4ceec9536336cbde87cffeab39a283bc32a19d4ec2afa
0,       -512,       1536,      512,     3883, ee02510d9cab81865a206523b8439d33bc3b6662dab1d93a5c847925de432721
0,          0,        512,      512,     2077, b0f1ecf793a8e290c68d369f828f34776874a5c17f28b9f347c0244771e1f9e3
1,          0,          0,     1039,      397, 05c7bc5b683dbb5899c04158208972f5f4fdf7a14c0da35a04fd9a01706bf085
";

    #[test]
    fn both_sides_filter_the_units_alike() {
        assert!(PACKETS_CANONICAL.ends_with(&format!(",{PACKETS_UNITS}")), "{PACKETS_CANONICAL}");
    }

    #[test]
    fn packets_compare_what_was_written_with_what_is_read_whatever_the_container_and_interleaving() {
        let (written, read) = (Packets::parse(WRITTEN), Packets::parse(READ));
        assert_eq!((written.len(), written.config.len()), (5, 2));
        assert_eq!(written.difference(&read), None, "time bases, side data and interleaving are not the packets");
        assert_eq!(written, read);

        // (what is changed in the file read back, what the check says)
        let cases: [(&str, &str, &str); 5] = [
            ("     3883, ee02", "     3883, ff02", "stream 0's packet 2 of 3 differs (3883 bytes, sha256 ee02510d9cab... written; 3883 bytes, sha256 ff02510d9cab... read)"),
            ("     2077,", "     2076,", "stream 0's packet 3 of 3 differs (2077 bytes"),
            ("1,          0,          0,     1039,      397, 05c7bc5b683dbb5899c04158208972f5f4fdf7a14c0da35a04fd9a01706bf085\n", "", "stream 1: 2 packets written, 1 read back"),
            ("#extradata 1,", "#extradata 2,", "the codec configuration differs (written for streams [0, 1], read for [0, 2])"),
            ("38, ffa0", "38, 0fa0", "the codec configuration differs"),
        ];
        for (from, to, says) in cases {
            assert!(READ.contains(from), "{from}");
            let damaged = Packets::parse(&READ.replacen(from, to, 1));
            let got = written.difference(&damaged).unwrap_or_default();
            assert!(got.starts_with(says), "{from} -> {to}: {got}");
        }
        let nothing = Packets::parse("");
        assert!(nothing.is_empty());
        assert_eq!(
            written.difference(&nothing).unwrap(),
            "the codec configuration differs (written for streams [0, 1], read for [])"
        );
        let no_config = Packets { config: written.config.clone(), packets: vec![] };
        assert_eq!(written.difference(&no_config).unwrap(), "stream 0: 3 packets written, 0 read back");
    }

    #[test]
    fn a_cut_that_complains_met_a_damaged_source() {
        // ffmpeg 5.1 at `-loglevel error`: nothing at all from a sound source; from a damaged one, its decoders'
        // complaints, which name their contexts by address.
        assert!(undamaged_source("").is_ok());
        assert!(undamaged_source("\n  \n").is_ok());
        let cases = [
            (
                "[h264 @ 0x55d4c3a0b2c0] error while decoding MB 23 11, bytestream -7\n\
                 [h264 @ 0x55d4c3a0b2c0] concealing 312 DC, 312 AC, 312 MV errors in P frame\n",
                "[h264] error while decoding MB 23 11, bytestream -7",
            ),
            (
                "[aac @ 0x5581c0e1e2c0] Prediction is not allowed in AAC-LC.\n\
                 Error while decoding stream #0:1: Invalid data found when processing input\n",
                "[aac] Prediction is not allowed in AAC-LC.",
            ),
            ("[mp4 @ 0x1] [h264 @ 0xabc] no frame!\n", "[mp4] [h264] no frame!"),
        ];
        // A cut of an open GOP's window (ffmpeg 5.1, x264 `open-gop=1`): the frames before its first
        // keyframe, decoded after it, lack a reference; they are not in the clip.
        assert!(undamaged_source("[h264 @ 0x5640066a6e40] mmco: unref short failure\n").is_ok());
        let both = "[h264 @ 0x1] mmco: unref short failure\n[h264 @ 0x1] error while decoding MB 3 4, bytestream -2\n";
        assert_eq!(
            undamaged_source(both).unwrap_err().message,
            "the source is damaged: decoding it, ffmpeg said \"[h264] error while decoding MB 3 4, bytestream -2\""
        );
        for (stderr, said) in cases {
            let failure = undamaged_source(stderr).expect_err(stderr);
            assert_eq!(failure.category, Category::Corrupt);
            assert_eq!(failure.message, format!("the source is damaged: decoding it, ffmpeg said \"{said}\""));
        }
    }

    #[test]
    fn the_tee_names_the_clip_whatever_its_path_holds() {
        let spec = |p: &str| tee_outputs(Path::new(p)).into_string().unwrap();
        let tail = "|[f=framehash:bsfs/v=filter_units=remove_types=7-8]pipe:1";
        // (path, as the tee's list writes it)
        let cases = [
            ("/out/.kinetics-dl/tmp/clip-1-00ab/clip.mp4", "/out/.kinetics-dl/tmp/clip-1-00ab/clip.mp4"),
            ("/a|b/[c]/d's\\e:f.mp4", "/a\\|b/\\[c\\]/d\\'s\\\\e:f.mp4"),
            ("[f=null]x.mp4", "\\[f=null\\]x.mp4"),
        ];
        for (path, escaped) in cases {
            assert_eq!(spec(path), format!("[f=mp4:movflags=+faststart]{escaped}{tail}"), "{path}");
        }
    }
}
