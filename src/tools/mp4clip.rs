//! An exact cut's clip read back in process: the packets of the MP4 that ffmpeg wrote, in the form the
//! cut's own `framehash` hashed them ([`super::ffmpeg::PACKETS_CANONICAL`]), and its streams and duration,
//! without starting ffmpeg (a start costs about 0.06 CPU s here, most of the check).
//!
//! It reads what ffmpeg's MP4 muxer writes for the cut (`ftyp, moov, mdat`: H.264 in `avc1` and AAC in
//! `mp4a` tracks) and nothing else: any other file is an error. It never rejects a clip by itself: a clip it
//! cannot read, or whose packets it does not find as written, goes to [`super::ffmpeg::Ffmpeg::check_packets`],
//! which has the last word. `tests/clip_check.rs` compares both on real cuts.

use super::ffmpeg::{parse_duration_line, ClipCheck, Ffmpeg, Packets};
use super::process::StopSignal;
use super::Failure;
use crate::isobmff::{be_u32, be_u64, box_header, child, children, sample_ranges};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The check of a clip whose every packet its encoder wrote (`written`): read in process ([`read`]) when
/// that finds the packets as written, else by ffmpeg ([`Ffmpeg::check_packets`]), whose verdict stands.
/// The in-process read's CPU counts in the stage being measured ([`crate::cpu::add_own`]).
pub async fn check(
    ffmpeg: &Ffmpeg,
    path: &Path,
    written: &Packets,
    stop: &mut StopSignal,
) -> Result<ClipCheck, Failure> {
    let t0 = crate::cpu::thread_now();
    let got = read(path);
    crate::cpu::add_own(crate::cpu::thread_now().saturating_sub(t0));
    let why = match got {
        Ok((back, check)) => match written.difference(&back) {
            None => return Ok(check),
            Some(difference) => difference,
        },
        Err(why) => why,
    };
    tracing::debug!("{}: read by ffmpeg ({why})", path.display());
    ffmpeg.check_packets(path, written, stop).await
}

/// The clip's packets (stream `i` is the `i`-th track) and its description as ffmpeg's log gives it.
pub fn read(path: &Path) -> Result<(Packets, ClipCheck), String> {
    let file = std::fs::read(path).map_err(|e| e.to_string())?;
    let moov = children(&file).find(|(k, _)| k == b"moov").map(|(_, b)| b).ok_or("no moov")?;
    let mvhd = child(moov, b"mvhd").ok_or("no mvhd")?;
    let (timescale, duration) = match mvhd.first() {
        Some(1) => (be_u32(mvhd, 20), be_u64(mvhd, 24)),
        _ => (be_u32(mvhd, 12), be_u32(mvhd, 16).map(u64::from)),
    };
    let (timescale, duration) = timescale.zip(duration).filter(|(t, _)| *t > 0).ok_or("no movie duration")?;
    let mut check = ClipCheck { duration: Some(display_duration(duration, timescale)), ..ClipCheck::default() };
    let (mut config, mut packets) = (Vec::new(), Vec::new());
    for (stream, (_, trak)) in children(moov).filter(|(k, _)| k == b"trak").enumerate() {
        let stream = u32::try_from(stream).map_err(|e| e.to_string())?;
        let track = read_track(trak).ok_or_else(|| format!("track {stream}: not one the cut writes"))?;
        check.has_video |= track.video;
        check.has_audio |= !track.video;
        config.push((stream, track.config.len() as u64, hex_sha256(&track.config)));
        for (&at, &size) in track.offsets.iter().zip(&track.sizes) {
            let start = usize::try_from(at).map_err(|e| e.to_string())?;
            let sample = file
                .get(start..start.saturating_add(size as usize))
                .ok_or_else(|| format!("track {stream}: a sample past the end of the file"))?;
            if !track.video {
                packets.push((stream, sample.len() as u64, hex_sha256(sample)));
                continue;
            }
            let units = annex_b(sample, track.length_size).ok_or_else(|| format!("track {stream}: bad NAL units"))?;
            // A packet left without units (parameter sets only) is dropped by `filter_units`.
            if !units.is_empty() {
                packets.push((stream, units.len() as u64, hex_sha256(&units)));
            }
        }
    }
    Ok((Packets::new(config, packets), check))
}

