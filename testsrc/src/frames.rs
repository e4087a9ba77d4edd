//! Reads frame numbers back from the strip: on raw gray buffers, and on clip files through ffmpeg.
//!
//! Sampling is proportional (block centres at `(i + 0.5) * W / 20`, strip centre at `H / 12`), so the
//! numbers survive rescaling, re-encoding and frame-rate changes done downstream.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context};

use crate::video::STRIP_BITS;

/// Block averages in this band are neither clearly set nor clearly clear.
const AMBIGUOUS: std::ops::Range<u32> = 80..176;

/// Decodes the frame number of one gray (8-bit luma) frame, or `None` when the strip is not clean
/// (wrong geometry, a blend of two frames, heavy artifacts).
pub fn decode_frame_number(gray: &[u8], width: usize, height: usize) -> Option<u32> {
    decode_strip(gray, width, height, height / 12)
}

/// Decodes the tag of one gray frame of a tagged profile (see `Profile::tag`): the strip under the
/// frame-number strip, centred at `H / 4`. `None` when unreadable; meaningless on untagged videos.
pub fn decode_tag(gray: &[u8], width: usize, height: usize) -> Option<u32> {
    decode_strip(gray, width, height, height / 4)
}

/// Decodes the 20-bit strip whose vertical centre is row `cy`.
fn decode_strip(gray: &[u8], width: usize, height: usize, cy: usize) -> Option<u32> {
    let bits = STRIP_BITS as usize;
    if width < bits || height < 12 || gray.len() < width * height || cy >= height {
        return None;
    }
    let block = width as f64 / bits as f64;
    // Average a box well inside each block so one noisy pixel cannot flip a bit.
    let ry = height / 48;
    let rx = ((block / 4.0) as usize).min(8);
    let mut n = 0u32;
    for i in 0..bits {
        let cx = ((i as f64 + 0.5) * block) as usize;
        let (mut sum, mut count) = (0u32, 0u32);
        for y in cy - ry.min(cy)..=(cy + ry).min(height - 1) {
            for x in cx - rx.min(cx)..=(cx + rx).min(width - 1) {
                sum += u32::from(gray[y * width + x]);
                count += 1;
            }
        }
        let mean = sum / count;
        if AMBIGUOUS.contains(&mean) {
            return None;
        }
        if mean >= 128 {
            n |= 1 << i;
        }
    }
    Some(n)
}

/// Width and height of the first video stream, from ffprobe.
pub fn probe_size(path: &Path) -> anyhow::Result<(usize, usize)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error(e, "ffprobe"))?;
    ensure!(
        output.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or_default().trim();
    let (w, h) = line.split_once(',').with_context(|| format!("no video stream in {}", path.display()))?;
    Ok((w.trim().parse()?, h.trim().parse()?))
}

/// Frame numbers of every decoded frame of a clip, in order (`None` where the strip is unreadable).
pub fn clip_frame_sequence(path: &Path) -> anyhow::Result<Vec<Option<u32>>> {
    let mut numbers = Vec::new();
    decode_gray_frames(path, &[], &mut |frame, w, h| {
        numbers.push(decode_frame_number(frame, w, h));
        true
    })?;
    Ok(numbers)
}

/// The tag of every decoded frame of a clip of a tagged profile, in order (`None` where unreadable).
pub fn clip_tags(path: &Path) -> anyhow::Result<Vec<Option<u32>>> {
    let mut tags = Vec::new();
    decode_gray_frames(path, &[], &mut |frame, w, h| {
        tags.push(decode_tag(frame, w, h));
        true
    })?;
    Ok(tags)
}

/// Frame numbers of the first and the last decoded frame of a clip.
pub fn clip_frame_numbers(path: &Path) -> anyhow::Result<(u32, u32)> {
    let (mut first, mut last, mut count) = (None, None, 0usize);
    decode_gray_frames(path, &[], &mut |frame, w, h| {
        let n = decode_frame_number(frame, w, h);
        if count == 0 {
            first = Some(n);
        }
        last = Some(n);
        count += 1;
        true
    })?;
    match (first, last) {
        (Some(Some(first)), Some(Some(last))) => Ok((first, last)),
        (None, _) => bail!("{} has no video frames", path.display()),
        _ => bail!("the frame-number strip of the first or last frame of {} is unreadable", path.display()),
    }
}

/// The frame number shown at `secs` (accurate input seek), from a file or an `http://` URL.
pub fn frame_number_at(input: &Path, secs: f64) -> anyhow::Result<u32> {
    let mut found = None;
    let ss = format!("{secs:.6}");
    decode_gray_frames(input, &["-ss", &ss], &mut |frame, w, h| {
        found = Some(decode_frame_number(frame, w, h));
        false
    })?;
    match found {
        Some(Some(n)) => Ok(n),
        Some(None) => bail!("the strip at {secs} s of {} is unreadable", input.display()),
        None => bail!("no frame at {secs} s in {}", input.display()),
    }
}

