//! Just enough ISO BMFF (MP4) parsing to describe a fragmented file in a DASH manifest.
//!
//! A DASH on-demand representation is one file laid out `ftyp, moov, sidx, moof, mdat, ...`; the manifest
//! names the byte range of the initialization segment (`ftyp` and `moov`) and of the index (`sidx`), and
//! the RFC 6381 codec string. Those come from the real box offsets and sample entries of the remuxed file,
//! so the manifest cannot drift from what ffmpeg wrote.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context};

/// A `moov` larger than this is not something this crate wrote; refuse to read it into memory.
const MAX_MOOV: u64 = 16 << 20;

/// One top-level box: its type and where it sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    /// Offset of the first byte of the box (its size field).
    pub start: u64,
    /// Whole box length, header included.
    pub size: u64,
    /// 8, or 16 when the size is in the 64-bit `largesize` field.
    pub header_len: u64,
}

impl BoxHeader {
    /// Offset just past the box.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    pub fn is(&self, kind: &[u8; 4]) -> bool {
        &self.kind == kind
    }
}

/// The byte ranges a DASH `<SegmentBase>` names, both inclusive as in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentBase {
    /// The initialization segment is bytes `0..=init_last` (`ftyp` and `moov`).
    pub init_last: u64,
    /// The segment index (`sidx`) is bytes `index_first..=index_last`.
    pub index_first: u64,
    pub index_last: u64,
}

/// Parses the box header at the start of `bytes`, for a box starting at file offset `start` in a file of
/// `total` bytes. `bytes` must hold 16 bytes, or whatever is left of the file when that is less.
pub fn parse_header(bytes: &[u8], start: u64, total: u64) -> anyhow::Result<BoxHeader> {
    ensure!(bytes.len() >= 8, "truncated box header at offset {start}");
    let size32 = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let kind = [bytes[4], bytes[5], bytes[6], bytes[7]];
    let (size, header_len) = match size32 {
        // Size 0: the box runs to the end of the file.
        0 => (total.saturating_sub(start), 8),
        1 => {
            ensure!(bytes.len() >= 16, "truncated 64-bit box header at offset {start}");
            let mut large = [0u8; 8];
            large.copy_from_slice(&bytes[8..16]);
            (u64::from_be_bytes(large), 16)
        }
        n => (u64::from(n), 8),
    };
    ensure!(size >= header_len, "box {} at offset {start} claims {size} bytes", kind_str(&kind));
    ensure!(
        start.checked_add(size).is_some_and(|end| end <= total),
        "box {} at offset {start} runs past the end of the file ({size} bytes, file {total})",
        kind_str(&kind)
    );
    Ok(BoxHeader { kind, start, size, header_len })
}

/// Reads the top-level box headers of `r` (`total` bytes long) from the start up to and including the
/// first `moof` or `mdat`: everything a manifest needs comes before the media, and the media of a long
/// video is thousands of boxes.
pub fn top_level_boxes<R: Read + Seek>(r: &mut R, total: u64) -> anyhow::Result<Vec<BoxHeader>> {
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let want = (total - offset).min(16) as usize;
        let mut buf = [0u8; 16];
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(&mut buf[..want])?;
        let header = parse_header(&buf[..want], offset, total)?;
        boxes.push(header);
        if header.is(b"moof") || header.is(b"mdat") {
            break;
        }
        offset = header.end();
    }
    Ok(boxes)
}

/// The DASH on-demand ranges from a file's leading boxes: the init segment ends with the `moov`, and the
/// index is the first `sidx` after it, which must come before any media.
pub fn segment_base(boxes: &[BoxHeader]) -> anyhow::Result<SegmentBase> {
    ensure!(boxes.first().is_some_and(|b| b.is(b"ftyp")), "the file does not start with an ftyp box");
    let mut moov = None;
    for b in boxes {
        match &b.kind {
            b"moov" if moov.is_none() => moov = Some(b),
            b"sidx" => {
                let Some(moov) = moov else { bail!("the sidx box comes before the moov box") };
                return Ok(SegmentBase { init_last: moov.end() - 1, index_first: b.start, index_last: b.end() - 1 });
            }
            b"moof" | b"mdat" => bail!("media data before any sidx box (not fragmented with a global index?)"),
            _ => {}
        }
    }
    match moov {
        None => bail!("no moov box"),
        Some(_) => bail!("no sidx box"),
    }
}

