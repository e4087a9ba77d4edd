//! The window's layout read in process: the Matroska file `fetch_window` writes, taken apart for the
//! streams and packets [`Layout`] holds, so that a clip does not start ffprobe for them (a start is about
//! 0.07 CPU s here, as much as the listing itself).
//!
//! This reader answers only where it is sure to say what ffprobe would: an H.264 track whose sequence
//! parameter set states its frame reordering, a frame rate from the track's `DefaultDuration` (reduced as
//! ffmpeg's Matroska demuxer reduces it), blocks with their timestamps and keyframe flags. Anything else is an
//! error, and the caller asks ffprobe as before: an element it does not expect (a BlockGroup, a laced block, a
//! size left unknown), another codec's fields, an interlaced or reordering-unstated stream, no
//! `DefaultDuration`, a truncated file. `tests/window_layout.rs` compares both on windows made by the real
//! ffmpeg.

use super::smartcut::{Layout, PacketInfo, StreamInfo};
use std::io::{BufReader, Read, Seek};
use std::path::Path;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const FLAG_INTERLACED: u32 = 0x9A;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
/// A size of all ones: "unknown", which a seekable ffmpeg output never writes.
const UNKNOWN: u64 = u64::MAX;

/// Reads the window's streams, and with `packets` every block's track, timestamp and keyframe flag. Only
/// the header is read without `packets` (the frame rate of an exact cut).
pub fn read(path: &Path, packets: bool) -> Result<Layout, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Reader { inner: BufReader::with_capacity(64 * 1024, file), pos: 0 };
    let (id, size) = r.header()?;
    if id != EBML {
        return Err("not an EBML file".into());
    }
    r.skip(size)?;
    let (id, size) = r.header()?;
    if id != SEGMENT || size == UNKNOWN {
        return Err("no Segment of known size".into());
    }
    let end = r.pos + size;
    if end > len {
        return Err(format!("truncated: the Segment ends at byte {end} of {len}"));
    }
    let mut scale = 1_000_000u64;
    let mut tracks: Vec<Track> = Vec::new();
    let mut layout = Layout::default();
    while r.pos < end {
        let (id, size) = r.header()?;
        if size == UNKNOWN {
            return Err(format!("element {id:X} of unknown size"));
        }
        let stop = r.pos + size;
        match id {
            INFO => {
                while r.pos < stop {
                    let (id, size) = r.header()?;
                    match id {
                        TIMESTAMP_SCALE => scale = r.uint(size)?,
                        _ => r.skip(size)?,
                    }
                }
            }
            TRACKS => {
                while r.pos < stop {
                    let (id, size) = r.header()?;
                    match id {
                        TRACK_ENTRY => tracks.push(r.track(r.pos + size)?),
                        _ => r.skip(size)?,
                    }
                }
                layout.streams = streams(&tracks, packets)?;
                if !packets {
                    return Ok(layout);
                }
            }
            CLUSTER if !packets => return Ok(layout),
            CLUSTER => r.cluster(stop, scale, &tracks, &mut layout.packets)?,
            _ => r.skip(size)?,
        }
        if r.pos != stop {
            return Err(format!("element {id:X} overruns its size"));
        }
    }
    if tracks.is_empty() {
        return Err("no Tracks".into());
    }
    Ok(layout)
}

#[derive(Debug, Default)]
struct Track {
    number: u64,
    kind: u64,
    codec: String,
    private: Vec<u8>,
    default_duration: u64,
    interlaced: u64,
}

