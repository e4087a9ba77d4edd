//! Encodes the synthetic, self-describing test videos with ffmpeg and caches them on disk.
//!
//! Each frame carries its own global frame number in a strip across the top: 20 equal-width blocks,
//! block `i` (left to right) bright when bit `i` of the number is set. Below it, `testsrc2` keeps the
//! bitrate realistic. The sound track names its seconds too (see [`crate::tone`]). Several test processes
//! may ask for the same file at once, so encoding happens under a file lock into a temporary name that is
//! renamed into place.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};

use crate::config::Profile;

/// Bump when the encoding changes, so caches made by older versions are not reused.
pub const FORMAT_VERSION: u32 = 2;

/// Number of bit blocks in the frame-number strip.
pub const STRIP_BITS: u32 = 20;

/// Luma of a set bit and of a clear bit (video range).
pub const BRIGHT: u8 = 235;
pub const DARK: u8 = 16;

/// Height of the frame-number strip: a sixth of the frame, kept even for 4:2:0 chroma.
pub fn strip_height(height: u32) -> u32 {
    (height / 6).max(2) & !1
}

/// The cache file name: every profile parameter that shapes the file, plus the format version. Options
/// left at their defaults add nothing, so caches made before they existed stay valid.
pub fn cache_file_name(p: &Profile) -> String {
    let mut extra = String::new();
    if p.bframes > 0 {
        extra += &format!("-bf{}", p.bframes);
    }
    if p.irregular_keyframes {
        extra += "-irregular";
    }
    if p.tag > 0 {
        extra += &format!("-tag{}", p.tag);
    }
    if p.open_gop {
        extra += "-opengop";
    }
    format!(
        "testsrc-v{FORMAT_VERSION}-{}x{}-{}fps-{}s-gop{}s-{}k-{}{extra}.mp4",
        p.width,
        p.height,
        p.fps,
        p.duration_secs,
        p.gop_secs,
        p.video_kbps,
        if p.audio { "aac" } else { "noaudio" }
    )
}

/// Returns the cached video for `profile`, encoding it first if no process has done so yet.
pub fn ensure_video(cache_dir: &Path, profile: &Profile) -> anyhow::Result<PathBuf> {
    ensure_cached(cache_dir, &cache_file_name(profile), |tmp| run_ffmpeg(&ffmpeg_args(profile, tmp), tmp))
}