struct Track {
    video: bool,
    /// The stream's codec configuration as ffmpeg hands it to `framehash`: H.264's parameter sets in Annex B
    /// (four-byte start codes), AAC's AudioSpecificConfig.
    config: Vec<u8>,
    /// H.264: the bytes of each NAL unit's length.
    length_size: usize,
    offsets: Vec<u64>,
    sizes: Vec<u32>,
}

fn read_track(trak: &[u8]) -> Option<Track> {
    let mdia = child(trak, b"mdia")?;
    let handler = child(mdia, b"hdlr")?.get(8..12)?;
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let stsd = child(stbl, b"stsd")?;
    let entry = stsd.get(8..)?;
    let (kind, header, size) = box_header(entry)?;
    let entry = entry.get(header..usize::try_from(size?).ok()?)?;
    let (video, config, length_size) = match (handler, &kind) {
        // A VisualSampleEntry's boxes follow its 78 bytes of fields.
        (b"vide", b"avc1") => {
            let avcc = child(entry.get(78..)?, b"avcC")?;
            let (config, length_size) = avcc_annex_b(avcc)?;
            (true, config, length_size)
        }
        // An AudioSampleEntry's boxes follow its 28 bytes of fields.
        (b"soun", b"mp4a") => (false, esds_config(child(entry.get(28..)?, b"esds")?)?, 0),
        _ => return None,
    };
    let (offsets, sizes) = sample_ranges(stbl)?;
    (offsets.len() == sizes.len()).then_some(Track { video, config, length_size, offsets, sizes })
}

/// `avcC`'s sequence and picture parameter sets, each after a four-byte start code, and the size of the
/// samples' NAL unit lengths.
fn avcc_annex_b(avcc: &[u8]) -> Option<(Vec<u8>, usize)> {
    let length_size = usize::from(avcc.get(4)? & 3) + 1;
    let mut out = Vec::new();
    let mut pos = 5;
    for mask in [0x1f, 0xff] {
        let count = avcc.get(pos)? & mask;
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*avcc.get(pos)?, *avcc.get(pos + 1)?]));
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(avcc.get(pos + 2..pos + 2 + len)?);
            pos += 2 + len;
        }
    }
    Some((out, length_size))
}

/// The DecoderSpecificInfo (tag 5) of an `esds`'s ES descriptor: AAC's AudioSpecificConfig.
fn esds_config(esds: &[u8]) -> Option<Vec<u8>> {
    // (tag, body) of the descriptor at `at`; a size is up to four bytes of seven bits.
    let descriptor = |at: usize| -> Option<(u8, usize, usize)> {
        let tag = *esds.get(at)?;
        let (mut size, mut pos) = (0usize, at + 1);
        for _ in 0..4 {
            let b = *esds.get(pos)?;
            pos += 1;
            size = (size << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        Some((tag, pos, pos.checked_add(size)?))
    };
    let (tag, body, _) = descriptor(4)?;
    if tag != 3 {
        return None;
    }
    // ES_ID, then flags saying which optional fields follow.
    let flags = *esds.get(body + 2)?;
    let mut at = body + 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*esds.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, body, _) = descriptor(at)?;
    if tag != 4 {
        return None;
    }
    // objectTypeIndication, streamType, bufferSizeDB (3), maxBitrate (4), avgBitrate (4).
    let (tag, body, end) = descriptor(body + 13)?;
    (tag == 5).then(|| esds.get(body..end).map(<[u8]>::to_vec))?
}

/// One H.264 sample (NAL units after their lengths) as `h264_mp4toannexb,filter_units=remove_types=7-8`
/// leaves it: parameter sets removed, every other unit unescaped, its trailing zero bytes dropped, escaped
/// again, and written after a start code of four bytes for the first unit and three for the rest. `None`
/// when the lengths do not add up to the sample.
fn annex_b(sample: &[u8], length_size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(sample.len() + 8);
    let mut pos = 0;
    while pos < sample.len() {
        let len = sample.get(pos..pos + length_size)?.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        pos += length_size;
        let unit = sample.get(pos..pos.checked_add(len)?)?;
        pos += len;
        if matches!(unit.first().map(|b| b & 0x1f), Some(7 | 8) | None) {
            continue;
        }
        let mut rbsp = unescape(unit);
        while rbsp.last() == Some(&0) {
            rbsp.pop();
        }
        if rbsp.is_empty() {
            continue;
        }
        out.extend_from_slice(if out.is_empty() { &[0, 0, 0, 1] } else { &[0, 0, 1] });
        escape_into(&mut out, &rbsp);
    }
    Some(out)
}

/// A NAL unit without its emulation prevention bytes: each `00 00 03` becomes `00 00` (also the SPS that
/// `tools::mkv` reads).
pub(super) fn unescape(unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(unit.len());
    let mut i = 0;
    while i < unit.len() {
        if i + 2 < unit.len() && unit[i] == 0 && unit[i + 1] == 0 && unit[i + 2] == 3 {
            out.extend_from_slice(&[0, 0]);
            i += 3;
        } else {
            out.push(unit[i]);
            i += 1;
        }
    }
    out
}

/// `rbsp` with an emulation prevention byte before any byte of 0-3 that follows two zero bytes.
fn escape_into(out: &mut Vec<u8>, rbsp: &[u8]) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros < 2 {
            zeros = if b == 0 { zeros + 1 } else { 0 };
        } else {
            if b & !3 == 0 {
                out.push(3);
            }
            zeros = usize::from(b == 0);
        }
        out.push(b);
    }
}