/// The streams as ffprobe describes them, in track order (ffmpeg's stream index is the track's position).
/// `for_plan`: the smart cut's plan reads the H.264 fields too, so a stream whose fields this reader cannot
/// name as ffprobe would is an error; without it only the codec and the frame rate are needed.
fn streams(tracks: &[Track], for_plan: bool) -> Result<Vec<StreamInfo>, String> {
    let mut out = Vec::new();
    for (index, t) in tracks.iter().enumerate() {
        let mut s = StreamInfo { index: index as i64, ..StreamInfo::default() };
        match t.kind {
            1 => {
                if t.default_duration == 0 {
                    return Err("no DefaultDuration".into());
                }
                let (num, den) = reduce(1_000_000_000, t.default_duration as i64, 30000);
                s.codec_type = Some("video".into());
                s.avg_frame_rate = Some(format!("{num}/{den}"));
                s.codec_name = Some(match t.codec.as_str() {
                    "V_MPEG4/ISO/AVC" => "h264".into(),
                    "V_VP9" => "vp9".into(),
                    "V_VP8" => "vp8".into(),
                    "V_AV1" => "av1".into(),
                    c => return Err(format!("video codec {c}")),
                });
                if s.codec_name.as_deref() == Some("h264") && for_plan {
                    if t.interlaced == 1 {
                        return Err("interlaced track".into());
                    }
                    let sps = Sps::from_avcc(&t.private)?;
                    if !sps.frame_mbs_only {
                        return Err("field coding allowed (frame_mbs_only_flag 0)".into());
                    }
                    s.profile = Some(sps.profile_name()?.into());
                    s.level = Some(sps.level_idc as i64);
                    s.pix_fmt = Some(sps.pix_fmt()?.into());
                    s.has_b_frames = Some(sps.reorder_frames.ok_or("frame reordering not stated")? as i64);
                    s.field_order = Some("progressive".into());
                }
            }
            2 => {
                s.codec_type = Some("audio".into());
                s.codec_name = Some(match t.codec.as_str() {
                    c if c.starts_with("A_AAC") => "aac".into(),
                    "A_OPUS" => "opus".into(),
                    "A_VORBIS" => "vorbis".into(),
                    c => c.to_ascii_lowercase(),
                });
                if s.codec_name.as_deref() == Some("aac") {
                    // Only a profile the config states for sure: LC at 32 kHz or more. LC at a lower rate may
                    // carry SBR signalled in the bitstream alone (HE-AAC), which only a decoder sees.
                    s.profile = aac_config(&t.private)
                        .filter(|c| c.profile != "LC" || c.sample_rate >= 32_000)
                        .map(|c| c.profile.into());
                }
            }
            k => return Err(format!("track type {k}")),
        }
        out.push(s);
    }
    if !out.iter().any(|s| s.codec_type.as_deref() == Some("video")) {
        return Err("no video track".into());
    }
    Ok(out)
}

struct Reader<R> {
    inner: BufReader<R>,
    pos: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn byte(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b).map_err(|e| format!("truncated at byte {}: {e}", self.pos))?;
        self.pos += 1;
        Ok(b[0])
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, String> {
        if n > 1 << 20 {
            return Err(format!("an element of {n} bytes where a small one belongs"));
        }
        let mut v = vec![0u8; n as usize];
        self.inner.read_exact(&mut v).map_err(|e| format!("truncated at byte {}: {e}", self.pos))?;
        self.pos += n;
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        let n = i64::try_from(n).map_err(|_| "an element too large")?;
        self.inner.seek_relative(n).map_err(|e| e.to_string())?;
        self.pos += n as u64;
        Ok(())
    }

    /// A variable-length integer: with its length marker kept (an element ID) or cleared (a size).
    fn vint(&mut self, keep_marker: bool) -> Result<(u64, usize), String> {
        let first = self.byte()?;
        let len = first.leading_zeros() as usize + 1;
        if len > 8 {
            return Err(format!("invalid variable-length integer at byte {}", self.pos - 1));
        }
        let mut v = if keep_marker { first as u64 } else { (first as u64) & (0xFF >> len) };
        for _ in 1..len {
            v = (v << 8) | self.byte()? as u64;
        }
        Ok((v, len))
    }