/// What a manifest needs to know about a single-track fragmented file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub segment: SegmentBase,
    pub track: TrackInfo,
}

/// Codec facts of a file's first track, from its sample entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// RFC 6381 codec string, e.g. `avc1.64000d` or `mp4a.40.2`.
    pub codecs: String,
    /// Audio sampling rate in Hz; `None` for video.
    pub sample_rate: Option<u32>,
}

/// Walks a fragmented MP4 file and reads its `moov` for the codec: everything a `<Representation>` says.
pub fn read_layout(path: &Path) -> anyhow::Result<Layout> {
    let read = || -> anyhow::Result<Layout> {
        let mut file = File::open(path)?;
        let total = file.metadata()?.len();
        let boxes = top_level_boxes(&mut file, total)?;
        let segment = segment_base(&boxes)?;
        let moov = boxes.iter().find(|b| b.is(b"moov")).context("no moov box")?;
        ensure!(moov.size <= MAX_MOOV, "moov box of {} bytes is implausibly large", moov.size);
        let mut payload = vec![0u8; (moov.size - moov.header_len) as usize];
        file.seek(SeekFrom::Start(moov.start + moov.header_len))?;
        file.read_exact(&mut payload)?;
        Ok(Layout { segment, track: track_info(&payload)? })
    };
    read().with_context(|| format!("cannot describe {} for a DASH manifest", path.display()))
}

/// One media fragment (`moof` and `mdat`) as the `sidx` indexes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fragment {
    /// Presentation time of the fragment's first sample, in seconds.
    pub start_secs: f64,
    /// File offset of the fragment's first byte.
    pub offset: u64,
    pub size: u64,
}

/// The fragments indexed by the first top-level `sidx` of a file: where a client seeking to a time
/// starts reading, so tests can tell a seek through the index from a read of everything.
pub fn sidx_fragments(path: &Path) -> anyhow::Result<Vec<Fragment>> {
    let read = || -> anyhow::Result<Vec<Fragment>> {
        let mut file = File::open(path)?;
        let total = file.metadata()?.len();
        let boxes = top_level_boxes(&mut file, total)?;
        let sidx = boxes.iter().find(|b| b.is(b"sidx")).context("no sidx box")?;
        let mut payload = vec![0u8; (sidx.size - sidx.header_len).min(MAX_MOOV) as usize];
        file.seek(SeekFrom::Start(sidx.start + sidx.header_len))?;
        file.read_exact(&mut payload)?;
        parse_sidx(&payload, sidx.end())
    };
    read().with_context(|| format!("cannot read the segment index of {}", path.display()))
}

/// Parses a `sidx` payload (ISO 14496-12 8.16.3) of a box ending at file offset `anchor`, from where
/// its offsets count.
pub fn parse_sidx(payload: &[u8], anchor: u64) -> anyhow::Result<Vec<Fragment>> {
    let be = |at: usize, n: usize| -> anyhow::Result<u64> {
        let bytes = payload.get(at..at + n).context("sidx box cut short")?;
        Ok(bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    };
    let version = be(0, 1)?;
    let timescale = be(8, 4)?;
    ensure!(timescale > 0, "sidx timescale is 0");
    let (mut time, first_offset, mut at) = match version {
        0 => (be(12, 4)?, be(16, 4)?, 20),
        _ => (be(12, 8)?, be(20, 8)?, 28),
    };
    let count = be(at + 2, 2)?;
    at += 4;
    let mut offset = anchor + first_offset;
    let mut fragments = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let reference = be(at, 4)?;
        ensure!(reference >> 31 == 0, "hierarchical sidx (a reference to another sidx) is not supported");
        let size = reference & 0x7fff_ffff;
        fragments.push(Fragment { start_secs: time as f64 / timescale as f64, offset, size });
        offset += size;
        time += be(at + 4, 4)?;
        at += 12;
    }
    Ok(fragments)
}