/// The movie's duration as ffmpeg's description of the input prints it (`Duration: 00:00:10.01`): in
/// microseconds, rounded, then to the hundredth, rounded; read back as the log's line is.
fn display_duration(duration: u64, timescale: u32) -> f64 {
    let us = (u128::from(duration) * 1_000_000 + u128::from(timescale) / 2) / u128::from(timescale) + 5_000;
    let (secs, cs) = (us / 1_000_000, (us % 1_000_000) / 10_000);
    let line = format!("Duration: {:02}:{:02}:{:02}.{:02}", secs / 3600, secs / 60 % 60, secs % 60, cs);
    parse_duration_line(&line).unwrap_or(0.0)
}

fn hex_sha256(bytes: &[u8]) -> String {
    crate::units::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_written_as_filter_units_writes_them() {
        // (sample: a length of 4 bytes before each unit, Annex B as filter_units leaves it)
        let cases: [(&[u8], &[u8]); 6] = [
            // One slice: a four-byte start code.
            (&[0, 0, 0, 3, 0x65, 0x88, 0x84], &[0, 0, 0, 1, 0x65, 0x88, 0x84]),
            // SEI then a slice: four bytes, then three.
            (&[0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x41, 0x9a], &[0, 0, 0, 1, 0x06, 0x05, 0, 0, 1, 0x41, 0x9a]),
            // Parameter sets go; the first unit left gets the four bytes.
            (&[0, 0, 0, 2, 0x67, 0x64, 0, 0, 0, 2, 0x68, 0xee, 0, 0, 0, 2, 0x65, 0x88], &[0, 0, 0, 1, 0x65, 0x88]),
            // Escapes stay escapes.
            (&[0, 0, 0, 6, 0x65, 0, 0, 3, 1, 0x80], &[0, 0, 0, 1, 0x65, 0, 0, 3, 1, 0x80]),
            // cabac_zero_words (00 00 03 after the last byte) are trailing zeros: gone.
            (&[0, 0, 0, 8, 0x65, 0x80, 0, 0, 3, 0, 0, 3], &[0, 0, 0, 1, 0x65, 0x80]),
            // Parameter sets only: nothing.
            (&[0, 0, 0, 2, 0x67, 0x64], &[]),
        ];
        for (sample, want) in cases {
            assert_eq!(annex_b(sample, 4).as_deref(), Some(want), "{sample:02x?}");
        }
        assert_eq!(annex_b(&[0, 0, 0, 9, 0x65], 4), None, "a length past the sample");
    }

    #[test]
    fn durations_print_as_ffmpeg_prints_them() {
        // (duration, timescale, what `Duration:` says)
        let cases = [(10_008, 1000, 10.01), (10_004, 1000, 10.0), (441_000, 44_100, 10.0), (3_723_500, 1000, 3723.5)];
        for (d, ts, want) in cases {
            assert_eq!(display_duration(d, ts), want, "{d}/{ts}");
        }
    }
}