    fn header(&mut self) -> Result<(u32, u64), String> {
        let (id, id_len) = self.vint(true)?;
        if id_len > 4 {
            return Err(format!("invalid element ID at byte {}", self.pos));
        }
        let (size, len) = self.vint(false)?;
        let unknown = size == (1u64 << (7 * len)) - 1;
        Ok((id as u32, if unknown { UNKNOWN } else { size }))
    }

    fn uint(&mut self, size: u64) -> Result<u64, String> {
        if size > 8 {
            return Err(format!("an unsigned integer of {size} bytes"));
        }
        Ok(self.bytes(size)?.iter().fold(0u64, |v, b| (v << 8) | *b as u64))
    }

    fn track(&mut self, stop: u64) -> Result<Track, String> {
        let mut t = Track::default();
        while self.pos < stop {
            let (id, size) = self.header()?;
            match id {
                TRACK_NUMBER => t.number = self.uint(size)?,
                TRACK_TYPE => t.kind = self.uint(size)?,
                CODEC_ID => t.codec = String::from_utf8_lossy(&self.bytes(size)?).trim_end_matches('\0').to_string(),
                CODEC_PRIVATE => t.private = self.bytes(size)?,
                DEFAULT_DURATION => t.default_duration = self.uint(size)?,
                VIDEO => {
                    let end = self.pos + size;
                    while self.pos < end {
                        let (id, size) = self.header()?;
                        match id {
                            FLAG_INTERLACED => t.interlaced = self.uint(size)?,
                            _ => self.skip(size)?,
                        }
                    }
                }
                _ => self.skip(size)?,
            }
        }
        Ok(t)
    }

    fn cluster(&mut self, stop: u64, scale: u64, tracks: &[Track], out: &mut Vec<PacketInfo>) -> Result<(), String> {
        let mut base: Option<u64> = None;
        while self.pos < stop {
            let (id, size) = self.header()?;
            let end = self.pos + size;
            match id {
                CLUSTER_TIMESTAMP => base = Some(self.uint(size)?),
                SIMPLE_BLOCK => {
                    let (track, ts, flags) = self.block_head(base)?;
                    out.push(packet(tracks, track, ts, scale, flags & 0x80 != 0)?);
                }
                // ffmpeg writes a BlockGroup only for what a window of H.264 and AAC does not hold (discard
                // padding, block additions, subtitles): left to ffprobe rather than read untried.
                BLOCK_GROUP => return Err("a BlockGroup".into()),
                _ => {}
            }
            if self.pos > end {
                return Err(format!("element {id:X} overruns its size"));
            }
            self.skip(end - self.pos)?;
        }
        Ok(())
    }

    /// A block's track number, timestamp and flags; laced blocks (several frames) are not expected.
    fn block_head(&mut self, base: Option<u64>) -> Result<(u64, i64, u8), String> {
        let base = base.ok_or("a block before its cluster's timestamp")?;
        let (track, _) = self.vint(false)?;
        let rel = i16::from_be_bytes([self.byte()?, self.byte()?]);
        let flags = self.byte()?;
        if flags & 0x06 != 0 {
            return Err("a laced block".into());
        }
        Ok((track, base as i64 + rel as i64, flags))
    }
}

fn packet(tracks: &[Track], number: u64, ts: i64, scale: u64, key: bool) -> Result<PacketInfo, String> {
    let index = tracks.iter().position(|t| t.number == number).ok_or(format!("a block of unknown track {number}"))?;
    // ffprobe prints `pts_time` to the microsecond.
    let secs = ts as f64 * scale as f64 / 1e9;
    Ok(PacketInfo {
        stream_index: index as i64,
        pts_time: Some(format!("{secs:.6}")),
        flags: if key { "K_".into() } else { "__".into() },
    })
}

