//! Just enough ISO BMFF (MP4) to know which bytes of a file a time window needs, so the relay can ask
//! upstream for exactly those instead of guessing piece sizes.
//!
//! Two layouts matter. YouTube's DASH formats (video-only and audio-only, what `bv+ba` picks) are
//! fragmented: `ftyp, moov (no samples), sidx, moof, mdat, moof, mdat...`, and the `sidx` gives each
//! fragment's byte size and duration. Progressive files (itag 18) are `ftyp, moov, mdat` with the sample
//! tables in the `moov`. Anything else (moov after mdat, WebM, hierarchical sidx) gets no plan and the
//! relay falls back to its size ramp. Every parse is bounds-checked: these bytes come from the network.

use crate::isobmff::{be_u32, be_u64, box_header, child, children, sample_ranges, table, MAX_SAMPLES};
use std::ops::Range;

/// Extra time read past the window's end: ffmpeg stops only once every stream has passed `-to`, and
/// B-frames put presentation times up to a few frames after decode times.
const END_MARGIN: f64 = 0.5;

/// Where the header of a file ends, judged from a prefix of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scan {
    /// More of the file is needed, at least up to this offset (exclusive).
    NeedUpTo(u64),
    /// `[0, end)` holds the header: `moov` (and `sidx`, if fragmented) at the given ranges.
    Header { end: u64, moov: Range<usize>, sidx: Option<Range<usize>> },
    /// Not a layout we plan for.
    Unknown,
}

/// Walks the top-level boxes of `prefix` (the first bytes of the file) up to the first `mdat`/`moof`.
pub(super) fn scan(prefix: &[u8]) -> Scan {
    let mut pos = 0usize;
    let mut moov = None;
    let mut sidx = None;
    loop {
        let Some((kind, header_len, size)) = box_header(&prefix[pos.min(prefix.len())..]) else {
            return Scan::NeedUpTo(pos as u64 + 16);
        };
        if &kind == b"mdat" || &kind == b"moof" {
            return match moov {
                Some(moov) => Scan::Header { end: pos as u64, moov, sidx },
                None => Scan::Unknown,
            };
        }
        let Some(size) = size.filter(|s| *s >= header_len as u64) else {
            return Scan::Unknown;
        };
        let Some(end) = (pos as u64).checked_add(size).filter(|end| *end <= MAX_HEADER) else {
            return Scan::Unknown;
        };
        if end as usize + 8 > prefix.len() {
            // The whole box and the next box's header, which says whether the header goes on.
            return Scan::NeedUpTo(end + 8);
        }
        let body = pos + header_len..end as usize;
        match &kind {
            b"moov" => moov = Some(body),
            b"sidx" if sidx.is_none() => sidx = Some(body),
            _ => {}
        }
        pos = end as usize;
    }
}

/// Headers bigger than this are not planned for (a progressive hour of 1080p has a ~10 MB moov).
const MAX_HEADER: u64 = 64 << 20;

/// A file's index: per-sample tables (progressive) or the fragment list (fragmented).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Index {
    Progressive(Vec<Track>),
    Fragmented(Vec<Fragment>),
}

/// One track of a progressive file, flattened to per-sample times (seconds), offsets and sizes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Track {
    pub video: bool,
    pub times: Vec<f64>,
    pub offsets: Vec<u64>,
    pub sizes: Vec<u32>,
    /// 0-based indices of sync samples; `None` when every sample is one.
    pub sync: Option<Vec<u32>>,
}

/// One `sidx` reference: a fragment's byte range and time span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fragment {
    pub offset: u64,
    pub size: u64,
    pub start: f64,
    pub duration: f64,
}

impl Index {
    /// Reads the index from the header found by [`scan`] (`prefix` holds at least `[0, end)`).
    pub fn parse(prefix: &[u8], moov: Range<usize>, sidx: Option<Range<usize>>) -> Option<Index> {
        if let Some(sidx) = sidx {
            // The sidx's offsets count from the first byte after it.
            return parse_sidx(prefix.get(sidx.clone())?, sidx.end as u64).map(Index::Fragmented);
        }
        let tracks: Vec<Track> =
            children(prefix.get(moov)?).filter(|(k, _)| k == b"trak").filter_map(|(_, t)| parse_trak(t)).collect();
        (!tracks.is_empty()).then_some(Index::Progressive(tracks))
    }