/// The codec of the first track in a `moov` payload (the box contents after its header).
pub fn track_info(moov: &[u8]) -> anyhow::Result<TrackInfo> {
    let stsd = [b"trak", b"mdia", b"minf", b"stbl", b"stsd"]
        .iter()
        .try_fold(moov, |payload, kind| child(payload, kind))
        .context("no trak/mdia/minf/stbl/stsd in moov")?;
    // stsd is a full box: version and flags, then an entry count, then the sample entries.
    let (kind, entry) = children(stsd.get(8..).unwrap_or_default()).next().context("stsd has no sample entry")?;
    match &kind {
        b"avc1" | b"avc3" => {
            // A visual sample entry has 78 bytes of fixed fields (ISO 14496-12 8.5.2) before its child boxes.
            let avcc = entry.get(78..).and_then(|rest| child(rest, b"avcC")).context("no avcC box")?;
            ensure!(avcc.len() >= 4, "avcC box too short");
            let codecs = format!("{}.{:02x}{:02x}{:02x}", kind_str(&kind), avcc[1], avcc[2], avcc[3]);
            Ok(TrackInfo { codecs, sample_rate: None })
        }
        b"mp4a" => {
            // An audio sample entry (version 0) has 28 bytes of fixed fields (ISO 14496-12 12.2.3); the rate
            // is 16.16 fixed point at offset 24.
            ensure!(entry.len() >= 28, "mp4a sample entry too short");
            let rate = u32::from(u16::from_be_bytes([entry[24], entry[25]]));
            let esds = child(&entry[28..], b"esds").context("no esds box")?;
            Ok(TrackInfo { codecs: mp4a_codecs(esds)?, sample_rate: Some(rate) })
        }
        other => bail!("unsupported sample entry {}", kind_str(other)),
    }
}

/// `mp4a.OO.A`: the object type indication in hex and, when present, the audio object type in decimal
/// (RFC 6381 section 3.3), from the descriptors in an `esds` payload.
fn mp4a_codecs(esds: &[u8]) -> anyhow::Result<String> {
    // Full box header, then ES_Descriptor (tag 3).
    let es = descriptor(esds.get(4..).unwrap_or_default(), 0x03).context("esds has no ES descriptor")?;
    ensure!(es.len() >= 3, "ES descriptor too short");
    let flags = es[2];
    let mut skip = 3usize;
    if flags & 0x80 != 0 {
        skip += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        skip += 1 + usize::from(*es.get(skip).context("ES descriptor URL cut short")?);
    }
    if flags & 0x20 != 0 {
        skip += 2; // OCR_ES_Id
    }
    let config = descriptor(es.get(skip..).unwrap_or_default(), 0x04).context("no decoder config descriptor")?;
    let oti = *config.first().context("decoder config descriptor is empty")?;
    // objectTypeIndication, then 12 bytes of stream type, buffer size and bitrates, then DecoderSpecificInfo.
    let Some(info) = config.get(13..).and_then(|rest| descriptor(rest, 0x05)) else {
        return Ok(format!("mp4a.{oti:02x}"));
    };
    let aot = match info {
        [] => return Ok(format!("mp4a.{oti:02x}")),
        [b0, ..] if b0 >> 3 != 31 => b0 >> 3,
        [b0, b1, ..] => 32 + ((b0 & 7) << 3 | b1 >> 5),
        [_] => bail!("audio specific config cut short"),
    };
    Ok(format!("mp4a.{oti:02x}.{aot}"))
}

/// The body of the first MPEG-4 descriptor in `bytes` if its tag is `tag` (descriptors are a tag byte,
/// a length in 1-4 bytes of 7 bits each, then the body).
fn descriptor(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    let (&first, mut rest) = bytes.split_first()?;
    if first != tag {
        return None;
    }
    let mut len = 0usize;
    for _ in 0..4 {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        len = len << 7 | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            return rest.get(..len);
        }
    }
    None
}