/// Runs ffmpeg to decode `input` to raw gray frames, calling `on_frame` for each until it returns false.
fn decode_gray_frames(
    input: &Path,
    input_opts: &[&str],
    on_frame: &mut dyn FnMut(&[u8], usize, usize) -> bool,
) -> anyhow::Result<()> {
    let (w, h) = probe_size(input)?;
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(input_opts)
        .arg("-i")
        .arg(input)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(e, "ffmpeg"))?;
    // Drain stderr on the side so a chatty ffmpeg cannot block on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let drain = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut frame = vec![0u8; w * h];
    let mut stopped_early = false;
    while read_full(&mut stdout, &mut frame)? {
        if !on_frame(&frame, w, h) {
            stopped_early = true;
            break;
        }
    }
    if stopped_early {
        let _ = child.kill();
    }
    drop(stdout);
    let status = child.wait()?;
    let stderr = drain.join().unwrap_or_default();
    ensure!(
        stopped_early || status.success(),
        "ffmpeg failed to decode {} ({status}): {}",
        input.display(),
        stderr.trim()
    );
    Ok(())
}

/// Fills `buf` completely; `Ok(false)` on a clean end of stream before the first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "partial frame from ffmpeg")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A tool that could not be started: "not found on PATH" with the fix, or the OS error with its name.
pub(crate) fn tool_error(e: io::Error, tool: &str) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("{tool} not found on PATH; install ffmpeg"),
        _ => anyhow::Error::new(e).context(format!("failed to run {tool}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{strip_height, BRIGHT, DARK};

    /// Paints a frame the way the encoder does: strip on top, mid-grey noise-free content below.
    fn paint(n: u32, width: usize, height: usize) -> Vec<u8> {
        let mut gray = vec![100u8; width * height];
        let strip = strip_height(height as u32) as usize;
        for y in 0..strip {
            for x in 0..width {
                let bit = x * STRIP_BITS as usize / width;
                gray[y * width + x] = if n >> bit & 1 == 1 { BRIGHT } else { DARK };
            }
        }
        gray
    }

    #[test]
    fn decodes_painted_frames_at_many_sizes() {
        let sizes = [(320, 180), (640, 360), (227, 128), (171, 96), (40, 24), (1280, 720)];
        let numbers = [0, 1, 2, 180, 4499, 65_535, (1 << 20) - 1, 0b1010_1010_1010_1010_1010];
        for (w, h) in sizes {
            for n in numbers {
                assert_eq!(decode_frame_number(&paint(n, w, h), w, h), Some(n), "{n} at {w}x{h}");
            }
        }
    }

    #[test]
    fn rejects_unclean_strips() {
        let (w, h) = (320, 180);
        // A crossfade of two frames leaves mid-grey blocks.
        let a = paint(0, w, h);
        let b = paint(0xFFFFF, w, h);
        let blend: Vec<u8> = a.iter().zip(&b).map(|(x, y)| ((u16::from(*x) + u16::from(*y)) / 2) as u8).collect();
        assert_eq!(decode_frame_number(&blend, w, h), None);
        assert_eq!(decode_frame_number(&vec![128; w * h], w, h), None);
        assert_eq!(decode_frame_number(&a[..100], w, h), None, "short buffer");
        assert_eq!(decode_frame_number(&[16; 10 * 10], 10, 10), None, "too small");
    }

    #[test]
    fn tags_read_from_the_second_strip() {
        for (w, h) in [(320, 180), (640, 360), (171, 96)] {
            let strip = strip_height(h as u32) as usize;
            let mut gray = paint(42, w, h);
            let tag = paint(0xABCDE, w, h);
            gray[strip * w..2 * strip * w].copy_from_slice(&tag[..strip * w]);
            assert_eq!(decode_frame_number(&gray, w, h), Some(42), "{w}x{h}");
            assert_eq!(decode_tag(&gray, w, h), Some(0xABCDE), "{w}x{h}");
        }
    }

    #[test]
    fn tolerates_mild_noise() {
        let (w, h) = (320, 180);
        let mut gray = paint(12345, w, h);
        for (i, px) in gray.iter_mut().enumerate() {
            let jitter = (i * 7919 % 41) as i16 - 20;
            *px = (i16::from(*px) + jitter).clamp(0, 255) as u8;
        }
        assert_eq!(decode_frame_number(&gray, w, h), Some(12345));
    }
}