/// `num/den` as the nearest fraction whose terms are at most `max`, the way ffmpeg's `av_reduce` finds it
/// (continued fractions, the last convergent or semiconvergent within the bound): ffmpeg's Matroska demuxer
/// makes a track's `avg_frame_rate` of 10^9 / `DefaultDuration` this way, bounded by 30000, so 33366666 ns
/// is 30000/1001.
pub fn reduce(num: i64, den: i64, max: i64) -> (i64, i64) {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let sign = (num < 0) ^ (den < 0);
    let (mut num, mut den) = (num.abs(), den.abs());
    let g = gcd(num, den);
    if g != 0 {
        num /= g;
        den /= g;
    }
    let (mut a0, mut a1) = ((0i64, 1i64), (1i64, 0i64));
    if num <= max && den <= max {
        a1 = (num, den);
        den = 0;
    }
    while den != 0 {
        let x = num / den;
        let next_den = num - den * x;
        let (a2n, a2d) = (x * a1.0 + a0.0, x * a1.1 + a0.1);
        if a2n > max || a2d > max {
            let mut x = x;
            if a1.0 != 0 {
                x = (max - a0.0) / a1.0;
            }
            if a1.1 != 0 {
                x = x.min((max - a0.1) / a1.1);
            }
            if den * (2 * x * a1.1 + a0.1) > num * a1.1 {
                a1 = (x * a1.0 + a0.0, x * a1.1 + a0.1);
            }
            break;
        }
        a0 = a1;
        a1 = (a2n, a2d);
        num = den;
        den = next_den;
    }
    (if sign { -a1.0 } else { a1.0 }, a1.1)
}

/// The fields of an H.264 sequence parameter set the smart cut's plan needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u64,
    pub bit_depth_luma: u64,
    pub bit_depth_chroma: u64,
    pub frame_mbs_only: bool,
    pub full_range: bool,
    /// `max_num_reorder_frames` of the VUI's bitstream restriction, when the stream states it.
    pub reorder_frames: Option<u64>,
}

impl Sps {
    /// The first SPS of an `avcC` record (ISO/IEC 14496-15), Matroska's CodecPrivate for H.264.
    pub fn from_avcc(avcc: &[u8]) -> Result<Sps, String> {
        if avcc.len() < 8 || avcc[0] != 1 {
            return Err("no avcC record".into());
        }
        if avcc[5] & 0x1f == 0 {
            return Err("an avcC record without an SPS".into());
        }
        let len = u16::from_be_bytes([avcc[6], avcc[7]]) as usize;
        let nal = avcc.get(8..8 + len).ok_or("a truncated SPS")?;
        Sps::parse(nal)
    }