/// Copies the single-track fragmented MP4 `src` to `dst` with an edit list in its track that starts the
/// presentation `shift_secs` into the media, and without the trailing `mfra` (whose absolute offsets the
/// longer `moov` would break; DASH clients seek through the `sidx`).
///
/// ffmpeg writes no edit list into a fragmented file with an empty `moov`, so a track with B-frames, whose
/// first frame is shown one composition offset after its first decode time, would start late against
/// its audio and against the progressive file (which has the edit list). YouTube's DASH video starts at 0.
pub fn insert_edit_list(src: &Path, dst: &Path, shift_secs: f64) -> anyhow::Result<()> {
    let run = || -> anyhow::Result<()> {
        let mut file = File::open(src)?;
        let total = file.metadata()?.len();
        let boxes = top_level_boxes(&mut file, total)?;
        let moov = *boxes.iter().find(|b| b.is(b"moov")).context("no moov box")?;
        ensure!(moov.size <= MAX_MOOV && moov.header_len == 8, "unexpected moov box of {} bytes", moov.size);
        let mut payload = vec![0u8; (moov.size - 8) as usize];
        file.seek(SeekFrom::Start(moov.start + 8))?;
        file.read_exact(&mut payload)?;
        let new_moov = boxed(b"moov", &moov_with_edit_list(&payload, shift_secs)?);
        // A trailing `mfra` ends with an `mfro` box holding the mfra's size.
        let mut end = total;
        if total >= 16 {
            let mut tail = [0u8; 16];
            file.seek(SeekFrom::Start(total - 16))?;
            file.read_exact(&mut tail)?;
            if &tail[4..8] == b"mfro" {
                end = total - u64::from(u32::from_be_bytes([tail[12], tail[13], tail[14], tail[15]]));
            }
        }
        let mut out = std::io::BufWriter::new(File::create(dst)?);
        file.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut (&mut file).take(moov.start), &mut out)?;
        out.write_all(&new_moov)?;
        file.seek(SeekFrom::Start(moov.end()))?;
        std::io::copy(&mut (&mut file).take(end - moov.end()), &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    };
    run().with_context(|| format!("cannot add an edit list to {}", src.display()))
}

/// A `moov` payload whose first `trak` gets an `edts`/`elst` right after its `tkhd`: one edit starting
/// `shift_secs` (in the track's `mdhd` timescale) into the media and running to its end.
pub fn moov_with_edit_list(moov: &[u8], shift_secs: f64) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(moov.len() + 36);
    let mut done = false;
    for (kind, body) in children(moov) {
        if kind != *b"trak" || done {
            out.extend(boxed(&kind, body));
            continue;
        }
        ensure!(child(body, b"edts").is_none(), "the track already has an edit list");
        let mdhd = child(body, b"mdia").and_then(|m| child(m, b"mdhd")).context("no trak/mdia/mdhd")?;
        let at = if mdhd.first() == Some(&1) { 20 } else { 12 };
        let scale = mdhd.get(at..at + 4).context("mdhd too short")?;
        let timescale = u32::from_be_bytes([scale[0], scale[1], scale[2], scale[3]]);
        let media_time = (shift_secs * f64::from(timescale)).round() as u32;
        // elst version 0: entry count 1; segment duration 0 (the whole media), media time, rate 1.0.
        let mut elst = vec![0u8; 4];
        for word in [1u32, 0, media_time, 0x0001_0000] {
            elst.extend(word.to_be_bytes());
        }
        let mut trak = Vec::with_capacity(body.len() + 36);
        for (k, b) in children(body) {
            trak.extend(boxed(&k, b));
            if k == *b"tkhd" {
                trak.extend(boxed(b"edts", &boxed(b"elst", &elst)));
            }
        }
        out.extend(boxed(b"trak", &trak));
        done = true;
    }
    ensure!(done, "no trak in moov");
    Ok(out)
}

/// A box with an 8-byte header around `payload`.
fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend(((payload.len() + 8) as u32).to_be_bytes());
    out.extend(kind);
    out.extend(payload);
    out
}