/// Returns `cache_dir/name`, first having `make` write it (to the temporary path it is given) if no
/// process has done so yet. Shared by everything this crate caches.
pub(crate) fn ensure_cached(
    cache_dir: &Path,
    name: &str,
    make: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let path = cache_dir.join(name);
    if is_ready(&path) {
        return Ok(path);
    }
    fs::create_dir_all(cache_dir).with_context(|| format!("failed to create cache dir {}", cache_dir.display()))?;
    // The lock only avoids making the same file twice; correctness comes from the atomic rename.
    let lock_path = cache_dir.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).with_context(|| format!("failed to create {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("failed to lock {}", lock_path.display()))?;
    if is_ready(&path) {
        return Ok(path);
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = cache_dir.join(format!("{name}.tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = make(&tmp)
        .and_then(|()| fs::rename(&tmp, &path).with_context(|| format!("failed to move {} into place", tmp.display())));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

fn is_ready(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// The ffmpeg filter graph drawing background, strip and (optionally) the tone naming each second.
pub fn filter_graph(p: &Profile) -> String {
    let (w, h, fps, d) = (p.width, p.height, p.fps, p.duration_secs);
    let strip = strip_height(h);
    let span = u32::from(BRIGHT - DARK);
    // geq's N is the frame number; bit i of N lights block floor(X * 20 / W).
    let bits = |number: &str| format!("{DARK}+{span}*mod(floor({number}/pow(2,floor(X*{STRIP_BITS}/W))),2)");
    let strip_of = |number: &str, label: &str| {
        format!(
            "color=c=black:size={w}x{strip}:rate={fps}:duration={d},format=gray,geq=lum='{}',format=yuv420p[{label}]",
            bits(number)
        )
    };
    let mut graph = format!("testsrc2=size={w}x{h}:rate={fps}:duration={d}[bg];{}", strip_of("N", "strip"));
    if p.tag > 0 {
        // The tag strip sits right under the frame strip and carries the same number on every frame.
        graph += &format!(
            ";{};[bg][strip]overlay=0:0:shortest=1[top];[top][tag]overlay=0:{strip}:shortest=1,format=yuv420p[v]",
            strip_of(&p.tag.to_string(), "tag")
        );
    } else {
        graph += ";[bg][strip]overlay=0:0:shortest=1,format=yuv420p[v]";
    }
    if p.audio {
        graph
            .push_str(&format!(";aevalsrc=exprs='{}':sample_rate=44100:duration={d}[a]", crate::tone::aevalsrc_expr()));
    }
    graph
}

/// The full ffmpeg command line (without the program name) writing `out` as mp4.
pub fn ffmpeg_args(p: &Profile, out: &Path) -> Vec<String> {
    let (gop, kbps) = (p.gop_frames(), p.video_kbps);
    let mut flags = String::from("-nostdin -hide_banner -loglevel error -y -map [v]");
    if p.audio {
        flags += " -map [a] -c:a aac -b:a 64k";
    }
    flags += &format!(" -c:v libx264 -preset veryfast -pix_fmt yuv420p -bf {}", p.bframes);
    if p.open_gop {
        flags += " -x264-params open-gop=1";
    }
    let mut forced = None;
    if p.irregular_keyframes {
        // Forced keyframes at irregular times, x264's scene-cut detection left on, at most 10 s apart.
        flags += &format!(" -g {}", p.fps * 10);
        let times: Vec<String> = p.irregular_keyframe_secs().iter().map(|t| format!("{t}")).collect();
        forced = Some(times.join(","));
    } else {
        // A fixed GOP (no scene-cut keyframes) so clip boundaries relative to keyframes are predictable.
        flags += &format!(" -sc_threshold 0 -g {gop} -keyint_min {gop}");
    }
    flags += &format!(" -b:v {kbps}k -maxrate {kbps}k -bufsize {}k", kbps * 2);
    flags += &format!(" -t {} -movflags +faststart -f mp4", p.duration_secs);
    let mut args = vec!["-filter_complex".to_owned(), filter_graph(p)];
    args.extend(flags.split_whitespace().map(str::to_owned));
    if let Some(times) = forced {
        args.extend(["-force_key_frames".to_owned(), times]);
    }
    args.push(out.to_string_lossy().into_owned());
    args
}

/// Runs ffmpeg with `args`, which write `out`; on failure the error carries the end of its stderr.
pub(crate) fn run_ffmpeg(args: &[String], out: &Path) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => anyhow::anyhow!("ffmpeg not found on PATH; install ffmpeg"),
            _ => anyhow::Error::new(e).context("failed to run ffmpeg"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("ffmpeg failed to write {} ({}): {}", out.display(), output.status, tail.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_name_changes_with_every_parameter() {
        let base = Profile::default();
        let variants = [
            Profile { duration_secs: 30.0, ..base.clone() },
            Profile { width: 640, ..base.clone() },
            Profile { height: 360, ..base.clone() },
            Profile { fps: 30, ..base.clone() },
            Profile { gop_secs: 1.0, ..base.clone() },
            Profile { audio: false, ..base.clone() },
            Profile { video_kbps: 800, ..base.clone() },
            Profile { bframes: 2, ..base.clone() },
            Profile { irregular_keyframes: true, ..base.clone() },
            Profile { tag: 7, ..base.clone() },
        ];
        let base_name = cache_file_name(&base);
        assert_eq!(base_name, "testsrc-v2-320x180-15fps-300s-gop2s-500k-aac.mp4");
        for v in &variants {
            assert_ne!(cache_file_name(v), base_name, "{v:?}");
        }
    }

    #[test]
    fn strip_heights_are_even() {
        for (h, want) in [(180, 30), (360, 60), (240, 40), (100, 16), (24, 4), (8, 2)] {
            assert_eq!(strip_height(h), want, "{h}");
        }
    }

    #[test]
    fn command_forces_the_keyframe_cadence() {
        let p = Profile { fps: 25, gop_secs: 2.0, audio: false, ..Profile::default() };
        let args = ffmpeg_args(&p, Path::new("/tmp/x.mp4"));
        let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].as_str());
        assert_eq!(after("-g"), Some("50"));
        assert_eq!(after("-keyint_min"), Some("50"));
        assert_eq!(after("-sc_threshold"), Some("0"));
        assert!(!args.iter().any(|a| a == "[a]"), "no audio map without audio");
        assert_eq!(args.last().map(String::as_str), Some("/tmp/x.mp4"));
        assert_eq!(after("-bf"), Some("0"));
        assert_eq!(after("-force_key_frames"), None);
    }

    #[test]
    fn irregular_profiles_force_irregular_keyframes_and_use_b_frames() {
        let p = Profile { fps: 15, duration_secs: 30.0, bframes: 2, irregular_keyframes: true, ..Profile::default() };
        let args = ffmpeg_args(&p, Path::new("/tmp/x.mp4"));
        let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].as_str());
        assert_eq!(after("-bf"), Some("2"));
        assert_eq!(after("-g"), Some("150"));
        assert_eq!(after("-sc_threshold"), None, "scene cuts stay on");
        assert_eq!(after("-force_key_frames"), Some("0,4.6,5.9,13.8,17,26.6,27.2"));
        assert_eq!(cache_file_name(&p), "testsrc-v2-320x180-15fps-30s-gop2s-500k-aac-bf2-irregular.mp4");
    }
}