    /// An SPS NAL unit (its header byte first, emulation prevention bytes in place).
    pub fn parse(nal: &[u8]) -> Result<Sps, String> {
        if nal.first().map(|h| h & 0x1f) != Some(7) {
            return Err("not an SPS NAL unit".into());
        }
        let rbsp = super::mp4clip::unescape(&nal[1..]);
        let mut r = Bits { data: &rbsp, pos: 0 };
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue()?; // seq_parameter_set_id
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
        if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                r.bits(1)?; // separate_colour_plane_flag
            }
            bit_depth_luma = r.ue()? + 8;
            bit_depth_chroma = r.ue()? + 8;
            r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.bits(1)? == 1 {
                for i in 0..if chroma_format_idc == 3 { 12 } else { 8 } {
                    if r.bits(1)? == 1 {
                        r.scaling_list(if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bits(1)?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                for _ in 0..r.ue()? {
                    r.se()?; // offset_for_ref_frame
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
        r.ue()?; // pic_width_in_mbs_minus1
        r.ue()?; // pic_height_in_map_units_minus1
        let frame_mbs_only = r.bits(1)? == 1;
        if !frame_mbs_only {
            r.bits(1)?; // mb_adaptive_frame_field_flag
        }
        r.bits(1)?; // direct_8x8_inference_flag
        if r.bits(1)? == 1 {
            for _ in 0..4 {
                r.ue()?; // frame_crop_*_offset
            }
        }
        let (mut full_range, mut reorder_frames) = (false, None);
        if r.bits(1)? == 1 {
            // vui_parameters()
            if r.bits(1)? == 1 && r.bits(8)? == 255 {
                r.bits(32)?; // sar_width, sar_height
            }
            if r.bits(1)? == 1 {
                r.bits(1)?; // overscan_appropriate_flag
            }
            if r.bits(1)? == 1 {
                r.bits(3)?; // video_format
                full_range = r.bits(1)? == 1;
                if r.bits(1)? == 1 {
                    r.bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
                }
            }
            if r.bits(1)? == 1 {
                r.ue()?; // chroma_sample_loc_type_top_field
                r.ue()?; // chroma_sample_loc_type_bottom_field
            }
            if r.bits(1)? == 1 {
                r.bits(32)?; // num_units_in_tick
                r.bits(32)?; // time_scale
                r.bits(1)?; // fixed_frame_rate_flag
            }
            let nal_hrd = r.bits(1)? == 1;
            if nal_hrd {
                r.hrd()?;
            }
            let vcl_hrd = r.bits(1)? == 1;
            if vcl_hrd {
                r.hrd()?;
            }
            if nal_hrd || vcl_hrd {
                r.bits(1)?; // low_delay_hrd_flag
            }
            r.bits(1)?; // pic_struct_present_flag
            if r.bits(1)? == 1 {
                r.bits(1)?; // motion_vectors_over_pic_boundaries_flag
                for _ in 0..4 {
                    r.ue()?; // max_bytes_per_pic_denom .. log2_max_mv_length_vertical
                }
                reorder_frames = Some(r.ue()?);
                r.ue()?; // max_dec_frame_buffering
            }
        }
        Ok(Sps {
            profile_idc,
            constraints,
            level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            frame_mbs_only,
            full_range,
            reorder_frames,
        })
    }

    /// ffmpeg's name for the profile, for the profiles the smart cut can encode a head in.
    pub fn profile_name(&self) -> Result<&'static str, String> {
        match (self.profile_idc, self.constraints & 0x40 != 0) {
            (66, true) => Ok("Constrained Baseline"),
            (66, false) => Ok("Baseline"),
            (77, _) => Ok("Main"),
            // constraint_set4/5 (progressive, constrained High) are named apart by newer ffmpegs.
            (100, _) if self.constraints & 0x0c == 0 => Ok("High"),
            (p, _) => Err(format!("H.264 profile_idc {p}")),
        }
    }

    /// The pixel format ffmpeg's decoder gives, for the 8-bit formats it names from these fields.
    pub fn pix_fmt(&self) -> Result<&'static str, String> {
        match (self.chroma_format_idc, self.bit_depth_luma, self.bit_depth_chroma, self.full_range) {
            (1, 8, 8, false) => Ok("yuv420p"),
            (1, 8, 8, true) => Ok("yuvj420p"),
            (c, l, _, _) => Err(format!("chroma format {c}, {l}-bit")),
        }
    }
}

/// What an AAC AudioSpecificConfig (ISO/IEC 14496-3, 1.6.2.1: Matroska's CodecPrivate for `A_AAC`, the MP4
/// `esds`'s DecoderSpecificInfo) states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// ffprobe's name for the profile: `LC`, `HE-AAC` (SBR), `HE-AACv2` (SBR and PS), `Main`, `SSR`, `LTP`,
    /// `LD`, `ELD`.
    pub profile: &'static str,
    /// The core coder's sampling rate (half the output rate with SBR).
    pub sample_rate: u32,
}

/// Reads an AudioSpecificConfig: SBR and PS signalled explicitly, hierarchically (object type 5 or 29) or
/// backward-compatibly (LC with a sync extension, as ffmpeg's encoder writes one saying "no SBR"). `None`
/// for a config it cannot read.
pub fn aac_config(asc: &[u8]) -> Option<AacConfig> {
    const RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
    let mut r = Bits { data: asc, pos: 0 };
    let object_type = |r: &mut Bits| -> Option<u64> {
        let t = r.bits(5).ok()?;
        if t == 31 {
            return Some(32 + r.bits(6).ok()?);
        }
        Some(t)
    };
    let rate = |r: &mut Bits| -> Option<u32> {
        match r.bits(4).ok()? {
            15 => Some(r.bits(24).ok()? as u32),
            i => RATES.get(i as usize).copied(),
        }
    };
    let aot = object_type(&mut r)?;
    let sample_rate = rate(&mut r)?;
    r.bits(4).ok()?; // channelConfiguration
    let profile = match aot {
        5 => "HE-AAC",
        29 => "HE-AACv2",
        1 => "Main",
        3 => "SSR",
        4 => "LTP",
        23 => "LD",
        39 => "ELD",
        2 => {
            // GASpecificConfig: frameLengthFlag, dependsOnCoreCoder (then a 14-bit delay), extensionFlag.
            r.bits(1).ok()?;
            if r.bits(1).ok()? == 1 {
                r.bits(14).ok()?;
            }
            r.bits(1).ok()?;
            let mut profile = "LC";
            // A backward-compatible extension: syncExtensionType 0x2b7, object type 5, sbrPresentFlag; then,
            // with SBR, its rate and possibly 0x548 with psPresentFlag.
            if asc.len() * 8 >= r.pos + 16
                && r.bits(11).ok()? == 0x2b7
                && object_type(&mut r)? == 5
                && r.bits(1).ok()? == 1
            {
                profile = "HE-AAC";
                rate(&mut r)?;
                if asc.len() * 8 >= r.pos + 12 && r.bits(11).ok()? == 0x548 && r.bits(1).ok()? == 1 {
                    profile = "HE-AACv2";
                }
            }
            profile
        }
        _ => return None,
    };
    Some(AacConfig { profile, sample_rate })
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bits(&mut self, n: u32) -> Result<u64, String> {
        let mut v = 0u64;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8).ok_or("a truncated SPS")?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u64;
            self.pos += 1;
        }
        Ok(v)
    }

    /// Exp-Golomb, unsigned.
    fn ue(&mut self) -> Result<u64, String> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err("an invalid Exp-Golomb code in the SPS".into());
            }
        }
        Ok((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    /// Exp-Golomb, signed.
    fn se(&mut self) -> Result<i64, String> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    fn scaling_list(&mut self, size: usize) -> Result<(), String> {
        let (mut last, mut next) = (8i64, 8i64);
        for _ in 0..size {
            if next != 0 {
                next = (last + self.se()? + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Ok(())
    }

    fn hrd(&mut self) -> Result<(), String> {
        let count = self.ue()? + 1;
        self.bits(8)?; // bit_rate_scale, cpb_size_scale
        for _ in 0..count {
            self.ue()?; // bit_rate_value_minus1
            self.ue()?; // cpb_size_value_minus1
            self.bits(1)?; // cbr_flag
        }
        self.bits(20)?; // four delay and offset lengths
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DefaultDuration`s ffmpeg 5.1's Matroska muxer writes for x264 streams at these rates, and the
    /// `avg_frame_rate` its ffprobe reads back (60000/1001 comes back as 19001/317: the nearest fraction
    /// within 30000 of 10^9 / 16683333).
    #[test]
    fn frame_rates_reduce_as_ffmpeg_reduces_them() {
        let table: [(i64, (i64, i64)); 8] = [
            (16_683_333, (19001, 317)),
            (41_708_333, (24000, 1001)),
            (33_366_666, (30000, 1001)),
            (41_666_666, (24, 1)),
            (40_000_000, (25, 1)),
            (16_666_666, (60, 1)),
            (100_000_000, (10, 1)),
            (20_000_000, (50, 1)),
        ];
        for (ns, want) in table {
            assert_eq!(reduce(1_000_000_000, ns, 30000), want, "{ns} ns");
        }
        assert_eq!(reduce(6, 4, 30000), (3, 2));
        assert_eq!(reduce(-6, 4, 30000), (-3, 2));
    }

    /// AudioSpecificConfigs: ffmpeg 5.1's AAC encoder's (read from the test source's window with `ffprobe
    /// -show_data`: LC, a sync extension saying no SBR), the plain two-byte LC config of MP4 muxers, and the
    /// HE-AAC configs of the standard's signalling examples (explicit hierarchical, backward compatible, and
    /// with PS), whose profiles are ffprobe's names.
    #[test]
    fn reads_aac_audio_specific_configs() {
        type Said = Option<(&'static str, u32)>;
        let table: [(&[u8], Said); 9] = [
            (&[0x12, 0x08, 0x56, 0xe5, 0x00], Some(("LC", 44100))),
            (&[0x12, 0x10], Some(("LC", 44100))),
            (&[0x11, 0x90], Some(("LC", 48000))),
            (&[0x13, 0x90], Some(("LC", 22050))),
            (&[0x2b, 0x92, 0x08, 0x00], Some(("HE-AAC", 22050))),
            (&[0x13, 0x90, 0x56, 0xe5, 0xa0], Some(("HE-AAC", 22050))),
            (&[0x13, 0x90, 0x56, 0xe5, 0xa5, 0x48, 0x80], Some(("HE-AACv2", 22050))),
            (&[0x0a, 0x10], Some(("Main", 44100))),
            (&[0x12], None),
        ];
        for (asc, want) in table {
            assert_eq!(aac_config(asc).map(|c| (c.profile, c.sample_rate)), want, "{asc:02x?}");
        }
    }

    /// Real SPSs, written by x264 through ffmpeg 5.1 (`-f lavfi -i testsrc=size=640x360 -pix_fmt yuv420p -c:v
    /// libx264 -preset veryfast -f h264`), and what ffprobe says of each.
    #[test]
    fn reads_real_sequence_parameter_sets() {
        type Said = (&'static str, u8, &'static str, Option<u64>, bool);
        // (x264's options, the SPS in hex, what ffprobe says: profile, level, pixel format, has_b_frames, and
        // whether field coding is ruled out).
        let table: [(&str, &str, Said); 5] = [
            (
                "-profile:v high -bf 0",
                "6764001eacb405017fcb8088000003000800000301e078b175",
                ("High", 30, "yuv420p", Some(0), true),
            ),
            (
                "-profile:v high -bf 2",
                "6764001eacd940a02ff970110000030001000003003c0f162d96",
                ("High", 30, "yuv420p", Some(2), true),
            ),
            (
                "-profile:v baseline",
                "6742c01eda0280bfe5c044000003000400000300f03c58ba80",
                ("Constrained Baseline", 30, "yuv420p", Some(0), true),
            ),
            (
                "-profile:v main -color_range pc",
                "674d401eeca05017fcb80b64000003000400000300f03c58b658",
                ("Main", 30, "yuvj420p", Some(2), true),
            ),
            (
                "-profile:v high -bf 0 -flags +ilme+ildct (ffprobe: field_order tt)",
                "6764001eace80a063f3e0220000003002000000783e28554",
                ("High", 30, "yuv420p", Some(0), false),
            ),
        ];
        let hex = |h: &str| -> Vec<u8> {
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
        };
        for (options, sps, said) in table {
            let s = Sps::parse(&hex(sps)).unwrap_or_else(|e| panic!("{options}: {e}"));
            let read =
                (s.profile_name().unwrap(), s.level_idc, s.pix_fmt().unwrap(), s.reorder_frames, s.frame_mbs_only);
            assert_eq!(read, said, "{options}");
        }
        let high = hex(table[0].1);
        // The baseline SPS with its VUI flag cleared: reordering is not stated, and the reader leaves the
        // stream to ffprobe.
        let no_vui = [0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x40];
        assert_eq!(Sps::parse(&no_vui).unwrap().reorder_frames, None);
        assert!(Sps::parse(&[0x68, 0xee, 0x3c, 0x80]).is_err(), "a PPS is not an SPS");
        assert!(Sps::parse(&high[..6]).is_err(), "truncated");
    }
}