    /// The bytes (inclusive range) ffmpeg reads for `-ss start -to end`, or `None` if the index cannot say.
    pub fn window_span(&self, start: f64, end: f64) -> Option<(u64, u64)> {
        let end = end + END_MARGIN;
        match self {
            Index::Fragmented(frags) => {
                let first = frags.iter().rposition(|f| f.start <= start).unwrap_or(0);
                let last = frags.iter().rposition(|f| f.start <= end).unwrap_or(0).max(first);
                let f = frags[last];
                // Within the last fragment, assume bytes spread evenly over time, plus a little.
                let share = if f.duration > 0.0 { ((end - f.start) / f.duration + 0.1).clamp(0.0, 1.0) } else { 1.0 };
                let stop = f.offset + ((f.size as f64 * share).ceil() as u64).max(1) - 1;
                Some((frags[first].offset, stop))
            }
            Index::Progressive(tracks) => {
                // ffmpeg seeks the video track to the sync sample at or before `start`, then every other
                // track to the sample at or before that sample's time.
                let anchor = tracks.iter().find(|t| t.video).unwrap_or(&tracks[0]);
                let at = last_at_or_before(&anchor.times, start);
                let key = match &anchor.sync {
                    Some(sync) => sync.iter().rev().map(|&s| s as usize).find(|&s| s <= at).unwrap_or(0),
                    None => at,
                };
                let from = *anchor.times.get(key)?;
                let (mut lo, mut hi) = (u64::MAX, 0u64);
                for t in tracks {
                    let first = if std::ptr::eq(t, anchor) { key } else { last_at_or_before(&t.times, from) };
                    // One sample past the end: ffmpeg reads it to learn the window is over.
                    let last = t.times.partition_point(|&x| x <= end).min(t.times.len() - 1);
                    lo = lo.min(t.offsets[first]);
                    hi = hi.max(t.offsets[last] + u64::from(t.sizes[last]).max(1) - 1);
                }
                (lo <= hi).then_some((lo, hi))
            }
        }
    }
}

/// The last index whose time is at or before `t` (0 when all are after it).
fn last_at_or_before(times: &[f64], t: f64) -> usize {
    times.partition_point(|&x| x <= t).saturating_sub(1)
}

fn parse_sidx(body: &[u8], after: u64) -> Option<Vec<Fragment>> {
    let version = *body.first()?;
    let timescale = f64::from(be_u32(body, 8)?);
    let (earliest, first_offset, at) = match version {
        0 => (u64::from(be_u32(body, 12)?), u64::from(be_u32(body, 16)?), 20),
        _ => (be_u64(body, 12)?, be_u64(body, 20)?, 28),
    };
    let count = usize::from(u16::from_be_bytes(body.get(at + 2..at + 4)?.try_into().ok()?));
    if timescale <= 0.0 || count == 0 {
        return None;
    }
    let mut frags = Vec::with_capacity(count);
    let (mut offset, mut time) = (after + first_offset, earliest);
    for i in 0..count {
        let entry = at + 4 + i * 12;
        let size_word = be_u32(body, entry)?;
        if size_word >> 31 == 1 {
            return None; // A reference to another sidx: hierarchical indexes are not planned for.
        }
        let size = u64::from(size_word & 0x7fff_ffff);
        let duration = u64::from(be_u32(body, entry + 4)?);
        frags.push(Fragment { offset, size, start: time as f64 / timescale, duration: duration as f64 / timescale });
        offset += size;
        time += duration;
    }
    Some(frags)
}

fn parse_trak(trak: &[u8]) -> Option<Track> {
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = f64::from(if mdhd.first()? == &1 { be_u32(mdhd, 20)? } else { be_u32(mdhd, 12)? });
    let video = child(mdia, b"hdlr")?.get(8..12)? == b"vide";
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let shift = child(trak, b"edts").and_then(|e| child(e, b"elst")).and_then(first_media_time).unwrap_or(0);

    let stts = table(child(stbl, b"stts")?, 8)?;
    let mut times = Vec::new();
    let mut dts: i64 = 0;
    for e in stts {
        let (count, delta) = (be_u32(e, 0)?, i64::from(be_u32(e, 4)?));
        if times.len() + count as usize > MAX_SAMPLES || timescale <= 0.0 {
            return None;
        }
        for _ in 0..count {
            times.push((dts - shift) as f64 / timescale);
            dts += delta;
        }
    }
    let (offsets, sizes) = sample_ranges(stbl)?;
    let n = times.len().min(offsets.len()).min(sizes.len());
    if n == 0 {
        return None;
    }
    let sync = match child(stbl, b"stss") {
        Some(stss) => Some(table(stss, 4)?.filter_map(|e| be_u32(e, 0)?.checked_sub(1)).collect()),
        None => None,
    };
    times.truncate(n);
    Some(Track { video, times, offsets: offsets[..n].to_vec(), sizes: sizes[..n].to_vec(), sync })
}

fn first_media_time(elst: &[u8]) -> Option<i64> {
    let version = *elst.first()?;
    let width = if version == 1 { 20 } else { 12 };
    table(elst, width)?.find_map(|e| {
        let media_time = if version == 1 { be_u64(e, 8)? as i64 } else { i64::from(be_u32(e, 4)? as i32) };
        (media_time >= 0).then_some(media_time)
    })
}

#[cfg(test)]
mod tests;