/// The payload of the first child box of `kind` in `payload`.
fn child<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(payload).find(|(k, _)| k == kind).map(|(_, body)| body)
}

/// The child boxes of a payload as (type, payload) pairs; stops at the first malformed one.
fn children(mut payload: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let header = parse_header(payload, 0, payload.len() as u64).ok()?;
        let body = &payload[header.header_len as usize..header.size as usize];
        payload = &payload[header.size as usize..];
        Some((header.kind, body))
    })
}

fn kind_str(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A box with a 32-bit size.
    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    /// A box with its size in the 64-bit field.
    fn large_bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = 1u32.to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A box whose size field is 0 (to the end of the file).
    fn open_bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn file(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn walk(bytes: &[u8]) -> anyhow::Result<SegmentBase> {
        let boxes = top_level_boxes(&mut Cursor::new(bytes), bytes.len() as u64)?;
        segment_base(&boxes)
    }

    #[test]
    fn segment_base_table() {
        let ftyp = bx(b"ftyp", &[0; 20]); // 28 bytes
        let moov = bx(b"moov", &[0; 100]); // 108 bytes: init ends at 135
        let sidx = bx(b"sidx", &[0; 44]); // 52 bytes
        let moof = bx(b"moof", &[0; 16]);
        let mdat = bx(b"mdat", &[0; 64]);
        let free = bx(b"free", &[0; 4]);
        let ok = |init_last, index_first, index_last| Ok(SegmentBase { init_last, index_first, index_last });
        let cases: Vec<(&str, Vec<u8>, Result<SegmentBase, &str>)> = vec![
            (
                "dash layout",
                file(&[ftyp.clone(), moov.clone(), sidx.clone(), moof.clone(), mdat.clone()]),
                ok(135, 136, 187),
            ),
            (
                "free before sidx",
                file(&[ftyp.clone(), moov.clone(), free.clone(), sidx.clone(), moof.clone()]),
                ok(135, 148, 199),
            ),
            (
                "64-bit moov",
                file(&[ftyp.clone(), large_bx(b"moov", &[0; 100]), sidx.clone(), mdat.clone()]),
                ok(143, 144, 195),
            ),
            ("sidx to the end", file(&[ftyp.clone(), moov.clone(), open_bx(b"sidx", &[0; 44])]), ok(135, 136, 187)),
            (
                "only the first sidx",
                file(&[ftyp.clone(), moov.clone(), sidx.clone(), sidx.clone(), moof.clone()]),
                ok(135, 136, 187),
            ),
            ("progressive", file(&[ftyp.clone(), moov.clone(), mdat.clone()]), Err("media data before any sidx")),
            (
                "fragmented without index",
                file(&[ftyp.clone(), moov.clone(), moof.clone(), mdat.clone()]),
                Err("media data before any sidx"),
            ),
            ("sidx first", file(&[ftyp.clone(), sidx.clone(), moov.clone(), moof.clone()]), Err("before the moov")),
            ("no ftyp", file(&[moov.clone(), sidx.clone(), moof.clone()]), Err("does not start with an ftyp")),
            ("no sidx at all", file(&[ftyp.clone(), moov.clone()]), Err("no sidx box")),
            ("no moov at all", file(&[ftyp.clone(), free.clone()]), Err("no moov box")),
            ("empty file", Vec::new(), Err("does not start with an ftyp")),
            ("box past the end", file(&[ftyp.clone(), moov[..50].to_vec()]), Err("runs past the end")),
            (
                "size below header",
                file(&[ftyp.clone(), vec![0, 0, 0, 4, b'm', b'o', b'o', b'v']]),
                Err("claims 4 bytes"),
            ),
            ("cut header", file(&[ftyp.clone(), vec![0, 0, 0]]), Err("truncated box header")),
            (
                "cut large header",
                file(&[ftyp.clone(), vec![0, 0, 0, 1, b'm', b'o', b'o', b'v', 0]]),
                Err("truncated 64-bit"),
            ),
        ];
        for (name, bytes, want) in cases {
            match (walk(&bytes), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(e), Err(want)) => assert!(format!("{e:#}").contains(want), "{name}: {e:#}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn walk_stops_at_the_media() {
        let bytes = file(&[bx(b"ftyp", &[]), bx(b"moov", &[]), bx(b"sidx", &[]), bx(b"moof", &[]), bx(b"mdat", &[])]);
        let boxes = top_level_boxes(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
        let kinds: Vec<&[u8; 4]> = boxes.iter().map(|b| &b.kind).collect();
        assert_eq!(kinds, [b"ftyp", b"moov", b"sidx", b"moof"]);
        assert_eq!(boxes[3], BoxHeader { kind: *b"moof", start: 24, size: 8, header_len: 8 });
    }

    /// A moov with one track whose stsd holds `entry`.
    fn moov_with(entry: Vec<u8>) -> Vec<u8> {
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(entry);
        let nested = [b"stbl", b"minf", b"mdia", b"trak"].iter().fold(bx(b"stsd", &stsd), |inner, kind| {
            let mut payload = bx(b"tkhd", &[0; 12]); // a sibling before the path, as in real files
            payload.extend(inner);
            bx(kind, &payload)
        });
        let mut moov = bx(b"mvhd", &[0; 20]);
        moov.extend(nested);
        moov
    }

    fn avc_entry(kind: &[u8; 4], avcc: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8; 78];
        payload.extend(bx(b"avcC", avcc));
        bx(kind, &payload)
    }

    /// An mp4a entry at `rate` Hz whose esds payload is `esds`.
    fn mp4a_entry(rate: u16, esds: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8; 28];
        payload[24..26].copy_from_slice(&rate.to_be_bytes());
        payload.extend(bx(b"esds", esds));
        bx(b"mp4a", &payload)
    }

    /// An esds payload as ffmpeg writes it: 4-byte descriptor lengths, `es_flags` after the ES id.
    fn esds(es_flags: u8, es_extra: &[u8], specific: Option<&[u8]>) -> Vec<u8> {
        let desc = |tag: u8, body: &[u8]| {
            let mut out = vec![tag, 0x80, 0x80, 0x80, body.len() as u8];
            out.extend_from_slice(body);
            out
        };
        let mut config = vec![0x40, 0x15, 0, 0, 0, 0, 1, 0xf4, 0, 0, 1, 0xf4, 0];
        if let Some(asc) = specific {
            config.extend(desc(0x05, asc));
        }
        let mut es = vec![0, 1, es_flags];
        es.extend_from_slice(es_extra);
        es.extend(desc(0x04, &config));
        es.extend(desc(0x06, &[2]));
        let mut out = vec![0, 0, 0, 0];
        out.extend(desc(0x03, &es));
        out
    }

    #[test]
    fn track_info_table() {
        let video = |codecs: &str| Ok(TrackInfo { codecs: codecs.into(), sample_rate: None });
        let audio = |codecs: &str, rate| Ok(TrackInfo { codecs: codecs.into(), sample_rate: Some(rate) });
        let cases: Vec<(&str, Vec<u8>, Result<TrackInfo, &str>)> = vec![
            ("x264 high 3.0", moov_with(avc_entry(b"avc1", &[1, 0x64, 0x00, 0x1e, 0xff])), video("avc1.64001e")),
            ("baseline 1.2", moov_with(avc_entry(b"avc1", &[1, 0x42, 0xc0, 0x0c])), video("avc1.42c00c")),
            ("avc3", moov_with(avc_entry(b"avc3", &[1, 0x4d, 0x40, 0x1f])), video("avc3.4d401f")),
            ("aac lc", moov_with(mp4a_entry(44100, &esds(0, &[], Some(&[0x12, 0x10])))), audio("mp4a.40.2", 44100)),
            ("he-aac 48k", moov_with(mp4a_entry(48000, &esds(0, &[], Some(&[0x2b, 0x10])))), audio("mp4a.40.5", 48000)),
            (
                "escaped object type",
                moov_with(mp4a_entry(44100, &esds(0, &[], Some(&[0xf9, 0x40])))),
                audio("mp4a.40.42", 44100),
            ),
            (
                "es flags",
                moov_with(mp4a_entry(22050, &esds(0xe0, &[0, 7, 2, b'a', b'b', 0, 9], Some(&[0x12])))),
                audio("mp4a.40.2", 22050),
            ),
            ("no specific info", moov_with(mp4a_entry(44100, &esds(0, &[], None))), audio("mp4a.40", 44100)),
            ("short avcC", moov_with(avc_entry(b"avc1", &[1, 0x64])), Err("avcC box too short")),
            ("no avcC", moov_with(bx(b"avc1", &[0; 78])), Err("no avcC")),
            ("hevc", moov_with(bx(b"hvc1", &[0; 80])), Err("unsupported sample entry hvc1")),
            ("no esds", moov_with(bx(b"mp4a", &[0; 28])), Err("no esds")),
            ("empty stsd", moov_with(Vec::new()), Err("no sample entry")),
            ("no track", bx(b"mvhd", &[0; 20]), Err("no trak")),
        ];
        for (name, moov, want) in cases {
            match (track_info(&moov), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(e), Err(want)) => assert!(format!("{e:#}").contains(want), "{name}: {e:#}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn sidx_table() {
        /// A sidx payload with the given version, timescale, earliest time, first offset and references.
        fn sidx(version: u8, timescale: u32, earliest: u64, first_offset: u64, refs: &[(u32, u32)]) -> Vec<u8> {
            let mut out = vec![version, 0, 0, 0, 0, 0, 0, 1];
            out.extend(timescale.to_be_bytes());
            if version == 0 {
                out.extend((earliest as u32).to_be_bytes());
                out.extend((first_offset as u32).to_be_bytes());
            } else {
                out.extend(earliest.to_be_bytes());
                out.extend(first_offset.to_be_bytes());
            }
            out.extend([0, 0]);
            out.extend((refs.len() as u16).to_be_bytes());
            for &(size, duration) in refs {
                out.extend(size.to_be_bytes());
                out.extend(duration.to_be_bytes());
                out.extend(0x9000_0000u32.to_be_bytes());
            }
            out
        }
        let frag = |start_secs, offset, size| Fragment { start_secs, offset, size };
        /// Name, sidx payload, fragments or a piece of the error.
        type Row = (&'static str, Vec<u8>, Result<Vec<Fragment>, &'static str>);
        let cases: Vec<Row> = vec![
            ("v0", sidx(0, 1000, 0, 0, &[(100, 2000), (50, 2000)]), Ok(vec![frag(0.0, 500, 100), frag(2.0, 600, 50)])),
            ("v1 with gap", sidx(1, 90000, 45000, 8, &[(10, 180000)]), Ok(vec![frag(0.5, 508, 10)])),
            ("no references", sidx(0, 1, 0, 0, &[]), Ok(vec![])),
            ("hierarchical", sidx(0, 1, 0, 0, &[(0x8000_0010, 1)]), Err("hierarchical")),
            ("zero timescale", sidx(0, 0, 0, 0, &[]), Err("timescale is 0")),
            ("cut short", sidx(0, 1000, 0, 0, &[(100, 2000)])[..30].to_vec(), Err("cut short")),
        ];
        for (name, payload, want) in cases {
            match (parse_sidx(&payload, 500), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(e), Err(want)) => assert!(format!("{e:#}").contains(want), "{name}: {e:#}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn descriptor_lengths() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (&[5, 2, 7, 8, 9], Some(&[7, 8])),
            (&[5, 0x80, 0x80, 0x80, 2, 7, 8], Some(&[7, 8])),
            (&[5, 0x81, 0x00, 1], None), // 128 bytes promised, 1 present
            (&[4, 1, 7], None),          // another tag
            (&[5, 0x80, 0x80, 0x80, 0x80, 1, 7], None),
            (&[5], None),
            (&[], None),
        ];
        for (bytes, want) in cases {
            assert_eq!(descriptor(bytes, 5), *want, "{bytes:?}");
        }
    }
}
