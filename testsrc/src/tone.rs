//! The self-describing sound track: a tone whose pitch names the second, silent for the first 10 ms of
//! every second, and the means to read both back from a clip.
//!
//! During second `s` the track plays `300 + 50 * (s mod 40)` Hz at half scale (the phase of `t`, so every
//! second starts at a zero crossing); `[s, s + 0.01)` is silence. The pitch tells which second a stretch
//! of samples comes from (40 distinct pitches, 50 Hz apart, so a tenth of a second tells them apart); the
//! silent gaps are sharp edges a test can locate to well under a millisecond, even through AAC, so it can
//! tell where a cut starts to the sample, not just to the second.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::frames::tool_error;
use anyhow::{ensure, Context};

/// Pitch of second 0 and the step between consecutive seconds, in Hz.
pub const BASE_HZ: u32 = 300;
pub const STEP_HZ: u32 = 50;
/// Pitches repeat after this many seconds.
pub const CYCLE: u32 = 40;
/// The silence at the start of every second.
pub const GAP_SECS: f64 = 0.01;
/// Peak amplitude of the tone (full scale is 1).
pub const AMPLITUDE: f64 = 0.5;

/// The pitch of second `second`.
pub fn tone_hz(second: u32) -> u32 {
    BASE_HZ + STEP_HZ * (second % CYCLE)
}

/// The `aevalsrc` expression playing the track (commas escaped for a filter graph).
pub fn aevalsrc_expr() -> String {
    format!(
        "if(lt(mod(t\\,1)\\,{GAP_SECS})\\,0\\,{AMPLITUDE}*sin(2*PI*({BASE_HZ}+{STEP_HZ}*mod(floor(t)\\,{CYCLE}))*t))"
    )
}

/// Decoded mono samples of a file's first audio stream, at its own sample rate.
#[derive(Debug, Clone)]
pub struct Samples {
    pub rate: u32,
    pub data: Vec<f32>,
}

impl Samples {
    pub fn secs(&self) -> f64 {
        self.data.len() as f64 / f64::from(self.rate)
    }

    /// `second mod CYCLE` of the first `len` seconds of samples.
    pub fn first_second(&self, len: f64) -> Option<u32> {
        let n = ((len * f64::from(self.rate)) as usize).min(self.data.len());
        second_of(&self.data[..n], self.rate)
    }

    /// `second mod CYCLE` of the last `len` seconds of samples.
    pub fn last_second(&self, len: f64) -> Option<u32> {
        let n = ((len * f64::from(self.rate)) as usize).min(self.data.len());
        second_of(&self.data[self.data.len() - n..], self.rate)
    }

    /// The middle of the silent gap nearest `near` seconds into the samples (searched within 40 ms of
    /// it), in seconds from the first sample.
    pub fn gap_middle(&self, near: f64) -> Option<f64> {
        gap_middle(&self.data, self.rate, near)
    }
}

/// `second mod CYCLE` of a stretch of samples from inside one second: the pitch with the most energy,
/// `None` when no pitch stands out (silence, a stretch across a boundary, noise).
pub fn second_of(samples: &[f32], rate: u32) -> Option<u32> {
    if samples.len() < (rate / 50) as usize {
        return None;
    }
    let mut powers: Vec<(f64, u32)> = (0..CYCLE).map(|s| (goertzel(samples, rate, tone_hz(s)), s)).collect();
    powers.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (best, second) = (powers[0], powers[1]);
    (best.0 > 4.0 * second.0 && best.0 > 1e-6).then_some(best.1)
}

/// Power of `hz` in `samples`, normalised by their count.
fn goertzel(samples: &[f32], rate: u32, hz: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let n = samples.len() as f64;
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)
}

/// The middle of the silent run within 40 ms of `near` seconds: where a 1 ms RMS stays under a fifth of
/// the tone's.
pub fn gap_middle(samples: &[f32], rate: u32, near: f64) -> Option<f64> {
    let rate_f = f64::from(rate);
    let window = ((rate_f / 1000.0) as usize).max(1);
    let lo = (((near - 0.04) * rate_f).max(0.0)) as usize;
    let hi = (((near + 0.04) * rate_f) as usize).min(samples.len().saturating_sub(window));
    let threshold = AMPLITUDE / 2f64.sqrt() / 5.0;
    let mut quiet = Vec::new();
    for i in lo..hi {
        let energy: f64 = samples[i..i + window].iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if (energy / window as f64).sqrt() < threshold {
            // The window's centre is quiet.
            quiet.push(i + window / 2);
        }
    }
    let (first, last) = (*quiet.first()?, *quiet.last()?);
    Some((first + last) as f64 / 2.0 / rate_f)
}

/// Decodes the first audio stream of `path` to mono at its own sample rate.
pub fn decode(path: &Path) -> anyhow::Result<Samples> {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error(e, "ffprobe"))?;
    ensure!(probe.status.success(), "ffprobe failed on {}", path.display());
    let rate: u32 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .with_context(|| format!("no audio stream in {}", path.display()))?;
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-f", "f32le", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error(e, "ffmpeg"))?;
    ensure!(
        output.status.success(),
        "ffmpeg failed to decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let data = output.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Samples { rate, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The track from `start` for `secs`, as `aevalsrc` computes it.
    fn synth(start: f64, secs: f64, rate: u32) -> Vec<f32> {
        let n = (secs * f64::from(rate)).round() as usize;
        (0..n)
            .map(|i| {
                let t = start + i as f64 / f64::from(rate);
                if t.rem_euclid(1.0) < GAP_SECS {
                    0.0
                } else {
                    (AMPLITUDE * (2.0 * std::f64::consts::PI * f64::from(tone_hz(t.floor() as u32)) * t).sin()) as f32
                }
            })
            .collect()
    }

    #[test]
    fn pitches_name_seconds() {
        for rate in [16_000, 44_100, 48_000] {
            for second in [0u32, 1, 12, 39, 40, 57, 299] {
                let samples = synth(f64::from(second) + 0.2, 0.1, rate);
                assert_eq!(second_of(&samples, rate), Some(second % CYCLE), "{second} at {rate}");
            }
        }
        assert_eq!(second_of(&vec![0.0; 4410], 44_100), None, "silence names no second");
        assert_eq!(tone_hz(0), 300);
        assert_eq!(tone_hz(41), 350);
    }

    #[test]
    fn gaps_are_found_to_a_fraction_of_a_millisecond() {
        for rate in [16_000, 44_100] {
            for start in [12.7, 3.25, 20.999, 7.5] {
                let samples = synth(start, 1.5, rate);
                let boundary = start.ceil() - start;
                let middle = gap_middle(&samples, rate, boundary).expect("a gap");
                let want = boundary + GAP_SECS / 2.0;
                assert!((middle - want).abs() < 0.0005, "{start} at {rate}: {middle} vs {want}");
            }
        }
        assert_eq!(gap_middle(&synth(12.2, 0.5, 16_000), 16_000, 0.25), None, "no gap mid-second");
    }

    #[test]
    fn the_expression_escapes_its_commas() {
        let expr = aevalsrc_expr();
        assert!(!expr.replace("\\,", "").contains(','), "{expr}");
        assert!(expr.contains("300+50*mod(floor(t)\\,40)"), "{expr}");
    }
}
